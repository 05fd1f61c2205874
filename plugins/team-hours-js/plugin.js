// team-hours: which models each team may use, on which days and hours, where its
// requests are served and its daily spend cap. The same policy exists in Rust and
// Python and compared, so behaviour and messages must stay identical to the spec.
import { BudgetDecision, Decision, RoutePlan, RetryOn, budgetLimit, definePlugin, globMatch, target } from '@tollgate/guest';

const DAYS = ['sun', 'mon', 'tue', 'wed', 'thu', 'fri', 'sat'];
const ENTRY = 'team_hours.entry';

/** `+HH:MM`/`-HH:MM` as minutes east of UTC. */
function parseOffset(v) {
  const m = /^([+-])(\d\d):(\d\d)$/.exec(v.string());
  const minutes = m && Number(m[2]) * 60 + Number(m[3]);
  if (!m || Number(m[3]) > 59 || minutes > 14 * 60) v.fail('expected +HH:MM or -HH:MM, at most 14:00');
  return m[1] === '-' ? -minutes : minutes;
}

/** `HH:MM-HH:MM` as [start, end) minutes of the day. */
function parseHours(v) {
  const m = /^(\d\d):(\d\d)-(\d\d):(\d\d)$/.exec(v.string());
  const at = (h, mm) => (Number(mm) < 60 && Number(h) * 60 + Number(mm) <= 24 * 60 ? Number(h) * 60 + Number(mm) : NaN);
  const [start, end] = m ? [at(m[1], m[2]), at(m[3], m[4])] : [NaN, NaN];
  if (!(start < end)) v.fail('expected HH:MM-HH:MM with start before end');
  return [start, end];
}

function parseDays(v) {
  const days = new Set();
  for (const d of v.items({ nonEmpty: 'must list at least one day' })) {
    const day = d.string();
    if (!DAYS.includes(day)) d.fail(`'${day}' is not a day (mon..sun)`);
    if (days.has(day)) d.fail(`'${day}' is listed twice`);
    days.add(day);
  }
  return days;
}

function parseTeam(v) {
  v.object(['models', 'hours', 'days', 'route', 'daily_usd']);
  const models = v.field('models');
  if (models.isAbsent) v.fail('missing field `models`');
  const dailyUsd = v.field('daily_usd').optional((d) => {
    if (!(d.number() > 0)) d.fail('must be a number above 0');
    return d.value;
  });
  return {
    models: models.items({ nonEmpty: 'must list at least one model glob' }).map((m) => m.string({ nonEmpty: true })),
    hours: v.field('hours').optional(parseHours),
    days: v.field('days').optional(parseDays),
    route: v.field('route').optional((r) =>
      r.items({ nonEmpty: 'must list at least one target' }).map((t) => {
        t.object(['provider', 'model']);
        return target(t.field('provider').string({ nonEmpty: true }), { model: t.field('model').optional((m) => m.string({ nonEmpty: true })) });
      }),
    ),
    dailyUsd,
  };
}

function parseConfig(root) {
  root.object(['utc_offset', 'default_team', 'teams']);
  const teamsField = root.field('teams');
  if (teamsField.isAbsent) root.fail('missing field `teams`');
  const teams = new Map(teamsField.entries().map(([name, v]) => [name, parseTeam(v)]));
  if (teams.size === 0) teamsField.fail('must list at least one team');
  const offset = root.field('utc_offset').optional(parseOffset, 0);
  const defaultTeam = root.field('default_team').optional((v) => {
    const name = v.string();
    if (!teams.has(name)) v.fail(`'${name}' is not one of teams`);
    return name;
  });
  return { offset, defaultTeam, teams };
}

/** The entry that applies to the request: its own team's, else the default's, else none. */
function entryFor(config, req) {
  const key = req.team !== undefined && config.teams.has(req.team) ? req.team : config.defaultTeam;
  return key === undefined ? undefined : { key, team: config.teams.get(key) };
}

const pad = (n) => String(n).padStart(2, '0');
const clock = (minutes) => `${pad(Math.floor(minutes / 60))}:${pad(minutes % 60)}`;
const offsetText = (minutes) => `${minutes < 0 ? '-' : '+'}${clock(Math.abs(minutes))}`;

export default definePlugin({
  name: 'team-hours-js',
  version: '0.1.0',
  configSchema: {
    type: 'object',
    required: ['teams'],
    additionalProperties: false,
    properties: {
      utc_offset: { type: 'string', pattern: '^[+-]\\d\\d:\\d\\d$' },
      default_team: { type: 'string' },
      teams: {
        type: 'object',
        minProperties: 1,
        additionalProperties: {
          type: 'object',
          required: ['models'],
          additionalProperties: false,
          properties: {
            models: { type: 'array', minItems: 1, items: { type: 'string', minLength: 1 } },
            hours: { type: 'string', pattern: '^\\d\\d:\\d\\d-\\d\\d:\\d\\d$' },
            days: { type: 'array', minItems: 1, uniqueItems: true, items: { enum: ['mon', 'tue', 'wed', 'thu', 'fri', 'sat', 'sun'] } },
            route: {
              type: 'array',
              minItems: 1,
              items: { type: 'object', required: ['provider'], additionalProperties: false, properties: { provider: { type: 'string', minLength: 1 }, model: { type: 'string', minLength: 1 } } },
            },
            daily_usd: { type: 'number', exclusiveMinimum: 0 },
          },
        },
      },
    },
  },
  parseConfig,

  policy(config, req) {
    const entry = entryFor(config, req);
    if (!entry) {
      return Decision.forbid(
        req.team === undefined
          ? 'team-hours: requests without a team are not allowed'
          : `team-hours: team '${req.team}' is not allowed to use the gateway`,
      );
    }
    const team = req.team ?? '-';
    const { models, hours, days } = entry.team;
    if (!models.some((g) => globMatch(g, req.model))) {
      return Decision.forbid(`team-hours: model '${req.model}' is not allowed for team '${team}'`);
    }
    const local = new Date(req.nowMs() + config.offset * 60_000);
    const day = DAYS[local.getUTCDay()];
    const minute = local.getUTCHours() * 60 + local.getUTCMinutes();
    if ((days && !days.has(day)) || (hours && !(hours[0] <= minute && minute < hours[1]))) {
      return Decision.forbid(`team-hours: team '${team}' is outside its hours; now ${day} ${clock(minute)} at UTC${offsetText(config.offset)}`);
    }
    return Decision.allowWith({ [ENTRY]: entry.key });
  },

  route(config, req) {
    const entry = entryFor(config, req);
    const targets = entry?.team.route;
    if (!targets) return undefined;
    const options = {
      retryOn: RetryOn.statuses([429, 500, 502, 503, 529], { timeout: true, connectError: true }),
      retries: 0,
      backoffMs: 0,
      maxBackoffMs: 0,
      labels: { [ENTRY]: entry.key },
    };
    return targets.length === 1 ? RoutePlan.single(targets[0], options) : RoutePlan.fallback(targets, options);
  },

  budget(config, req) {
    const entry = entryFor(config, req);
    if (entry?.team.dailyUsd === undefined) return BudgetDecision.allow();
    const scope = req.user !== undefined ? 'user' : 'key';
    return BudgetDecision.allow({
      limits: [budgetLimit(`team-hours:${entry.key}:daily`, scope, 'cost', 'day', entry.team.dailyUsd, { alertAt: [80] })],
    });
  },
});
