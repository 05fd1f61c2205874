import { ConfigError, readConfig } from './config.js';
import { BudgetDecision, Decision, Verdict } from './results.js';
import { Request } from './request.js';

/** Spec key of each hook, and its WIT name. */
const HOOKS = [
  ['policy', 'policy'],
  ['route', 'route'],
  ['budget', 'budget'],
  ['inspectRequest', 'inspect-request'],
  ['inspectResponse', 'inspect-response'],
];
const OTHER_KEYS = ['name', 'version', 'configSchema', 'parseConfig', 'validate', 'prepare', 'fromPrepared'];

/**
 * Declares a plugin. Only `name` and `version` are required; every hook left out keeps
 * the host's default (allow, no route, no limits) and is not listed in `describe`, so
 * the host never enters the plugin for it.
 *
 * - `parseConfig(root)`: turns the config (a {@link ConfigValue} at the root) into the
 *   value hooks receive; throw via `value.fail(msg)` so the error names the field.
 *   Default: the parsed JSON, which must be an object.
 * - `validate(config)`: returns an error string (naming the field) or nothing.
 * - `prepare(config)` / `fromPrepared(bytes)`: optional; a form of the config the host
 *   keeps after `validate-config` and hands back on later calls instead of the JSON.
 * - hooks: `policy(config, req)`, `route(config, req)`, `budget(config, req, target)`,
 *   `inspectRequest(config, req, conversation)`, `inspectResponse(config, req, answer)`.
 */
export function definePlugin(spec) {
  for (const key of Object.keys(spec)) {
    if (!OTHER_KEYS.includes(key) && !HOOKS.some(([k]) => k === key)) {
      throw new TypeError(`definePlugin: unknown key '${key}'`);
    }
  }
  for (const key of ['name', 'version']) {
    if (typeof spec[key] !== 'string' || !spec[key]) throw new TypeError(`definePlugin: '${key}' must be a non-empty string`);
  }
  const schema = spec.configSchema ?? { type: 'object' };
  return Object.freeze({
    ...spec,
    configSchema: typeof schema === 'string' ? schema : JSON.stringify(schema),
    hooks: HOOKS.filter(([k]) => typeof spec[k] === 'function').map(([, wit]) => wit),
  });
}

// --- the adapter, shared by the component glue and the test helper -------------------

export function describe(plugin) {
  return { name: plugin.name, version: plugin.version, hooks: [...plugin.hooks], configSchema: plugin.configSchema };
}

/** Parses and validates config JSON; throws an Error whose message starts with `config: `. */
export function checkConfig(plugin, json) {
  const config = readConfig(json, (root) => (plugin.parseConfig ? plugin.parseConfig(root) : root.object().value));
  let problem;
  try {
    problem = plugin.validate?.(config);
  } catch (e) {
    if (!(e instanceof ConfigError)) throw e;
    problem = e.message;
  }
  if (problem) throw new Error(`config: ${problem}`);
  return config;
}

/** `validate-config`: check, then hand the host the prepared form, if the plugin makes one. */
export function checkAndKeep(plugin, json, host) {
  const config = checkConfig(plugin, json);
  if (plugin.prepare) {
    const data = plugin.prepare(config);
    if (data != null) host.keepPrepared(typeof data === 'string' ? new TextEncoder().encode(data) : data);
  }
}

/** The last config that checked, by JSON: a warm instance (`reuse_instance`) parses once. */
let cached;

export function forgetConfig() {
  cached = undefined;
}

/** The config for a hook call, or `undefined` after logging why it failed. */
function hookConfig(plugin, host) {
  const json = host.config();
  if (cached && cached.plugin === plugin && cached.json === json) return cached.config;
  let config;
  if (plugin.fromPrepared) {
    const data = host.prepared();
    try {
      if (data.length > 0) config = plugin.fromPrepared(data) ?? undefined;
    } catch (e) {
      // A form it cannot read back: the JSON says the same, only slower.
      host.log('warn', `plugin '${plugin.name}' could not read its prepared config: ${e.message}`);
      config = undefined;
    }
  }
  if (config === undefined) {
    try {
      config = checkConfig(plugin, json);
    } catch (e) {
      host.log('error', `plugin '${plugin.name}' rejected its config: ${e.message}`);
      return undefined;
    }
  }
  cached = { plugin, json, config };
  return config;
}

/** The `500 api_error` message for a config that fails at request time; the detail is logged. */
function misconfigured(plugin) {
  return `plugin '${plugin.name}' is misconfigured; contact the gateway administrator`;
}

/** Runs hook `key`; a config that fails at request time gets `onBadConfig`'s answer. */
function run(plugin, key, fallback, onBadConfig, host, ctx, ...args) {
  if (!plugin[key]) return fallback();
  const config = hookConfig(plugin, host);
  if (config === undefined) return onBadConfig();
  return plugin[key](config, new Request(ctx, host), ...args);
}

const deny500 = (make) => (plugin) => () => make(500, 'api_error', misconfigured(plugin));

export function policy(plugin, ctx, host) {
  return run(plugin, 'policy', Decision.allow, deny500(Decision.deny)(plugin), host, ctx);
}

/**
 * A bad config traps instead of routing nothing, so the request fails (or a fail-open
 * plugin is skipped) rather than silently reaching the default provider.
 */
export function route(plugin, ctx, host) {
  const plan = run(plugin, 'route', () => undefined, () => {
    throw new Error(`plugin '${plugin.name}' is misconfigured`);
  }, host, ctx);
  return plan ?? undefined;
}

/** A bad config denies: an unchecked budget must not let spend through. */
export function budget(plugin, ctx, target, host) {
  return run(plugin, 'budget', BudgetDecision.allow, deny500(BudgetDecision.deny)(plugin), host, ctx, target);
}

export function inspectRequest(plugin, ctx, conversation, host) {
  return run(plugin, 'inspectRequest', Verdict.allow, deny500(Verdict.deny)(plugin), host, ctx, conversation);
}

export function inspectResponse(plugin, ctx, answer, host) {
  return run(plugin, 'inspectResponse', Verdict.allow, deny500(Verdict.deny)(plugin), host, ctx, answer);
}
