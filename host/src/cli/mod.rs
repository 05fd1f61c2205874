//! The `tollgate` command line: the server, the admin client, `plugin check`, and
//! policy bundle files.

mod admin_client;
mod bundle;
mod plugin_check;

pub use admin_client::{AdminClient, Output};
pub use bundle::{BundleScope, read_bundle_file};
pub use plugin_check::{PluginCheck, run_plugin_check};
