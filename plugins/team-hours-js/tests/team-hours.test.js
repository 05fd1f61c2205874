import { test } from 'node:test';
import assert from 'node:assert/strict';
import { TestRequest, ConfigRejected, describe, validate } from '@tollgate/guest/testing';
import plugin from '../plugin.js';

const CONFIG = {
  utc_offset: '+01:00',
  default_team: 'contractors',
  teams: {
    engineering: {
      models: ['claude-*', 'gpt-4o*'],
      hours: '08:00-20:00',
      days: ['mon', 'tue', 'wed', 'thu', 'fri'],
      route: [{ provider: 'anthropic', model: 'claude-sonnet-4-5' }, { provider: 'openai', model: 'gpt-4o' }],
      daily_usd: 50.0,
    },
    contractors: { models: ['claude-haiku-*'] },
    solo: { models: ['*'], route: [{ provider: 'anthropic' }] },
  },
};
const NO_DEFAULT = { teams: { engineering: { models: ['claude-*'] } } };
// 2026-01-05 is a Monday: 11:00 local at UTC+01:00.
const MONDAY = '2026-01-05T10:00:00Z';
const eng = () => new TestRequest().team('engineering').now(MONDAY);

test('describe lists only the implemented hooks', () => {
  const info = describe(plugin);
  assert.deepEqual([info.name, info.version, info.hooks], ['team-hours-js', '0.1.0', ['policy', 'route', 'budget']]);
  assert.equal(JSON.parse(info.configSchema).required[0], 'teams');
});

test('allows a listed team inside its hours, naming the entry', () => {
  assert.deepEqual(eng().run(plugin, CONFIG), { tag: 'allow-with', val: [{ key: 'team_hours.entry', value: 'engineering' }] });
  // An unlisted team and a request without a team fall back to the default entry.
  const d = new TestRequest().team('sales').model('claude-haiku-4-5').now(MONDAY).run(plugin, CONFIG);
  assert.deepEqual(d.val, [{ key: 'team_hours.entry', value: 'contractors' }]);
  assert.equal(new TestRequest().model('claude-haiku-4-5').run(plugin, CONFIG).tag, 'allow-with');
});

function denial(decision) {
  assert.equal(decision.tag, 'deny');
  assert.equal(decision.val.status, 403);
  assert.equal(decision.val.errorType, 'permission_error');
  return decision.val.message;
}

test('denies without a team, or with an unlisted team, when there is no default', () => {
  assert.equal(denial(new TestRequest().run(plugin, NO_DEFAULT)), 'team-hours: requests without a team are not allowed');
  assert.equal(
    denial(new TestRequest().team('sales').run(plugin, NO_DEFAULT)),
    "team-hours: team 'sales' is not allowed to use the gateway",
  );
});

test('denies a model outside the entry, naming the request\'s own team', () => {
  assert.equal(denial(eng().model('o3').run(plugin, CONFIG)), "team-hours: model 'o3' is not allowed for team 'engineering'");
  assert.equal(denial(new TestRequest().team('sales').run(plugin, CONFIG)), "team-hours: model 'claude-sonnet-4-5' is not allowed for team 'sales'");
  assert.equal(denial(new TestRequest().run(plugin, CONFIG)), "team-hours: model 'claude-sonnet-4-5' is not allowed for team '-'");
});

test('denies outside the hours and days, in the configured offset', () => {
  // Saturday 2026-01-10 20:14Z is 21:14 at UTC+01:00.
  assert.equal(
    denial(eng().now('2026-01-10T20:14:00Z').run(plugin, CONFIG)),
    "team-hours: team 'engineering' is outside its hours; now sat 21:14 at UTC+01:00",
  );
  // Monday 19:00Z is 20:00 local: the end is exclusive.
  assert.match(denial(eng().now('2026-01-05T19:00:00Z').run(plugin, CONFIG)), /now mon 20:00 at UTC\+01:00$/);
  assert.equal(eng().now('2026-01-05T18:59:00Z').run(plugin, CONFIG).tag, 'allow-with');
  // Sunday 23:30Z is already Monday 04:30 at +05:00, before the hours.
  const east = { ...CONFIG, utc_offset: '+05:00' };
  assert.match(denial(eng().now('2026-01-04T23:30:00Z').run(plugin, east)), /now mon 04:30 at UTC\+05:00$/);
  const west = { ...CONFIG, utc_offset: '-03:30' };
  assert.match(denial(eng().now('2026-01-05T10:00:00Z').run(plugin, west)), /now mon 06:30 at UTC-03:30$/);
});

