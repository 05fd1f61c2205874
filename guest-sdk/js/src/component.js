// The glue between a plugin and the componentize-js bindings. The build generates an
// entry that imports the `tollgate:plugin/host@0.4.0` functions and exports
// `guest = exportGuest(plugin, host)`; plugin authors never see either shape.
import * as adapter from './plugin.js';

/** WIT `list<u16>`/`list<u32>` fields, handed over as typed arrays, as the bindings type them. */
function lowerPlan(plan) {
  return plan && { ...plan, retryOn: { ...plan.retryOn, statuses: Uint16Array.from(plan.retryOn.statuses) } };
}

function lowerBudget(d) {
  if (d.tag !== 'allow') return d;
  return { tag: 'allow', val: { ...d.val, limits: d.val.limits.map((l) => ({ ...l, alertAt: Uint32Array.from(l.alertAt) })) } };
}

/** The `guest` export object for `plugin`, calling the host through `host`'s imported functions. */
export function exportGuest(plugin, host) {
  return {
    describe: () => adapter.describe(plugin),
    /**
     * Returns the result object explicitly: the bindings turn a thrown plain Error into
     * a trap, not into `err`.
     */
    validateConfig(json) {
      try {
        adapter.checkAndKeep(plugin, json, host);
        return { tag: 'ok', val: undefined };
      } catch (e) {
        if (e instanceof Error && e.message.startsWith('config: ')) return { tag: 'err', val: e.message };
        throw e;
      }
    },
    policy: (ctx) => adapter.policy(plugin, ctx, host),
    route: (ctx) => lowerPlan(adapter.route(plugin, ctx, host)),
    budget: (ctx, target) => lowerBudget(adapter.budget(plugin, ctx, target, host)),
    inspectRequest: (ctx, conversation) => adapter.inspectRequest(plugin, ctx, conversation, host),
    inspectResponse: (ctx, answer) => adapter.inspectResponse(plugin, ctx, answer, host),
  };
}
