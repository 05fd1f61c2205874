/// <reference path="./tollgate-plugin-types.d.ts" />
declare module 'tollgate:plugin/guest@0.4.0' {
  /**
   * Name, version, implemented hooks and config schema. Must not depend on config.
   */
  export function describe(): PluginInfo;
  /**
   * Check a config before it is activated; the error names the bad field.
   */
  export function validateConfig(config: string): void;
  /**
   * Decide whether a request may proceed. Runs before routing.
   */
  export function policy(ctx: RequestContext): Decision;
  /**
   * Choose where the request is served; none leaves it to later plugins and then the
   * tenant's default provider. Runs after every policy allowed the request.
   */
  export function route(ctx: RequestContext): RoutePlan | undefined;
  /**
   * Decide whether the request fits its budgets, given where it is about to be
   * served (`target`: the plan's first target, model resolved). Runs after routing;
   * the host then checks every granted limit and reserves atomically.
   */
  export function budget(ctx: RequestContext, target: RouteTarget): BudgetDecision;
  /**
   * Check, flag or rewrite what the request sends to the model. Runs after every
   * policy allowed the request, before routing; the host applies a rewrite to the
   * body in the client's API shape, and later plugins see the rewritten text.
   */
  export function inspectRequest(ctx: RequestContext, conversation: Conversation): Verdict;
  /**
   * Check, flag or rewrite the model's answer before the client receives it (for a
   * stream the tenant chose `observe` for, after: see `answer.delivered`).
   */
  export function inspectResponse(ctx: RequestContext, answer: Answer): Verdict;
  export type RequestContext = import('tollgate:plugin/types@0.4.0').RequestContext;
  export type Decision = import('tollgate:plugin/types@0.4.0').Decision;
  export type PluginInfo = import('tollgate:plugin/types@0.4.0').PluginInfo;
  export type RoutePlan = import('tollgate:plugin/types@0.4.0').RoutePlan;
  export type RouteTarget = import('tollgate:plugin/types@0.4.0').RouteTarget;
  export type BudgetDecision = import('tollgate:plugin/types@0.4.0').BudgetDecision;
  export type Conversation = import('tollgate:plugin/types@0.4.0').Conversation;
  export type Answer = import('tollgate:plugin/types@0.4.0').Answer;
  export type Verdict = import('tollgate:plugin/types@0.4.0').Verdict;
}
