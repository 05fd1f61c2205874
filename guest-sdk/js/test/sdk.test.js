import { test } from 'node:test';
import assert from 'node:assert/strict';
import { BudgetDecision, Decision, RoutePlan, RetryOn, Scope, Verdict, annotation, budgetLimit, definePlugin, globMatch, target } from '../src/index.js';
import { ConfigRejected, TestRequest, describe, validate } from '../src/testing.js';
import { exportGuest } from '../src/component.js';

/** Caps max_tokens, with per-team overrides; reads usage in budget. */
const capper = definePlugin({
  name: 'capper',
  version: '1.2.3',
  parseConfig(c) {
    c.object(['limit', 'teams']);
    return {
      limit: c.field('limit').integer({ min: 1 }),
      teams: new Map(c.field('teams').optional((t) => t.entries().map(([k, v]) => [k, v.integer({ min: 1 })]), [])),
    };
  },
  validate: (c) => (c.limit > 100_000 ? 'limit: at most 100000' : undefined),
  policy(c, req) {
    const limit = c.teams.get(req.team) ?? c.limit;
    return req.maxTokens > limit ? Decision.invalid(`max_tokens ${req.maxTokens} exceeds ${limit}`) : Decision.allow();
  },
  budget(c, req, t) {
    const used = req.usage('metadata.project', 'month');
    return BudgetDecision.allow({
      limits: [budgetLimit('project', Scope.metadata('project'), 'cost', 'month', 10)],
      labels: { used: `${used.current('cost')}/${used.settled('cost')}@${used.value}`, model: t.model },
    });
  },
});

test('describe lists only the defined hooks', () => {
  assert.deepEqual(describe(capper), { name: 'capper', version: '1.2.3', hooks: ['policy', 'budget'], configSchema: '{"type":"object"}' });
  assert.throws(() => definePlugin({ name: 'x', version: '1', polcy() {} }), /unknown key 'polcy'/);
});

test('config errors are prefixed and name the field path', () => {
  assert.equal(validate(capper, '{"limit": 0}'), 'config: limit: must be at least 1');
  assert.equal(validate(capper, { limit: 1, teams: { x: 'lots' } }), 'config: teams.x: invalid type: string "lots", expected an integer');
  assert.equal(validate(capper, { limt: 1 }), 'config: limt: unknown field `limt`, expected one of `limit`, `teams`');
  assert.equal(validate(capper, { limit: 200_000 }), 'config: limit: at most 100000');
  assert.match(validate(capper, '{'), /^config: not valid JSON: /);
  assert.equal(validate(capper, { limit: 5 }), undefined);
  assert.throws(() => new TestRequest().run(capper, '[]'), (e) => e instanceof ConfigRejected && e.message === 'config: invalid type: a list, expected a map');
});

test('hooks a plugin leaves out get the host defaults', () => {
  assert.equal(new TestRequest().runRoute(capper, { limit: 5 }), undefined);
  const bare = definePlugin({ name: 'bare', version: '0.1.0' });
  assert.deepEqual(describe(bare).hooks, []);
  assert.deepEqual(new TestRequest().run(bare, {}), Decision.allow());
  assert.deepEqual(new TestRequest().runBudget(bare, {}), BudgetDecision.allow());
  assert.deepEqual(new TestRequest().runInspectRequest(bare, {}, { parts: [] }), Verdict.allow());
});

test('policy sees the request and team overrides', () => {
  const cfg = { limit: 1024, teams: { research: 8192 } };
  assert.equal(new TestRequest().maxTokens(4096).run(capper, cfg).val.status, 400);
  assert.equal(new TestRequest().meta('team', 'research').maxTokens(4096).run(capper, cfg).tag, 'allow');
});

test('budget reads preset usage and resolves the target model', () => {
  const req = new TestRequest().meta('project', 'apollo').usage('metadata.project', 'month', 'calendar', { costUsd: 4.5, reservedCostUsd: 0.5 });
  const d = req.runBudget(capper, { limit: 5 }, target('openai'));
  assert.deepEqual(d.val.labels, [{ key: 'used', value: '4.5/4@apollo' }, { key: 'model', value: 'claude-sonnet-4-5' }]);
  assert.deepEqual(d.val.limits[0].scope, { tag: 'metadata', val: 'project' });
  assert.equal(req.usageReads(), 1);
});

test('a config that fails at request time denies 500 and logs the detail', () => {
  const host = fakeHost('{"limit": "x"}');
  const d = exportGuest(capper, host).policy(new TestRequest().ctx);
  assert.deepEqual(d, { tag: 'deny', val: { status: 500, errorType: 'api_error', message: "plugin 'capper' is misconfigured; contact the gateway administrator" } });
  assert.deepEqual(host.logs, [['error', "plugin 'capper' rejected its config: config: limit: invalid type: string \"x\", expected an integer"]]);
});

