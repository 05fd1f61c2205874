//! The `#[plugin]` attribute of the Tollgate guest SDK; use it as
//! `#[tollgate_guest::plugin]` (the SDK re-exports it), not from this crate directly.
//!
//! The host only calls the hooks a plugin lists in `describe`. Rather than a list the
//! author keeps in step with the methods by hand, the attribute reads which hook
//! methods (`policy`, `route`, `budget`) the `impl Plugin` block defines and supplies
//! the list itself.

mod expand;

use proc_macro::TokenStream;

/// Derives a plugin's hook list from the hook methods its `impl Plugin` block defines.
///
/// Put it on `impl Plugin for MyPlugin { ... }`; it leaves the impl unchanged and adds
/// the hidden hook-list impl `describe` reports: `Hook::Policy` if the block defines
/// `policy`, `Hook::Route` for `route`, `Hook::Budget` for `budget`. The expansion names
/// the SDK as `::tollgate_guest`, so depend on it under that name.
///
/// It is a compile error to put it on anything else, to give it arguments, to write a
/// `HOOKS` constant by hand, to `#[cfg]` a hook method (the list could not follow) or
/// to define items through a macro call in the block (the attribute could not see them).
#[proc_macro_attribute]
pub fn plugin(attr: TokenStream, item: TokenStream) -> TokenStream {
    expand::plugin(attr.into(), item.into()).into()
}
