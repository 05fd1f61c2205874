//! The `tollgate` command line: the server, the admin client, and `plugin check`.

mod admin_client;
mod plugin_check;

pub use admin_client::{AdminClient, Output};
pub use plugin_check::{PluginCheck, run_plugin_check};
