// Reading a plugin's config JSON with errors that name the field, like the Rust SDK's
// serde path (`teams.engineering.hours: ...`, `route[0].provider: ...`).

/** A config error at `path` (empty for the root). The SDK reports it as `config: path: message`. */
export class ConfigError extends Error {
  constructor(path, message) {
    super(path ? `${path}: ${message}` : message);
    this.name = 'ConfigError';
    this.path = path;
  }
}

function typeName(v) {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'a list';
  if (typeof v === 'object') return 'a map';
  if (typeof v === 'number') return `number ${v}`;
  if (typeof v === 'string') return `string ${JSON.stringify(v)}`;
  return `${typeof v} ${v}`;
}

/** A value inside the config and the path to it; typed getters throw {@link ConfigError}s. */
export class ConfigValue {
  constructor(value, path = '') {
    this.value = value;
    this.path = path;
  }

  /** Throws a ConfigError naming this value's path. */
  fail(message) {
    throw new ConfigError(this.path, message);
  }

  invalidType(expected) {
    this.fail(`invalid type: ${typeName(this.value)}, expected ${expected}`);
  }

  /** Child of a map; `undefined` values count as absent. */
  field(name) {
    return new ConfigValue(this.value?.[name], this.path ? `${this.path}.${name}` : name);
  }

  get isAbsent() {
    return this.value === undefined || this.value === null;
  }

  /** Asserts a JSON object; with `known`, rejects fields outside it (typos become errors). */
  object(known) {
    const v = this.value;
    if (v === null || typeof v !== 'object' || Array.isArray(v)) this.invalidType('a map');
    if (known) {
      for (const name of Object.keys(v)) {
        if (!known.includes(name)) {
          const list = known.map((k) => `\`${k}\``);
          const expected = list.length > 1 ? `one of ${list.join(', ')}` : list.length ? list[0] : 'no fields';
          this.field(name).fail(`unknown field \`${name}\`, expected ${expected}`);
        }
      }
    }
    return this;
  }

  /** The entries of a JSON object, as `[key, ConfigValue]` pairs in document order. */
  entries() {
    this.object();
    return Object.keys(this.value).map((k) => [k, this.field(k)]);
  }

  /** The items of a JSON array, each with an indexed path; `nonEmpty` may be the
   * message for an empty list. */
  items({ nonEmpty = false } = {}) {
    if (!Array.isArray(this.value)) this.invalidType('a list');
    if (nonEmpty && this.value.length === 0) {
      this.fail(typeof nonEmpty === 'string' ? nonEmpty : 'must not be empty');
    }
    return this.value.map((v, i) => new ConfigValue(v, `${this.path}[${i}]`));
  }

  string({ nonEmpty = false } = {}) {
    if (typeof this.value !== 'string') this.invalidType('a string');
    if (nonEmpty && this.value === '') this.fail('must not be empty');
    return this.value;
  }

  number() {
    if (typeof this.value !== 'number' || !Number.isFinite(this.value)) this.invalidType('a number');
    return this.value;
  }

  /** An integer within `min..=max`. */
  integer({ min = Number.MIN_SAFE_INTEGER, max = Number.MAX_SAFE_INTEGER } = {}) {
    if (!Number.isInteger(this.value)) this.invalidType('an integer');
    if (this.value < min || this.value > max) {
      if (max === Number.MAX_SAFE_INTEGER) this.fail(`must be at least ${min}`);
      if (min === Number.MIN_SAFE_INTEGER) this.fail(`must be at most ${max}`);
      this.fail(`must be between ${min} and ${max}`);
    }
    return this.value;
  }

  boolean() {
    if (typeof this.value !== 'boolean') this.invalidType('a boolean');
    return this.value;
  }

  /** `read(this)` when present, else `fallback`. */
  optional(read, fallback) {
    return this.isAbsent ? fallback : read(this);
  }
}

/**
 * Parses config JSON (`{}` when blank) and hands the root to `parse`; returns the parsed
 * config, or throws an Error whose message is the SDK's `config: ...` report.
 */
export function readConfig(json, parse) {
  let raw;
  try {
    raw = json.trim() === '' ? {} : JSON.parse(json);
  } catch (e) {
    throw new Error(`config: not valid JSON: ${e.message}`);
  }
  try {
    return parse(new ConfigValue(raw));
  } catch (e) {
    if (e instanceof ConfigError) throw new Error(`config: ${e.message}`);
    throw e;
  }
}
