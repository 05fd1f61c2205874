import { toScope } from './results.js';

/**
 * What a hook knows about the request: the context fields, plus host calls (clock, body,
 * usage, log). Numbers the host sends as u64 are returned as plain numbers (exact below
 * 2^53, far beyond any clock, token or request count).
 */
export class Request {
  #body;

  constructor(ctx, host) {
    this.ctx = ctx;
    this.host = host;
  }

  get requestId() { return this.ctx.requestId; }
  get traceId() { return this.ctx.traceId; }
  get tenant() { return this.ctx.tenant; }
  get keyId() { return this.ctx.keyId; }
  get keyName() { return this.ctx.keyName; }
  /** The key's team, else the `team` metadata value; `undefined` when none. */
  get team() { return this.ctx.team; }
  /** The key's user, else the `user` metadata value; `undefined` when none. */
  get user() { return this.ctx.user; }
  get model() { return this.ctx.model; }
  /** `messages`, `count-tokens` or `chat-completions`. */
  get endpoint() { return this.ctx.endpoint; }
  get isStream() { return this.ctx.stream; }
  get maxTokens() { return this.ctx.maxTokens; }
  get bodyBytes() { return this.ctx.bodyBytes; }
  get promptTokensEstimate() { return this.ctx.promptTokensEstimate; }
  get messageCount() { return this.ctx.messageCount; }
  /** `x-portkey-metadata` as `[key, value]` pairs, sorted by key, one per key (a repeated key keeps its last value). */
  get metadata() { return this.ctx.metadata; }

  /** A metadata value (keys are case-sensitive). */
  meta(key) {
    return this.ctx.metadata.find(([k]) => k === key)?.[1];
  }

  hasMeta(key) {
    return this.meta(key) !== undefined;
  }

  /** The request's value of a scope (object or config spelling); `undefined` when it has none. */
  scopeValue(scope) {
    const s = toScope(scope);
    switch (s.tag) {
      case 'tenant': return this.tenant;
      case 'team': return this.team;
      case 'user': return this.user;
      case 'key': return this.keyId;
      default: return this.meta(s.val);
    }
  }

  /** Wall-clock time from the host, in ms since the Unix epoch. */
  nowMs() {
    return Number(this.host.nowMs());
  }

  /** The raw JSON body, fetched from the host on first use (a copy: prefer context fields). */
  body() {
    this.#body ??= this.host.requestBody();
    return this.#body;
  }

  bodyJson() {
    return JSON.parse(this.body());
  }

  /** This request's usage of `scope` in the current window (one host call). */
  usage(scope, period, window = 'calendar') {
    return this.usageOf(scope, undefined, period, window);
  }

  /** Usage of another value of `scope`, within this request's tenant. */
  usageOf(scope, value, period, window = 'calendar') {
    return numericReport(this.host.usage(toScope(scope), value, period, window));
  }

  /** Writes to the gateway log, tagged with plugin and request id. */
  log(level, message) {
    this.host.log(level, String(message));
  }
  logTrace(message) { this.log('trace', message); }
  logDebug(message) { this.log('debug', message); }
  logInfo(message) { this.log('info', message); }
  logWarn(message) { this.log('warn', message); }
  logError(message) { this.log('error', message); }
}

const METRIC_FIELDS = { cost: ['costUsd', 'reservedCostUsd'], tokens: ['tokens', 'reservedTokens'], requests: ['requests', 'reservedRequests'] };

function numericReport(r) {
  const report = {
    value: r.value,
    requests: Number(r.requests),
    tokens: Number(r.tokens),
    costUsd: r.costUsd,
    reservedRequests: Number(r.reservedRequests),
    reservedTokens: Number(r.reservedTokens),
    reservedCostUsd: r.reservedCostUsd,
    resetsAtMs: Number(r.resetsAtMs),
  };
  /** Usage in `metric`'s unit, settled plus reserved: what the host compares with a limit. */
  report.current = (metric) => report[METRIC_FIELDS[metric][0]];
  /** The part of `current` held by requests still running. */
  report.reserved = (metric) => report[METRIC_FIELDS[metric][1]];
  /** Usage of finished requests only. */
  report.settled = (metric) => Math.max(0, report.current(metric) - report.reserved(metric));
  return report;
}