test('the component glue returns results and typed lists as the bindings expect', () => {
  const router = definePlugin({ name: 'r', version: '1', route: () => RoutePlan.single(target('a')), budget: () => BudgetDecision.allow({ limits: [budgetLimit('l', 'key', 'requests', 'minute', 60, { window: 'rolling', alertAt: [50] })] }) });
  const guest = exportGuest(router, fakeHost('{}'));
  assert.deepEqual(guest.validateConfig('[]'), { tag: 'err', val: 'config: invalid type: a list, expected a map' });
  assert.deepEqual(guest.validateConfig('{}'), { tag: 'ok', val: undefined });
  assert.ok(guest.route(new TestRequest().ctx).retryOn.statuses instanceof Uint16Array);
  assert.ok(guest.budget(new TestRequest().ctx, target('a')).val.limits[0].alertAt instanceof Uint32Array);
  assert.throws(() => exportGuest(router, fakeHost('[]')).route(new TestRequest().ctx), /plugin 'r' is misconfigured/);
});

test('prepared config is kept at validation and read back instead of the JSON', () => {
  let parses = 0;
  const p = definePlugin({
    name: 'p',
    version: '1',
    parseConfig: (c) => ++parses && c.object().value,
    prepare: (c) => JSON.stringify({ ...c, prepared: true }),
    fromPrepared: (bytes) => JSON.parse(new TextDecoder().decode(bytes)),
    policy: (c) => Decision.allowWith({ prepared: String(c.prepared) }),
  });
  const req = new TestRequest();
  assert.deepEqual(req.run(p, { a: 1 }).val, [{ key: 'prepared', value: 'true' }]);
  assert.equal(parses, 1);
  assert.equal(new TextDecoder().decode(req.prepared()), '{"a":1,"prepared":true}');
});

test('builders produce the WIT shapes', () => {
  assert.deepEqual(Decision.allowWith([['a', 'b']]), { tag: 'allow-with', val: [{ key: 'a', value: 'b' }] });
  assert.equal(annotation(Decision.allowWith({ a: 'b' }).val, 'a'), 'b');
  assert.deepEqual(Decision.forbid('no').val, { status: 403, errorType: 'permission_error', message: 'no' });
  const plan = RoutePlan.loadBalance([target('a', { weight: 3 }), target('b', { model: 'm', maxTokensCap: 10 })], { retryOn: RetryOn.never(), retries: 2, attemptTimeoutMs: 30_000 });
  assert.deepEqual([plan.strategy, plan.retries, plan.backoffMs, plan.maxBackoffMs, plan.attemptTimeoutMs], ['load-balance', 2, 200, 5000, 30_000]);
  assert.deepEqual(plan.retryOn, { statuses: [], timeout: false, connectError: false });
  assert.deepEqual(RoutePlan.single(target('a')).retryOn, RetryOn.transient());
  assert.equal(BudgetDecision.overBudget('x').val.errorType, 'budget_exceeded_error');
  assert.equal(BudgetDecision.rateLimited('x').val.status, 429);
  assert.throws(() => budgetLimit('l', 'team', 'dollars', 'day', 1), /unknown metric 'dollars'/);
  assert.throws(() => Scope.parse('metadata.'), /needs a key/);
  assert.equal(Scope.format(Scope.parse('metadata.project')), 'metadata.project');
  assert.deepEqual(Verdict.deny(400, 't', 'm').val.findings, []);
});

test('glob matches like the Rust SDK', () => {
  for (const [p, t] of [['claude-*', 'claude-'], ['*', ''], ['gpt-4?', 'gpt-4o'], ['a*b*c', 'aXXbYYc'], ['?é', 'xé'], ['claude-*-4-*', 'claude-opus-4-1']]) assert.ok(globMatch(p, t), `${p} ~ ${t}`);
  for (const [p, t] of [['claude-*', 'claud'], ['gpt-4?', 'gpt-4'], ['a*b*c', 'aXXbYY'], ['?', ''], ['Claude-*', 'claude-x']]) assert.ok(!globMatch(p, t), `${p} !~ ${t}`);
});

function fakeHost(config) {
  const logs = [];
  return {
    logs,
    log: (level, message) => logs.push([level, message]),
    config: () => config,
    nowMs: () => 0n,
    requestBody: () => '{}',
    keepPrepared() {},
    prepared: () => new Uint8Array(),
    usage: () => ({}),
  };
}
