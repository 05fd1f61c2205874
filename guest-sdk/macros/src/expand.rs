//! The expansion of `#[plugin]`, on `proc_macro2` tokens so it can be unit-tested.

use proc_macro2::{Span, TokenStream};
use quote::{format_ident, quote};
use syn::{Attribute, Error, ImplItem, Item, ItemImpl};

/// The hook methods of `Plugin` and their `Hook` variants, in the order `describe` lists them.
const HOOK_METHODS: [(&str, &str); 5] = [
    ("policy", "Policy"),
    ("route", "Route"),
    ("budget", "Budget"),
    ("inspect_request", "InspectRequest"),
    ("inspect_response", "InspectResponse"),
];

/// Where the attribute belongs, for error messages.
const USAGE: &str = "`#[tollgate_guest::plugin]` goes on `impl Plugin for YourPlugin { ... }`";

/// Expands `#[plugin]` (with arguments `attr`) on `item`: the item as written (less a
/// hand-written `HOOKS`), then the hook-list impl derived from it, preceded by a compile
/// error for anything misplaced.
pub fn plugin(attr: TokenStream, item: TokenStream) -> TokenStream {
    let mut errors = Vec::new();
    if !attr.is_empty() {
        errors.push(Error::new_spanned(
            &attr,
            "`#[tollgate_guest::plugin]` takes no arguments: the hooks come from the methods the impl defines",
        ));
    }
    let (item, hooks) = match parse_plugin_impl(&item) {
        Ok(mut block) => {
            errors.extend(check_items(&block));
            let hooks = hooks_impl(&block);
            // A hand-written `HOOKS` is reported above: dropping it spares the author
            // rustc's "not a member of trait" on the same line.
            let before = block.items.len();
            block.items.retain(|i| !is_hand_written_hooks(i));
            let item = if block.items.len() == before {
                item
            } else {
                quote!(#block)
            };
            (item, Some(hooks))
        }
        Err(e) => {
            errors.push(e);
            (item, None)
        }
    };
    let errors = errors.iter().map(Error::to_compile_error);
    quote! {
        #(#errors)*
        #item
        #hooks
    }
}

/// Whether `item` is a `HOOKS` constant, the list authors used to write by hand.
fn is_hand_written_hooks(item: &ImplItem) -> bool {
    matches!(item, ImplItem::Const(c) if c.ident == "HOOKS")
}

/// Parses `item` as an `impl Plugin for ...` block; the error says what it is instead.
fn parse_plugin_impl(item: &TokenStream) -> Result<ItemImpl, Error> {
    let first = item.clone().into_iter().next();
    let here = first.map_or_else(Span::call_site, |t| t.span());
    let block = match syn::parse2::<Item>(item.clone()) {
        Ok(Item::Impl(block)) => block,
        Ok(other) => {
            let kind = match other {
                Item::Struct(_) => "a struct",
                Item::Enum(_) => "an enum",
                Item::Fn(_) => "a function",
                Item::Trait(_) => "a trait",
                Item::Mod(_) => "a module",
                _ => "this item",
            };
            return Err(Error::new(here, format!("{USAGE}, not on {kind}")));
        }
        Err(e) => return Err(Error::new(e.span(), format!("{USAGE}: {e}"))),
    };
    if let Some(bang) = &block.modifiers.polarity {
        return Err(Error::new_spanned(
            bang,
            format!("{USAGE}, not on a negative impl"),
        ));
    }
    let Some((path, _)) = &block.trait_ else {
        return Err(Error::new_spanned(
            &block.self_ty,
            format!("{USAGE}, not on an inherent impl"),
        ));
    };
    if path.segments.last().is_none_or(|s| s.ident != "Plugin") {
        return Err(Error::new_spanned(
            path,
            format!("{USAGE}, not on an impl of another trait"),
        ));
    }
    Ok(block)
}

/// What in the block would make the derived list wrong: a hand-written `HOOKS`, a
/// `#[cfg]` on a hook method, a macro call that could define methods.
fn check_items(block: &ItemImpl) -> Vec<Error> {
    let mut errors = Vec::new();
    for item in &block.items {
        match item {
            ImplItem::Const(c) if is_hand_written_hooks(item) => errors.push(Error::new_spanned(
                &c.ident,
                "`HOOKS` is not written by hand: `#[tollgate_guest::plugin]` derives the hook list from the hook methods this impl defines; remove it",
            )),
            ImplItem::Fn(f) if is_hook(&f.sig.ident) => {
                if let Some(cfg) = f.attrs.iter().find(|a| is_cfg(a)) {
                    errors.push(Error::new_spanned(
                        cfg,
                        format!(
                            "`#[cfg]` on the hook method `{}` would leave the derived hook list wrong when it is compiled out; put the `#[cfg]` on the whole impl, or branch inside the method",
                            f.sig.ident
                        ),
                    ));
                }
            }
            ImplItem::Macro(m) => errors.push(Error::new_spanned(
                &m.mac.path,
                "a macro call in `impl Plugin` could define hook methods `#[tollgate_guest::plugin]` cannot see; write the methods out",
            )),
            _ => {}
        }
    }
    errors
}

/// Whether `ident` names one of the hook methods.
fn is_hook(ident: &syn::Ident) -> bool {
    HOOK_METHODS.iter().any(|(method, _)| ident == method)
}

/// Whether `attr` is `#[cfg(...)]`.
fn is_cfg(attr: &Attribute) -> bool {
    attr.path().is_ident("cfg")
}

/// The `PluginHooks` impl listing the hooks `block` defines, under the block's own
/// generics and `#[cfg]`s.
fn hooks_impl(block: &ItemImpl) -> TokenStream {
    let variants = HOOK_METHODS.iter().filter_map(|(method, variant)| {
        let defined = block
            .items
            .iter()
            .any(|i| matches!(i, ImplItem::Fn(f) if f.sig.ident == method));
        defined.then(|| format_ident!("{variant}"))
    });
    let (impl_generics, _, where_clause) = block.generics.split_for_impl();
    let self_ty = &block.self_ty;
    let cfgs = block.attrs.iter().filter(|a| is_cfg(a));
    quote! {
        #(#cfgs)*
        impl #impl_generics ::tollgate_guest::__private::PluginHooks for #self_ty #where_clause {
            const HOOKS: &'static [::tollgate_guest::Hook] = &[#(::tollgate_guest::Hook::#variants),*];
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use syn::{Expr, LitStr};

    /// What an expansion amounts to.
    #[derive(Debug, Default, PartialEq)]
    struct Expansion {
        /// Every item but the `PluginHooks` impl and the errors, printed.
        items: Vec<String>,
        /// The derived hook variants, if the `PluginHooks` impl was emitted.
        hooks: Option<Vec<String>>,
        /// `compile_error!` messages.
        errors: Vec<String>,
    }

    fn expand(attr: TokenStream, item: TokenStream) -> Expansion {
        let file: syn::File = syn::parse2(plugin(attr, item)).expect("the expansion parses");
        let mut out = Expansion::default();
        for item in file.items {
            match item {
                Item::Macro(m) if m.mac.path.segments.last().unwrap().ident == "compile_error" => {
                    out.errors
                        .push(m.mac.parse_body::<LitStr>().expect("a message").value());
                }
                Item::Impl(i) if is_hooks_impl(&i) => {
                    assert!(out.hooks.is_none(), "one hook-list impl");
                    out.hooks = Some(hook_variants(&i));
                }
                other => out.items.push(quote!(#other).to_string()),
            }
        }
        out
    }

    fn is_hooks_impl(i: &ItemImpl) -> bool {
        i.trait_.as_ref().is_some_and(|(path, _)| {
            quote!(#path).to_string() == ":: tollgate_guest :: __private :: PluginHooks"
        })
    }

    fn hook_variants(i: &ItemImpl) -> Vec<String> {
        let [ImplItem::Const(c)] = i.items.as_slice() else {
            panic!("one const");
        };
        assert_eq!(c.ident, "HOOKS");
        let Expr::Reference(r) = &c.expr else {
            panic!("a reference");
        };
        let Expr::Array(a) = &*r.expr else {
            panic!("an array");
        };
        a.elems
            .iter()
            .map(|e| {
                let Expr::Path(p) = e else { panic!("a path") };
                let path = &p.path;
                let text = quote!(#path).to_string();
                let variant = text.strip_prefix(":: tollgate_guest :: Hook :: ");
                variant.expect("a Hook variant").to_string()
            })
            .collect()
    }

    fn hooks_of(item: TokenStream) -> Vec<String> {
        let out = expand(TokenStream::new(), item);
        assert_eq!(out.errors, Vec::<String>::new());
        out.hooks.expect("a hook list")
    }

    #[test]
    fn hooks_follow_the_methods_in_describe_order() {
        let hooks = hooks_of(quote! {
            impl Plugin for P {
                const NAME: &'static str = "p";
                fn budget(c: &C, r: &Request, t: &Target) -> BudgetDecision { BudgetDecision::allow() }
                fn validate(c: &C) -> Result<(), String> { Ok(()) }
                fn route(c: &C, r: &Request) -> Option<RoutePlan> { None }
                fn policy(c: &C, r: &Request) -> Decision { Decision::allow() }
            }
        });
        assert_eq!(hooks, ["Policy", "Route", "Budget"]);
        let hooks = hooks_of(quote! {
            impl tollgate_guest::Plugin for P {
                fn route(c: &C, r: &Request) -> Option<RoutePlan> { None }
            }
        });
        assert_eq!(hooks, ["Route"]);
    }

    #[test]
    fn an_impl_without_hook_methods_lists_none() {
        let hooks = hooks_of(quote! {
            impl Plugin for P {
                const NAME: &'static str = "p";
                type Config = NoConfig;
                fn config_schema() -> &'static str { "{}" }
            }
        });
        assert!(hooks.is_empty());
    }

    #[test]
    fn the_impl_is_kept_and_its_generics_and_cfgs_carried_over() {
        let item = quote! {
            #[cfg(feature = "x")]
            #[allow(dead_code)]
            impl<T: Send + 'static> Plugin for Wrapper<T> where T: Sync {
                fn policy(c: &C, r: &Request) -> Decision { Decision::allow() }
            }
        };
        let out = expand(TokenStream::new(), item.clone());
        assert_eq!(out.items, [item.to_string()]);
        let file: syn::File = syn::parse2(plugin(TokenStream::new(), item)).unwrap();
        let Item::Impl(hooks) = &file.items[1] else {
            panic!("the hook-list impl follows the item");
        };
        let (generics, self_ty, attrs) = (&hooks.generics, &hooks.self_ty, &hooks.attrs);
        let where_clause = &generics.where_clause;
        assert_eq!(
            quote!(#generics #self_ty #where_clause #(#attrs)*).to_string(),
            quote!(<T: Send + 'static> Wrapper<T> where T: Sync #[cfg(feature = "x")]).to_string()
        );
    }

    #[test]
    fn anything_but_an_impl_of_plugin_is_an_error() {
        for (item, expected) in [
            (
                quote!(
                    struct P;
                ),
                "not on a struct",
            ),
            (
                quote!(
                    fn policy() {}
                ),
                "not on a function",
            ),
            (quote!(impl P { fn route() {} }), "not on an inherent impl"),
            (
                quote!(impl Default for P { fn default() -> Self { P } }),
                "not on an impl of another trait",
            ),
            (quote!(impl !Plugin for P {}), "not on a negative impl"),
        ] {
            let out = expand(TokenStream::new(), item.clone());
            assert_eq!(out.errors.len(), 1, "{item}");
            assert!(out.errors[0].starts_with(USAGE), "{}", out.errors[0]);
            assert!(out.errors[0].ends_with(expected), "{}", out.errors[0]);
            assert_eq!(out.hooks, None, "{item}");
            assert_eq!(out.items, [item.to_string()], "the item is kept");
        }
    }

    #[test]
    fn arguments_are_an_error() {
        let out = expand(
            quote!(hooks = [Policy]),
            quote!(impl Plugin for P { fn policy() {} }),
        );
        assert_eq!(out.errors.len(), 1);
        assert!(
            out.errors[0].contains("takes no arguments"),
            "{:?}",
            out.errors
        );
        assert_eq!(out.hooks, Some(vec!["Policy".to_string()]));
    }

    #[test]
    fn a_hand_written_list_is_an_error() {
        let out = expand(
            TokenStream::new(),
            quote! {
                impl Plugin for P {
                    const HOOKS: &'static [Hook] = &[Hook::Route];
                    fn policy() {}
                }
            },
        );
        assert_eq!(out.errors.len(), 1);
        assert!(
            out.errors[0].starts_with("`HOOKS` is not written by hand"),
            "{}",
            out.errors[0]
        );
        assert_eq!(out.hooks, Some(vec!["Policy".to_string()]));
        assert_eq!(
            out.items,
            [quote!(impl Plugin for P { fn policy() {} }).to_string()],
            "the reported constant is dropped, so rustc does not report it again"
        );
    }

    #[test]
    fn cfg_on_a_hook_method_and_macro_calls_are_errors() {
        let out = expand(
            TokenStream::new(),
            quote! {
                impl Plugin for P {
                    #[cfg(feature = "routing")]
                    fn route() {}
                    #[cfg(test)]
                    fn validate() {}
                    #[inline]
                    fn policy() {}
                    define_budget!();
                }
            },
        );
        assert_eq!(out.errors.len(), 2, "{:?}", out.errors);
        assert!(
            out.errors[0].starts_with("`#[cfg]` on the hook method `route`"),
            "{}",
            out.errors[0]
        );
        assert!(
            out.errors[1].starts_with("a macro call in `impl Plugin`"),
            "{}",
            out.errors[1]
        );
    }
}
