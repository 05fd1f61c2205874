// Types of the SDK's API. The WIT records themselves are generated into types/ by
// `npm run types` (jco guest-types); this file names them for plugin authors.
/// <reference path="./types/interfaces/tollgate-plugin-types.d.ts" />
import type * as W from 'tollgate:plugin/types@0.4.0';

export type { W as Wit };
export type Labels = Record<string, string> | Array<[string, string] | W.Annotation>;
/** A scope object, or its config spelling: `tenant`, `team`, `user`, `key`, `metadata.<key>`. */
export type ScopeLike = W.Scope | string;
/** WIT shapes with plain arrays where the bindings take typed ones; the glue converts. */
export type RoutePlan = Omit<W.RoutePlan, 'retryOn'> & { retryOn: { statuses: number[]; timeout: boolean; connectError: boolean } };
export type BudgetLimit = Omit<W.BudgetLimit, 'alertAt'> & { alertAt: number[] };
export type BudgetDecision = { tag: 'allow'; val: { limits: BudgetLimit[]; downgrade?: W.RouteTarget; labels: W.Annotation[] } } | W.BudgetDecisionDeny;

export interface UsageReport {
  value?: string; requests: number; tokens: number; costUsd: number;
  reservedRequests: number; reservedTokens: number; reservedCostUsd: number; resetsAtMs: number;
  current(metric: W.Metric): number; reserved(metric: W.Metric): number; settled(metric: W.Metric): number;
}

export declare class Request {
  readonly ctx: W.RequestContext;
  readonly requestId: string; readonly traceId: string; readonly tenant: string;
  readonly keyId: string; readonly keyName: string; readonly team?: string; readonly user?: string;
  readonly model: string; readonly endpoint: W.Endpoint; readonly isStream: boolean; readonly maxTokens?: number;
  readonly bodyBytes: number; readonly promptTokensEstimate: number; readonly messageCount: number;
  readonly metadata: Array<[string, string]>;
  meta(key: string): string | undefined;
  hasMeta(key: string): boolean;
  scopeValue(scope: ScopeLike): string | undefined;
  nowMs(): number;
  body(): string;
  bodyJson(): unknown;
  usage(scope: ScopeLike, period: W.Period, window?: W.Window): UsageReport;
  usageOf(scope: ScopeLike, value: string, period: W.Period, window?: W.Window): UsageReport;
  log(level: W.LogLevel, message: string): void;
  logTrace(message: string): void; logDebug(message: string): void; logInfo(message: string): void;
  logWarn(message: string): void; logError(message: string): void;
}

export declare class ConfigError extends Error { readonly path: string; }
export declare class ConfigValue {
  readonly value: unknown; readonly path: string; readonly isAbsent: boolean;
  fail(message: string): never;
  field(name: string): ConfigValue;
  object(known?: string[]): this;
  entries(): Array<[string, ConfigValue]>;
  items(options?: { nonEmpty?: boolean }): ConfigValue[];
  string(options?: { nonEmpty?: boolean }): string;
  number(): number;
  integer(options?: { min?: number; max?: number }): number;
  boolean(): boolean;
  optional<T, F = undefined>(read: (v: ConfigValue) => T, fallback?: F): T | F;
}

export interface PluginSpec<C> {
  name: string;
  version: string;
  configSchema?: string | object;
  parseConfig?(root: ConfigValue): C;
  validate?(config: C): string | undefined | void;
  prepare?(config: C): Uint8Array | string | undefined;
  fromPrepared?(data: Uint8Array): C | undefined;
  policy?(config: C, req: Request): W.Decision;
  route?(config: C, req: Request): RoutePlan | undefined;
  budget?(config: C, req: Request, target: W.RouteTarget): BudgetDecision;
  inspectRequest?(config: C, req: Request, conversation: W.Conversation): W.Verdict;
  inspectResponse?(config: C, req: Request, answer: W.Answer): W.Verdict;
}
export type Plugin<C = unknown> = Readonly<PluginSpec<C> & { configSchema: string; hooks: W.Hook[] }>;
export declare function definePlugin<C>(spec: PluginSpec<C>): Plugin<C>;

export declare const Decision: {
  allow(): W.Decision; allowWith(labels: Labels): W.Decision;
  deny(status: number, errorType: string, message: string): W.Decision;
  forbid(message: string): W.Decision; invalid(message: string): W.Decision;
};
export declare const RetryOn: {
  statuses(statuses: number[], options?: { timeout?: boolean; connectError?: boolean }): RoutePlan['retryOn'];
  transient(): RoutePlan['retryOn']; never(): RoutePlan['retryOn'];
};
export interface PlanOptions {
  retryOn?: RoutePlan['retryOn']; retries?: number; backoffMs?: number; maxBackoffMs?: number;
  attemptTimeoutMs?: number; labels?: Labels;
}
export declare function target(provider: string, options?: { model?: string; weight?: number; maxTokensCap?: number }): W.RouteTarget;
export declare function routePlan(strategy: W.Strategy, targets: W.RouteTarget[], options?: PlanOptions): RoutePlan;
export declare const RoutePlan: {
  single(target: W.RouteTarget, options?: PlanOptions): RoutePlan;
  fallback(targets: W.RouteTarget[], options?: PlanOptions): RoutePlan;
  loadBalance(targets: W.RouteTarget[], options?: PlanOptions): RoutePlan;
};
export declare const Scope: {
  tenant(): W.Scope; team(): W.Scope; user(): W.Scope; key(): W.Scope; metadata(key: string): W.Scope;
  parse(text: string): W.Scope; format(scope: W.Scope): string;
};
export declare function budgetLimit(name: string, scope: ScopeLike, metric: W.Metric, period: W.Period, limit: number, options?: { window?: W.Window; alertAt?: number[] }): BudgetLimit;
export declare const BudgetDecision: {
  allow(grant?: { limits?: BudgetLimit[]; downgrade?: W.RouteTarget; labels?: Labels }): BudgetDecision;
  deny(status: number, errorType: string, message: string): BudgetDecision;
  rateLimited(message: string): BudgetDecision; overBudget(message: string): BudgetDecision;
};
export declare function finding(rule: string, kind: string, count?: number): W.Finding;
export declare const Verdict: {
  allow(): W.Verdict; flag(findings: W.Finding[]): W.Verdict;
  deny(status: number, errorType: string, message: string, findings?: W.Finding[]): W.Verdict;
  rewrite(rewrite: { edits?: W.TextEdit[]; appendSystem?: string; findings?: W.Finding[] }): W.Verdict;
};
export declare function denial(status: number, errorType: string, message: string): W.Denial;
export declare function annotations(labels?: Labels): W.Annotation[];
export declare function annotation(labels: W.Annotation[], key: string): string | undefined;
export declare function globMatch(pattern: string, text: string): boolean;