test('routes with a fallback plan for several targets', () => {
  assert.deepEqual(eng().runRoute(plugin, CONFIG), {
    strategy: 'fallback',
    targets: [
      { provider: 'anthropic', model: 'claude-sonnet-4-5', weight: 1, maxTokensCap: undefined },
      { provider: 'openai', model: 'gpt-4o', weight: 1, maxTokensCap: undefined },
    ],
    retryOn: { statuses: [429, 500, 502, 503, 529], timeout: true, connectError: true },
    retries: 0,
    backoffMs: 0,
    maxBackoffMs: 0,
    attemptTimeoutMs: undefined,
    labels: [{ key: 'team_hours.entry', value: 'engineering' }],
  });
});

test('routes a single target, and nothing without an entry or a route', () => {
  const plan = new TestRequest().team('solo').runRoute(plugin, CONFIG);
  assert.equal(plan.strategy, 'single');
  assert.deepEqual(plan.targets, [{ provider: 'anthropic', model: undefined, weight: 1, maxTokensCap: undefined }]);
  assert.deepEqual(plan.labels, [{ key: 'team_hours.entry', value: 'solo' }]);
  assert.equal(new TestRequest().team('contractors').runRoute(plugin, CONFIG), undefined);
  assert.equal(new TestRequest().team('sales').runRoute(plugin, NO_DEFAULT), undefined);
});

const dailyLimit = (scope) => ({
  name: 'team-hours:engineering:daily',
  scope: { tag: scope },
  metric: 'cost',
  period: 'day',
  window: 'calendar',
  limit: 50,
  alertAt: [80],
});

test('grants the daily limit per user, else per key', () => {
  assert.deepEqual(eng().user('dev@example.com').runBudget(plugin, CONFIG), {
    tag: 'allow',
    val: { limits: [dailyLimit('user')], downgrade: undefined, labels: [] },
  });
  assert.deepEqual(eng().runBudget(plugin, CONFIG).val.limits, [dailyLimit('key')]);
});

test('grants no limits without daily_usd or an entry', () => {
  const none = { tag: 'allow', val: { limits: [], downgrade: undefined, labels: [] } };
  assert.deepEqual(new TestRequest().team('contractors').runBudget(plugin, CONFIG), none);
  assert.deepEqual(new TestRequest().runBudget(plugin, NO_DEFAULT), none);
});

test('config errors name the field', () => {
  const team = (t) => ({ teams: { engineering: { models: ['claude-*'], ...t } } });
  const cases = [
    [{ ...CONFIG, default_team: 'x' }, "config: default_team: 'x' is not one of teams"],
    [{ teams: {} }, 'config: teams: must list at least one team'],
    [{}, 'config: missing field `teams`'],
    [{ ...CONFIG, extra: 1 }, 'config: extra: unknown field `extra`, expected one of `utc_offset`, `default_team`, `teams`'],
    [{ ...NO_DEFAULT, utc_offset: '+14:30' }, 'config: utc_offset: expected +HH:MM or -HH:MM, at most 14:00'],
    [{ ...NO_DEFAULT, utc_offset: '1:00' }, 'config: utc_offset: expected +HH:MM or -HH:MM, at most 14:00'],
    [team({ hours: '20:00-08:00' }), 'config: teams.engineering.hours: expected HH:MM-HH:MM with start before end'],
    [team({ hours: '08:00-24:01' }), 'config: teams.engineering.hours: expected HH:MM-HH:MM with start before end'],
    [team({ models: [] }), 'config: teams.engineering.models: must list at least one model glob'],
    [team({ models: [''] }), 'config: teams.engineering.models[0]: must not be empty'],
    [{ teams: { engineering: {} } }, 'config: teams.engineering: missing field `models`'],
    [team({ days: ['mon', 'mon'] }), "config: teams.engineering.days[1]: 'mon' is listed twice"],
    [team({ days: ['monday'] }), "config: teams.engineering.days[0]: 'monday' is not a day (mon..sun)"],
    [team({ route: [{ provider: '' }] }), 'config: teams.engineering.route[0].provider: must not be empty'],
    [team({ route: [{ provider: 'a', model: '' }] }), 'config: teams.engineering.route[0].model: must not be empty'],
    [team({ daily_usd: 0 }), 'config: teams.engineering.daily_usd: must be a number above 0'],
    [team({ daily_usd: 'lots' }), 'config: teams.engineering.daily_usd: invalid type: string "lots", expected a number'],
  ];
  for (const [config, error] of cases) assert.equal(validate(plugin, config), error);
  assert.equal(validate(plugin, CONFIG), undefined);
  assert.equal(validate(plugin, { ...NO_DEFAULT, utc_offset: '-14:00' }), undefined);
  assert.equal(validate(plugin, team({ hours: '00:00-24:00' })), undefined);
  assert.throws(() => eng().run(plugin, { teams: {} }), ConfigRejected);
});
