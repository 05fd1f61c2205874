export { definePlugin } from './plugin.js';
export { ConfigError, ConfigValue } from './config.js';
export { Request } from './request.js';
export { globMatch } from './glob.js';
export {
  annotation,
  annotations,
  budgetLimit,
  BudgetDecision,
  Decision,
  denial,
  finding,
  RetryOn,
  RoutePlan,
  routePlan,
  Scope,
  target,
  Verdict,
} from './results.js';
