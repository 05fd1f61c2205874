//! Bindings generated from `wit/plugin.wit`. The SDK re-exports their types as its own:
//! the derives and docs the WIT cannot carry are added here, the helpers in the
//! modules named after each hook.

wit_bindgen::generate!({
    path: "../wit",
    world: "plugin",
    pub_export_macro: true,
    export_macro_name: "__tollgate_export_world",
    default_bindings_module: "tollgate_guest::bindings",
    // Plugins and their tests compare, hash and print these. Records holding an f64
    // cannot be `Eq` or `Hash`: they get `PartialEq` alone, below.
    additional_derives: [PartialEq, Eq, Hash],
    additional_derives_ignore: ["usage-report", "budget-limit", "budget-grant", "budget-decision"],
    // `non_exhaustive` where a new WIT version may add cases or fields; serde for the
    // enums a plugin config names by their lower-case WIT name.
    additional_type_attributes: {
        "tollgate:plugin/types@0.4.0/hook": [#[non_exhaustive]],
        "tollgate:plugin/types@0.4.0/endpoint": [#[non_exhaustive]],
        "tollgate:plugin/types@0.4.0/strategy": [#[non_exhaustive]],
        "tollgate:plugin/types@0.4.0/route-target": [#[non_exhaustive]],
        "tollgate:plugin/types@0.4.0/retry-on": [#[non_exhaustive]],
        "tollgate:plugin/types@0.4.0/route-plan": [#[non_exhaustive]],
        "tollgate:plugin/types@0.4.0/scope": [#[non_exhaustive]],
        "tollgate:plugin/types@0.4.0/metric": [
            ///
            /// (De)serializes as its name (`cost`, `tokens` or `requests`), so a plugin
            /// config struct can hold one.
            #[non_exhaustive]
            #[derive(serde::Serialize, serde::Deserialize)]
            #[serde(rename_all = "snake_case")]
        ],
        "tollgate:plugin/types@0.4.0/period": [
            ///
            /// (De)serializes as its name (`minute`, `hour`, `day`, `week`, `month` or
            /// `total`), so a plugin config struct can hold one.
            #[non_exhaustive]
            #[derive(serde::Serialize, serde::Deserialize)]
            #[serde(rename_all = "snake_case")]
        ],
        "tollgate:plugin/types@0.4.0/window": [
            ///
            /// (De)serializes as its name (`calendar` or `rolling`), so a plugin config
            /// struct can hold one (with `#[serde(default)]` for calendar).
            #[non_exhaustive]
            #[derive(Default, serde::Serialize, serde::Deserialize)]
            #[serde(rename_all = "snake_case")]
        ],
        "tollgate:plugin/types@0.4.0/usage-report": [#[derive(Default, PartialEq)]],
        "tollgate:plugin/types@0.4.0/budget-limit": [#[non_exhaustive] #[derive(PartialEq)]],
        "tollgate:plugin/types@0.4.0/budget-grant": [#[non_exhaustive] #[derive(Default, PartialEq)]],
        "tollgate:plugin/types@0.4.0/budget-decision": [#[derive(PartialEq)]],
        "tollgate:plugin/types@0.4.0/role": [#[non_exhaustive]],
        "tollgate:plugin/types@0.4.0/conversation": [#[non_exhaustive] #[derive(Default)]],
        "tollgate:plugin/types@0.4.0/answer": [#[non_exhaustive] #[derive(Default)]],
        "tollgate:plugin/types@0.4.0/rewrite": [#[non_exhaustive] #[derive(Default)]],
    },
    additional_member_attributes: {
        "tollgate:plugin/types@0.4.0/window.calendar": [#[default]],
    },
});
