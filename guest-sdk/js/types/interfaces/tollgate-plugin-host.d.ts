/// <reference path="./tollgate-plugin-types.d.ts" />
declare module 'tollgate:plugin/host@0.4.0' {
  /**
   * Write a line to the gateway's log, tagged with the plugin and request id.
   */
  export function log(level: LogLevel, message: string): void;
  /**
   * The plugin's config for this tenant, as JSON (`{}` when none was given).
   */
  export function config(): string;
  /**
   * Wall-clock time in milliseconds since the Unix epoch.
   */
  export function nowMs(): bigint;
  /**
   * The full request body as the caller sent it (JSON text).
   */
  export function requestBody(): string;
  /**
   * Hands the host a prepared form of the config being checked, so that later calls
   * read it back with `prepared` instead of parsing the JSON again (compiled
   * patterns, say). Only honoured during `validate-config`; at most 1 MiB.
   */
  export function keepPrepared(data: Uint8Array): void;
  /**
   * What this plugin passed to `keep-prepared` when the host checked the current
   * config; empty when it passed nothing.
   */
  export function prepared(): Uint8Array;
  /**
   * Usage of `scope` in the current `period` window: this request's value of the scope
   * when `value` is none, else that value (within this request's tenant).
   */
  export function usage(scope: Scope, value: string | undefined, period: Period, window: Window): UsageReport;
  export type LogLevel = import('tollgate:plugin/types@0.4.0').LogLevel;
  export type Scope = import('tollgate:plugin/types@0.4.0').Scope;
  export type Period = import('tollgate:plugin/types@0.4.0').Period;
  export type Window = import('tollgate:plugin/types@0.4.0').Window;
  export type UsageReport = import('tollgate:plugin/types@0.4.0').UsageReport;
}
