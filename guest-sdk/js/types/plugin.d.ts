/// <reference path="./interfaces/tollgate-plugin-guest.d.ts" />
/// <reference path="./interfaces/tollgate-plugin-host.d.ts" />
/// <reference path="./interfaces/tollgate-plugin-types.d.ts" />
declare module 'tollgate:plugin/plugin@0.4.0' {
  export type * as TollgatePluginHost040 from 'tollgate:plugin/host@0.4.0'; // import tollgate:plugin/host@0.4.0
  export type * as TollgatePluginTypes040 from 'tollgate:plugin/types@0.4.0'; // import tollgate:plugin/types@0.4.0
  export * as guest from 'tollgate:plugin/guest@0.4.0'; // export tollgate:plugin/guest@0.4.0
}
