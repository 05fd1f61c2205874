//! `output-check`: placeholder while the plugin is written.

/// The plugin.
pub struct Placeholder;

#[tollgate_guest::plugin]
impl tollgate_guest::Plugin for Placeholder {
    const NAME: &'static str = "output-check";
    const VERSION: &'static str = env!("CARGO_PKG_VERSION");
    type Config = tollgate_guest::NoConfig;
}

tollgate_guest::export_plugin!(Placeholder);
