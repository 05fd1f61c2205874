// Runs a plugin natively, playing the host (config, clock, body, usage, log), through the
// same adapter the component uses. No wasm: `node --test`.
import * as adapter from './plugin.js';
import { Scope, toScope } from './results.js';

const DEFAULT_NOW_MS = 1_767_225_600_000; // 2026-01-01T00:00:00Z, a Thursday

function json(config) {
  return typeof config === 'string' ? config : JSON.stringify(config ?? {});
}

/** What `describe` reports. */
export function describe(plugin) {
  return adapter.describe(plugin);
}

/** What `validate-config` answers: `undefined` when accepted, else the `config: ...` error. */
export function validate(plugin, config) {
  try {
    adapter.checkAndKeep(plugin, json(config), { keepPrepared() {} });
    return undefined;
  } catch (e) {
    if (e.message.startsWith('config: ')) return e.message;
    throw e;
  }
}

/** Thrown by the `run*` methods when the host would reject the config. */
export class ConfigRejected extends Error {}

const usageKey = (scope, value, period, window) => JSON.stringify([Scope.format(toScope(scope)), value ?? null, period, window]);

/**
 * A request to run hooks on, with chained setters. Defaults: tenant `test`, key
 * `key_test`, model `claude-sonnet-4-5`, Messages endpoint, `max_tokens` 1024, one
 * message, no team or user, clock at 2026-01-01T00:00:00Z.
 */
/** Most bytes of a prepared config the host keeps. */
export const MAX_PREPARED_BYTES = 1 << 20;

export class TestRequest {
  ctx = {
    requestId: 'req_test',
    traceId: 'req_test',
    tenant: 'test',
    keyId: 'key_test',
    keyName: 'test',
    team: undefined,
    user: undefined,
    metadata: [],
    model: 'claude-sonnet-4-5',
    endpoint: 'messages',
    stream: false,
    maxTokens: 1024,
    bodyBytes: undefined,
    promptTokensEstimate: undefined,
    messageCount: 1,
  };
  #body;
  #now = DEFAULT_NOW_MS;
  #usage = new Map();
  #logs = [];
  #bodyReads = 0;
  #usageReads = 0;
  #prepared = new Uint8Array();

