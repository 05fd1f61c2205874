// Builders for what hooks return. Every value is the plain object the componentize-js
// bindings expect for the WIT type (variants as `{tag, val}`, options as `undefined`),
// so what a hook returns is what the host receives, field for field.

/** Labels as WIT annotations, from `{key: value}`, `[key, value]` pairs or `{key, value}` records. */
export function annotations(labels = []) {
  if (!Array.isArray(labels)) labels = Object.entries(labels);
  return labels.map((l) => (Array.isArray(l) ? { key: String(l[0]), value: String(l[1]) } : { key: String(l.key), value: String(l.value) }));
}

/** The value of one label (the first if repeated). */
export function annotation(labels, key) {
  return labels.find((a) => a.key === key)?.value;
}

/** A refusal; the host clamps statuses outside 400..=599 to 403. */
export function denial(status, errorType, message) {
  return { status, errorType, message };
}

/** Outcomes of the policy hook. */
export const Decision = Object.freeze({
  allow: () => ({ tag: 'allow' }),
  /** Allow, recording labels in the request's log row. */
  allowWith: (labels) => ({ tag: 'allow-with', val: annotations(labels) }),
  deny: (status, errorType, message) => ({ tag: 'deny', val: denial(status, errorType, message) }),
  /** `403 permission_error`: the caller may not do this. */
  forbid: (message) => Decision.deny(403, 'permission_error', message),
  /** `400 invalid_request_error`: the request itself is wrong. */
  invalid: (message) => Decision.deny(400, 'invalid_request_error', message),
});

// --- routing -----------------------------------------------------------------------

const TRANSIENT = [429, 500, 502, 503, 504];

/** Which upstream outcomes move on to the next attempt. */
export const RetryOn = Object.freeze({
  statuses: (statuses, { timeout = false, connectError = false } = {}) => ({ statuses: [...statuses], timeout, connectError }),
  /** 429/500/502/503/504, timeouts and connection errors: the default. */
  transient: () => RetryOn.statuses(TRANSIENT, { timeout: true, connectError: true }),
  /** The first answer is final. */
  never: () => RetryOn.statuses([]),
});

/** One place to serve a request; without `model` the requested model is kept. */
export function target(provider, { model, weight = 1, maxTokensCap } = {}) {
  return { provider, model, weight, maxTokensCap };
}

/**
 * A route plan. Defaults match the Rust SDK: retry on {@link RetryOn.transient}, no
 * retries, 200 ms first backoff, 5000 ms cap, the provider's attempt timeout, no labels.
 */
export function routePlan(strategy, targets, { retryOn = RetryOn.transient(), retries = 0, backoffMs = 200, maxBackoffMs = 5000, attemptTimeoutMs, labels } = {}) {
  if (!['single', 'fallback', 'load-balance'].includes(strategy)) throw new TypeError(`unknown strategy '${strategy}'`);
  return { strategy, targets: [...targets], retryOn, retries, backoffMs, maxBackoffMs, attemptTimeoutMs, labels: annotations(labels) };
}

export const RoutePlan = Object.freeze({
  /** Only this target (with its retries). */
  single: (t, options) => routePlan('single', [t], options),
  /** Each target in order until one succeeds. */
  fallback: (targets, options) => routePlan('fallback', targets, options),
  /** One target picked at random by weight; the others follow as fallbacks. */
  loadBalance: (targets, options) => routePlan('load-balance', targets, options),
});

// --- budgets -----------------------------------------------------------------------

const METRICS = ['cost', 'tokens', 'requests'];
const PERIODS = ['minute', 'hour', 'day', 'week', 'month', 'total'];
const WINDOWS = ['calendar', 'rolling'];

/** Whose usage a limit counts. Also parses and prints the config spelling (`metadata.<key>`). */
export const Scope = Object.freeze({
  tenant: () => ({ tag: 'tenant' }),
  team: () => ({ tag: 'team' }),
  user: () => ({ tag: 'user' }),
  key: () => ({ tag: 'key' }),
  metadata: (key) => ({ tag: 'metadata', val: key }),
  /** `tenant`, `team`, `user`, `key` or `metadata.<key>`; throws a message saying what was expected. */
  parse(text) {
    if (['tenant', 'team', 'user', 'key'].includes(text)) return { tag: text };
    if (typeof text === 'string' && text.startsWith('metadata.')) {
      const key = text.slice('metadata.'.length);
      if (!key) throw new Error('`metadata.` needs a key, e.g. `metadata.project`');
      return Scope.metadata(key);
    }
    throw new Error(`unknown scope \`${text}\`, expected \`tenant\`, \`team\`, \`user\`, \`key\` or \`metadata.<key>\``);
  },
  format: (scope) => (scope.tag === 'metadata' ? `metadata.${scope.val}` : scope.tag),
});

/** A scope object, or its config spelling. */
export function toScope(scope) {
  return typeof scope === 'string' ? Scope.parse(scope) : scope;
}

function oneOf(kind, value, allowed) {
  if (!allowed.includes(value)) throw new TypeError(`unknown ${kind} '${value}', expected one of ${allowed.join(', ')}`);
  return value;
}

/**
 * A cap the host enforces atomically, on a calendar window without alerts by default.
 * `scope` may be spelled as in config (`'user'`, `'metadata.project'`).
 */
export function budgetLimit(name, scope, metric, period, limit, { window = 'calendar', alertAt = [] } = {}) {
  return {
    name,
    scope: toScope(scope),
    metric: oneOf('metric', metric, METRICS),
    period: oneOf('period', period, PERIODS),
    window: oneOf('window', window, WINDOWS),
    limit,
    alertAt: [...alertAt],
  };
}

/** Outcomes of the budget hook. */
export const BudgetDecision = Object.freeze({
  /** Let the request through, held to `limits`, optionally served on `downgrade` instead. */
  allow: ({ limits = [], downgrade, labels } = {}) => ({ tag: 'allow', val: { limits: [...limits], downgrade, labels: annotations(labels) } }),
  deny: (status, errorType, message) => ({ tag: 'deny', val: denial(status, errorType, message) }),
  /** `429 rate_limit_error`: the caller is sending too fast. */
  rateLimited: (message) => BudgetDecision.deny(429, 'rate_limit_error', message),
  /** `429 budget_exceeded_error`, as the host sends for an exhausted limit. */
  overBudget: (message) => BudgetDecision.deny(429, 'budget_exceeded_error', message),
});

// --- guardrails --------------------------------------------------------------------

export function finding(rule, kind, count = 1) {
  return { rule, kind, count };
}

/** Outcomes of the guardrail hooks. Edits are byte ranges of the part's UTF-8 text. */
export const Verdict = Object.freeze({
  allow: () => ({ tag: 'allow' }),
  flag: (findings) => ({ tag: 'flag', val: [...findings] }),
  deny: (status, errorType, message, findings = []) => ({ tag: 'deny', val: { denial: denial(status, errorType, message), findings: [...findings] } }),
  rewrite: ({ edits = [], appendSystem, findings = [] } = {}) => ({ tag: 'rewrite', val: { edits: [...edits], appendSystem, findings: [...findings] } }),
});