  #set(field, value) {
    this.ctx[field] = value;
    return this;
  }

  requestId(id) { this.ctx.traceId = id; return this.#set('requestId', id); }
  traceId(id) { return this.#set('traceId', id); }
  tenant(t) { return this.#set('tenant', t); }
  keyId(id) { return this.#set('keyId', id); }
  keyName(n) { return this.#set('keyName', n); }
  team(t) { return this.#set('team', t); }
  user(u) { return this.#set('user', u); }
  model(m) { return this.#set('model', m); }
  endpoint(e) { return this.#set('endpoint', e); }
  stream(s = true) { return this.#set('stream', s); }
  maxTokens(n) { return this.#set('maxTokens', n); }
  messageCount(n) { return this.#set('messageCount', n); }
  bodyBytes(n) { return this.#set('bodyBytes', n); }
  promptTokensEstimate(n) { return this.#set('promptTokensEstimate', n); }

  /** Adds a metadata entry; `team`/`user` also set the team/user if unset, as the host does. */
  meta(key, value) {
    this.ctx.metadata.push([key, value]);
    if ((key === 'team' || key === 'user') && this.ctx[key] === undefined) this.ctx[key] = value;
    return this;
  }

  /** The raw body the host would hand over (default: a small Messages body). */
  body(text) {
    this.#body = text;
    return this;
  }

  /** Sets the host clock: ms since the epoch, a Date, or an ISO string. */
  now(at) {
    this.#now = typeof at === 'number' ? at : new Date(at).getTime();
    if (Number.isNaN(this.#now)) throw new TypeError(`not a time: ${at}`);
    return this;
  }

  /** Presets this request's reading of `scope` (unset readings are zero). */
  usage(scope, period, window, report) {
    return this.usageOf(scope, undefined, period, window, report);
  }

  /** Presets the reading of another value of `scope`. */
  usageOf(scope, value, period, window, report) {
    this.#usage.set(usageKey(scope, value, period, window), report);
    return this;
  }

  /** Runs `policy` as the host would; throws {@link ConfigRejected} for a rejected config. */
  run(plugin, config) {
    return this.#run(plugin, config, (ctx, host) => adapter.policy(plugin, ctx, host));
  }

  /** Runs `route`; `undefined` when nothing is routed. An empty plan throws, as the host fails it. */
  runRoute(plugin, config) {
    const plan = this.#run(plugin, config, (ctx, host) => adapter.route(plugin, ctx, host));
    if (plan && plan.targets.length === 0) throw new Error(`plugin '${plugin.name}' returned a route plan without targets`);
    return plan;
  }

  /** Runs `budget` on `target` (default: provider `anthropic`); a target without a model gets the requested one. */
  runBudget(plugin, config, target = { provider: 'anthropic', weight: 1 }) {
    const t = { ...target, model: target.model ?? this.ctx.model };
    return this.#run(plugin, config, (ctx, host) => adapter.budget(plugin, ctx, t, host));
  }

  runInspectRequest(plugin, config, conversation) {
    return this.#run(plugin, config, (ctx, host) => adapter.inspectRequest(plugin, ctx, conversation, host));
  }

  runInspectResponse(plugin, config, answer) {
    return this.#run(plugin, config, (ctx, host) => adapter.inspectResponse(plugin, ctx, answer, host));
  }

  /** Log lines of the last run, as `{level, message}`. */
  logs() { return [...this.#logs]; }
  /** How often the last run fetched the body (0 or 1: it is cached per request). */
  bodyReads() { return this.#bodyReads; }
  /** How many usage readings the last run asked for. */
  usageReads() { return this.#usageReads; }
  /** What the plugin kept with `keep-prepared` when its config was checked. */
  prepared() { return this.#prepared; }

  /** Each run starts as a fresh instance: config checked first, nothing cached. */
  #run(plugin, config, hook) {
    const configJson = json(config);
    this.#logs = [];
    this.#bodyReads = 0;
    this.#usageReads = 0;
    this.#prepared = new Uint8Array();
    adapter.forgetConfig();
    const host = this.#host(configJson);
    try {
      adapter.checkAndKeep(plugin, configJson, host);
    } catch (e) {
      if (e.message.startsWith('config: ')) throw new ConfigRejected(e.message);
      throw e;
    }
    return hook(this.#context(), host);
  }

  #context() {
    const bytes = Buffer.byteLength(this.#bodyText());
    return { ...this.ctx, metadata: [...this.ctx.metadata], bodyBytes: this.ctx.bodyBytes ?? bytes, promptTokensEstimate: this.ctx.promptTokensEstimate ?? Math.floor(bytes / 4) };
  }

  #bodyText() {
    return this.#body ?? JSON.stringify({ model: this.ctx.model, max_tokens: this.ctx.maxTokens, messages: [{ role: 'user', content: 'hi' }] });
  }

  /** The host imports, in the shapes the bindings use (u64 as bigint). */
  #host(configJson) {
    return {
      log: (level, message) => this.#logs.push({ level, message }),
      config: () => configJson,
      nowMs: () => BigInt(this.#now),
      requestBody: () => {
        this.#bodyReads++;
        return this.#bodyText();
      },
      keepPrepared: (data) => {
        // As the host: more than it keeps (1 MiB) is dropped, and hooks read the JSON.
        if (data.length <= MAX_PREPARED_BYTES) this.#prepared = data;
      },
      prepared: () => this.#prepared,
      usage: (scope, value, period, window) => {
        this.#usageReads++;
        const own = value === undefined;
        const r = this.#usage.get(usageKey(scope, value, period, window)) ?? {};
        const big = (n) => BigInt(n ?? 0);
        return {
          value: own ? this.#scopeValue(scope) : value,
          requests: big(r.requests),
          tokens: big(r.tokens),
          costUsd: r.costUsd ?? 0,
          reservedRequests: big(r.reservedRequests),
          reservedTokens: big(r.reservedTokens),
          reservedCostUsd: r.reservedCostUsd ?? 0,
          resetsAtMs: big(r.resetsAtMs),
        };
      },
    };
  }

  #scopeValue(scope) {
    const c = this.ctx;
    return { tenant: c.tenant, team: c.team, user: c.user, key: c.keyId }[scope.tag] ?? c.metadata.find(([k]) => k === scope.val)?.[1];
  }
}
