//! `tollgate plugin new`: writes a ready plugin project in Rust, Python or JavaScript:
//! the source with each chosen hook stubbed, its config schema, fixture cases for
//! `tollgate plugin test`, and a `tollgate-plugin.toml` naming the build command and
//! the component it makes. The project builds and its cases pass as generated.

use super::plugin_test::{MANIFEST, Manifest};
use anyhow::Context as _;
use std::path::{Path, PathBuf};

/// A plugin language.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Lang {
    /// A Rust crate built for `wasm32-wasip2` with the `tollgate-guest` SDK.
    Rust,
    /// A Python module built with `componentize-py`.
    Python,
    /// A JavaScript module built with `componentize-js`.
    Js,
}

/// A hook the project stubs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, clap::ValueEnum)]
pub enum NewHook {
    /// Allow or deny (here: refuse models of a block list).
    Policy,
    /// Choose the provider (here: one configured provider).
    Route,
    /// Grant limits (here: a daily cost cap per user).
    Budget,
}

/// Arguments of `tollgate plugin new`.
pub struct PluginNew {
    /// The plugin's name: lower-case letters, digits and `-`.
    pub name: String,
    /// Its language.
    pub lang: Lang,
    /// The hooks to stub (default: policy).
    pub hooks: Vec<NewHook>,
    /// Where to write it (default: `./<name>`).
    pub dir: Option<PathBuf>,
    /// The guest SDKs' folder (`guest-sdk` of a Tollgate checkout); found next to the
    /// binary when not given.
    pub sdk: Option<PathBuf>,
}

/// Writes the project; prints what to do next.
pub fn run_plugin_new(args: &PluginNew) -> anyhow::Result<()> {
    let name = &args.name;
    anyhow::ensure!(
        !name.is_empty()
            && name.len() <= 64
            && name.starts_with(|c: char| c.is_ascii_lowercase())
            && name
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-'),
        "name: '{name}' must start with a lower-case letter and hold only a-z, 0-9 and '-' (at most 64)"
    );
    let dir = args.dir.clone().unwrap_or_else(|| PathBuf::from(name));
    anyhow::ensure!(
        !dir.exists() || std::fs::read_dir(&dir).is_ok_and(|mut d| d.next().is_none()),
        "{}: already exists and is not empty",
        dir.display()
    );
    let sdk = match &args.sdk {
        Some(s) => s.clone(),
        None => find_sdk().context(
            "cannot find the guest SDKs (a Tollgate checkout's guest-sdk folder): pass --sdk DIR \
             or set TOLLGATE_GUEST_SDK",
        )?,
    };
    let sdk = std::fs::canonicalize(&sdk)
        .with_context(|| format!("--sdk {}: no such folder", sdk.display()))?;
    anyhow::ensure!(
        sdk.join("Cargo.toml").is_file()
            && sdk
                .parent()
                .is_some_and(|r| r.join("wit/plugin.wit").is_file()),
        "--sdk {}: not a Tollgate checkout's guest-sdk folder (no Cargo.toml, or no ../wit/plugin.wit)",
        sdk.display()
    );
    let mut hooks = args.hooks.clone();
    if hooks.is_empty() {
        hooks.push(NewHook::Policy);
    }
    hooks.sort();
    hooks.dedup();
    let p = Project {
        name,
        ty: type_name(name),
        hooks: &hooks,
        sdk: &sdk,
    };
    let (files, manifest) = match args.lang {
        Lang::Rust => p.rust(),
        Lang::Python => p.python(),
        Lang::Js => p.js(),
    };
    std::fs::create_dir_all(dir.join("tests"))?;
    for (path, text) in files.into_iter().chain([
        ("config.schema.json".to_string(), p.schema()),
        ("tests/cases.toml".to_string(), p.cases()),
        (MANIFEST.to_string(), manifest_text(&manifest)),
    ]) {
        let at = dir.join(&path);
        if let Some(parent) = at.parent() {
            std::fs::create_dir_all(parent)?;
        }
        std::fs::write(&at, text).with_context(|| format!("writing {}", at.display()))?;
    }
    println!(
        "wrote {} ({:?}, hooks {:?})",
        dir.display(),
        args.lang,
        hooks
    );
    println!("next:");
    println!(
        "  tollgate plugin build {}   # {}",
        dir.display(),
        manifest.build
    );
    println!("  tollgate plugin test {}", dir.display());
    Ok(())
}

/// `tollgate plugin build DIR`: runs the project's build command (`tollgate-plugin.toml`)
/// in its folder; returns the exit code.
pub fn run_plugin_build(dir: &Path) -> anyhow::Result<i32> {
    let m = Manifest::read(dir)?;
    println!("{}: {}", dir.display(), m.build);
    let status = std::process::Command::new("sh")
        .arg("-c")
        .arg(&m.build)
        .current_dir(dir)
        .status()
        .with_context(|| format!("running `{}`", m.build))?;
    if !status.success() {
        return Ok(status.code().unwrap_or(1));
    }
    let wasm = dir.join(&m.wasm);
    anyhow::ensure!(
        wasm.is_file(),
        "`{}` succeeded but did not write {}",
        m.build,
        wasm.display()
    );
    let size = std::fs::metadata(&wasm).map(|md| md.len()).unwrap_or(0);
    println!("built {} ({size} bytes)", wasm.display());
    Ok(0)
}

/// `guest-sdk` of the checkout the binary was built in, or `$TOLLGATE_GUEST_SDK`.
fn find_sdk() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("TOLLGATE_GUEST_SDK") {
        return Some(PathBuf::from(p));
    }
    let exe = std::env::current_exe().ok()?;
    exe.ancestors()
        .map(|a| a.join("guest-sdk"))
        .find(|g| g.join("Cargo.toml").is_file() && g.join("python").is_dir())
}

/// `path` as one word of a `sh -c` command: as is when it is plain, else single-quoted.
fn quote(path: &Path) -> String {
    let s = path.display().to_string();
    if s.chars()
        .all(|c| c.is_ascii_alphanumeric() || "/._-+:@".contains(c))
    {
        s
    } else {
        format!("'{}'", s.replace('\'', r"'\''"))
    }
}

/// `my-policy` → `MyPolicy`.
fn type_name(name: &str) -> String {
    name.split('-')
        .filter(|s| !s.is_empty())
        .map(|s| {
            let mut c = s.chars();
            c.next()
                .map(|f| f.to_ascii_uppercase().to_string() + c.as_str())
                .unwrap_or_default()
        })
        .collect::<String>()
        .trim_start_matches(|c: char| c.is_ascii_digit())
        .to_string()
}

fn manifest_text(m: &Manifest) -> String {
    let mut out = format!(
        "# Read by `tollgate plugin test` (and written by `tollgate plugin new`).\n\
         name = {:?}\nlang = {:?}\n# Run in this folder; it writes `wasm`.\nbuild = {:?}\nwasm = {:?}\n",
        m.name,
        m.lang,
        m.build,
        m.wasm.display().to_string()
    );
    if let (Some(mem), Some(ms)) = (m.memory_mib, m.deadline_ms) {
        out.push_str(&format!(
            "# An interpreter's fresh instance needs more than the gateway's default 16 MiB and\n\
             # 5 ms: give the tenant `sandbox = {{ memory_mib = {mem}, deadline_ms = {ms} }}`, or\n\
             # set `reuse_instance = true` on the plugin (docs/plugins.md, \"Speed\").\n\
             memory_mib = {mem}\ndeadline_ms = {ms}\n"
        ));
    }
    out
}

fn fill(template: &str, vars: &[(&str, &str)]) -> String {
    let mut out = template.to_string();
    for (k, v) in vars {
        out = out.replace(&format!("{{{{{k}}}}}"), v);
    }
    out
}

struct Project<'a> {
    name: &'a str,
    ty: String,
    hooks: &'a [NewHook],
    sdk: &'a Path,
}

impl Project<'_> {
    fn has(&self, h: NewHook) -> bool {
        self.hooks.contains(&h)
    }

    /// The config fields of the chosen hooks: `(json name, schema)`.
    fn fields(&self) -> Vec<(&'static str, &'static str)> {
        let mut f = Vec::new();
        if self.has(NewHook::Policy) {
            f.push((
                "blocked_models",
                r#"{"description": "Models (globs: * any run, ? one character) this plugin refuses.", "type": "array", "items": {"type": "string", "minLength": 1}}"#,
            ));
        }
        if self.has(NewHook::Route) {
            f.push((
                "provider",
                r#"{"description": "The provider every request is served by; absent leaves routing alone.", "type": "string", "minLength": 1}"#,
            ));
        }
        if self.has(NewHook::Budget) {
            f.push((
                "daily_usd",
                r#"{"description": "Most each user (or key, without a user) may spend a day, in USD.", "type": "number", "exclusiveMinimum": 0}"#,
            ));
        }
        f
    }

    fn schema(&self) -> String {
        let props: Vec<String> = self
            .fields()
            .iter()
            .map(|(k, s)| format!("    \"{k}\": {s}"))
            .collect();
        format!(
            "{{\n  \"$schema\": \"https://json-schema.org/draft/2020-12/schema\",\n  \"title\": \"{}\",\n  \"type\": \"object\",\n  \"additionalProperties\": false,\n  \"properties\": {{\n{}\n  }}\n}}\n",
            self.name,
            props.join(",\n")
        )
    }

    /// Fixture cases that pass against the stubs as generated.
    fn cases(&self) -> String {
        let n = self.name;
        let mut config = Vec::new();
        if self.has(NewHook::Policy) {
            config.push(r#"blocked_models = ["claude-opus-*"]"#);
        }
        if self.has(NewHook::Route) {
            config.push(r#"provider = "anthropic""#);
        }
        if self.has(NewHook::Budget) {
            config.push("daily_usd = 10.0");
        }
        let mut out = format!(
            "# Cases for `tollgate plugin test .`: a request, the config, and what the plugin\n\
             # must answer. docs/plugins.md lists every field.\n\
             config = {{ {} }}\n",
            config.join(", ")
        );
        out.push_str(
            "\n[[case]]\nname = \"the example config is accepted\"\nhook = \"validate\"\nexpect = { decision = \"allow\" }\n",
        );
        if self.has(NewHook::Policy) {
            out.push_str(&format!(
                "\n[[case]]\nname = \"a model that is not blocked is allowed\"\nrequest = {{ model = \"claude-sonnet-4-5\", team = \"engineering\" }}\nexpect = {{ decision = \"allow\" }}\n\
                 \n[[case]]\nname = \"a blocked model is refused\"\nrequest = {{ model = \"claude-opus-4-1\" }}\nexpect = {{ decision = \"deny\", status = 403, error_type = \"permission_error\", message = \"{n}: model 'claude-opus-4-1' is blocked\" }}\n\
                 \n[[case]]\nname = \"a blocked model must be a list of globs\"\nhook = \"validate\"\nconfig = {{ blocked_models = [\"\"] }}\nexpect = {{ decision = \"deny\", message = \"blocked_models[0]\" }}\n"
            ));
        }
        if self.has(NewHook::Route) {
            out.push_str(
                "\n[[case]]\nname = \"requests go to the configured provider\"\nexpect = { strategy = \"single\", route = [{ provider = \"anthropic\" }] }\n\
                 \n[[case]]\nname = \"without a provider, routing is left alone\"\nhook = \"route\"\nconfig = {}\nexpect = { no_route = true }\n",
            );
        }
        if self.has(NewHook::Budget) {
            out.push_str(&format!(
                "\n[[case]]\nname = \"each user gets a daily cost cap\"\nrequest = {{ user = \"dev@acme.com\" }}\nexpect = {{ decision = \"allow\", limits = [{{ name = \"{n}:daily\", scope = \"user\", metric = \"cost\", period = \"day\", limit = 10.0 }}] }}\n\
                 \n[[case]]\nname = \"without a user, the key gets the cap\"\nhook = \"budget\"\nexpect = {{ decision = \"allow\", limits = [{{ scope = \"key\" }}] }}\n"
            ));
        }
        out
    }

    fn rust(&self) -> (Vec<(String, String)>, Manifest) {
        let n = self.name;
        let crate_name = n.replace('-', "_");
        let build = "cargo build --release --target wasm32-wasip2 --target-dir target".to_string();
        let mut imports = vec!["Plugin"];
        let (mut fields, mut validate, mut hooks) = (String::new(), String::new(), String::new());
        if self.has(NewHook::Policy) {
            imports.extend(["Decision", "Request", "glob_match"]);
            fields.push_str("    /// Models (globs) this plugin refuses.\n    #[serde(default)]\n    pub blocked_models: Vec<String>,\n");
            validate.push_str("        if let Some(i) = c.blocked_models.iter().position(String::is_empty) {\n            return Err(format!(\"blocked_models[{i}]: must not be empty\"));\n        }\n");
            hooks.push_str(&format!(
                "\n    fn policy(c: &Config, req: &Request) -> Decision {{\n        let model = req.model();\n        if c.blocked_models.iter().any(|g| glob_match(g, model)) {{\n            return Decision::forbid(format!(\"{n}: model '{{model}}' is blocked\"));\n        }}\n        Decision::allow()\n    }}\n"
            ));
        }
        if self.has(NewHook::Route) {
            imports.extend(["Request", "RoutePlan", "Target"]);
            fields.push_str("    /// The provider every request is served by; absent leaves routing alone.\n    #[serde(default)]\n    pub provider: Option<String>,\n");
            validate.push_str("        if c.provider.as_deref() == Some(\"\") {\n            return Err(\"provider: must not be empty\".into());\n        }\n");
            hooks.push_str("\n    fn route(c: &Config, _req: &Request) -> Option<RoutePlan> {\n        let provider = c.provider.as_ref()?;\n        Some(RoutePlan::single(Target::new(provider)))\n    }\n");
        }
        if self.has(NewHook::Budget) {
            imports.extend([
                "BudgetDecision",
                "BudgetGrant",
                "BudgetLimit",
                "Metric",
                "Period",
                "Request",
                "Scope",
                "Target",
            ]);
            fields.push_str("    /// Most each user (or key, without a user) may spend a day, in USD.\n    #[serde(default)]\n    pub daily_usd: Option<f64>,\n");
            validate.push_str("        if c.daily_usd.is_some_and(|d| !(d.is_finite() && d > 0.0)) {\n            return Err(\"daily_usd: must be a number above 0\".into());\n        }\n");
            hooks.push_str(&format!(
                "\n    fn budget(c: &Config, req: &Request, _target: &Target) -> BudgetDecision {{\n        let Some(usd) = c.daily_usd else {{\n            return BudgetDecision::allow();\n        }};\n        let scope = if req.user().is_some() {{ Scope::User }} else {{ Scope::Key }};\n        let limit = BudgetLimit::new(\"{n}:daily\", scope, Metric::Cost, Period::Day, usd);\n        BudgetDecision::allow_with(BudgetGrant::new().limit(limit))\n    }}\n"
            ));
        }
        imports.sort();
        imports.dedup();
        let imports = format!("{{{}}}", imports.join(", "));
        let lib = fill(
            include_str!("templates/rust_lib.rs.txt"),
            &[
                ("name", n),
                ("build", &build),
                ("imports", &imports),
                ("type", &self.ty),
                ("rust_fields", &fields),
                ("rust_validate", &validate),
                ("rust_hooks", &hooks),
            ],
        );
        let cargo = format!(
            "[package]\nname = \"{n}\"\nversion = \"0.1.0\"\nedition = \"2024\"\npublish = false\n\n\
             [lib]\ncrate-type = [\"cdylib\", \"rlib\"]\n\n\
             [dependencies]\nserde = {{ version = \"1\", features = [\"derive\"] }}\n\
             tollgate-guest = {{ path = {:?} }}\n\n\
             [profile.release]\nopt-level = 3\nlto = true\ncodegen-units = 1\npanic = \"abort\"\nstrip = true\n\n\
             # A project of its own, even inside another workspace.\n[workspace]\n",
            self.sdk.display().to_string()
        );
        (
            vec![
                ("Cargo.toml".into(), cargo),
                ("src/lib.rs".into(), lib),
                (".gitignore".into(), "/target\n".into()),
            ],
            Manifest {
                name: n.into(),
                lang: "rust".into(),
                build,
                wasm: PathBuf::from(format!("target/wasm32-wasip2/release/{crate_name}.wasm")),
                memory_mib: None,
                deadline_ms: None,
            },
        )
    }

    fn python(&self) -> (Vec<(String, String)>, Manifest) {
        let n = self.name;
        let wasm = format!("build/{}.wasm", n.replace('-', "_"));
        let build = format!(
            "componentize-py -d {} -w plugin componentize app -p . -p {} -o {wasm}",
            quote(&self.sdk.parent().unwrap_or(self.sdk).join("wit/plugin.wit")),
            quote(&self.sdk.join("python"))
        );
        let mut imports = vec!["Fields", "Plugin", "export"];
        let (mut fields, mut known, mut parse, mut hooks) =
            (String::new(), Vec::new(), Vec::new(), String::new());
        if self.has(NewHook::Policy) {
            imports.extend(["Decision", "Request", "glob_match", "string_at"]);
            fields.push_str("    blocked_models: tuple[str, ...]\n");
            known.push("\"blocked_models\"");
            parse.push(
                "tuple(string_at(p, g, nonempty=True) for p, g in f.items(\"blocked_models\", ()))",
            );
            hooks.push_str(&format!(
                "\n    def policy(self, config: Config, req: Request) -> Decision:\n        if any(glob_match(g, req.model) for g in config.blocked_models):\n            return Decision.forbid(f\"{n}: model '{{req.model}}' is blocked\")\n        return Decision.allow()\n"
            ));
        }
        if self.has(NewHook::Route) {
            imports.extend(["Request", "RoutePlan", "Target"]);
            fields.push_str("    provider: str | None\n");
            known.push("\"provider\"");
            parse.push("f.string(\"provider\", None, nonempty=True)");
            hooks.push_str("\n    def route(self, config: Config, req: Request) -> RoutePlan | None:\n        if config.provider is None:\n            return None\n        return RoutePlan.single(Target(config.provider))\n");
        }
        if self.has(NewHook::Budget) {
            imports.extend([
                "BudgetDecision",
                "BudgetLimit",
                "ConfigError",
                "Metric",
                "Period",
                "Request",
                "Scope",
                "Target",
            ]);
            fields.push_str("    daily_usd: float | None\n");
            known.push("\"daily_usd\"");
            parse.push("daily_usd(f)");
            hooks.push_str(&format!(
                "\n    def budget(self, config: Config, req: Request, target: Target) -> BudgetDecision:\n        if config.daily_usd is None:\n            return BudgetDecision.allow()\n        scope = Scope.USER if req.user is not None else Scope.KEY\n        return BudgetDecision.allow([BudgetLimit(\"{n}:daily\", scope, Metric.COST, Period.DAY, config.daily_usd)])\n"
            ));
        }
        imports.sort();
        imports.dedup();
        let mut parse_text = String::from("        return Config(\n");
        for p in &parse {
            parse_text.push_str(&format!("            {p},\n"));
        }
        parse_text.push_str("        )\n");
        let mut source = fill(
            include_str!("templates/python_app.py.txt"),
            &[
                ("name", n),
                ("build", &build),
                ("imports", &imports.join(",\n    ")),
                ("type", &self.ty),
                ("py_fields", &fields),
                ("py_known", &format!("{},", known.join(", "))),
                ("py_parse", parse_text.trim_end()),
                ("py_hooks", &hooks),
            ],
        );
        if self.has(NewHook::Budget) {
            parse_text = "\n\ndef daily_usd(f: Fields) -> float | None:\n    usd = f.number(\"daily_usd\", None)\n    if usd is not None and usd <= 0:\n        raise ConfigError(\"daily_usd\", \"must be a number above 0\")\n    return usd\n".into();
            source = source.replace(
                "\n\nGuest = export(",
                &format!("{parse_text}\n\nGuest = export("),
            );
        }
        (
            vec![
                ("app.py".into(), source),
                (".gitignore".into(), "/build\n__pycache__/\n".into()),
            ],
            Manifest {
                name: n.into(),
                lang: "python".into(),
                build,
                wasm: PathBuf::from(wasm),
                memory_mib: Some(48),
                deadline_ms: Some(50),
            },
        )
    }

    fn js(&self) -> (Vec<(String, String)>, Manifest) {
        let n = self.name;
        let wasm = format!("build/{}.wasm", n.replace('-', "_"));
        let build = format!(
            "node {} . {wasm}",
            quote(&self.sdk.join("js/scripts/build-plugin.js"))
        );
        let mut imports = vec!["definePlugin"];
        let (mut known, mut parse, mut hooks) = (Vec::new(), String::new(), String::new());
        if self.has(NewHook::Policy) {
            imports.extend(["Decision", "globMatch"]);
            known.push("'blocked_models'");
            parse.push_str("      blockedModels: root.field('blocked_models').optional((v) => v.items().map((g) => g.string({ nonEmpty: true })), []),\n");
            hooks.push_str(&format!(
                "\n  policy(config, req) {{\n    if (config.blockedModels.some((g) => globMatch(g, req.model))) {{\n      return Decision.forbid(`{n}: model '${{req.model}}' is blocked`);\n    }}\n    return Decision.allow();\n  }},\n"
            ));
        }
        if self.has(NewHook::Route) {
            imports.extend(["RoutePlan", "target"]);
            known.push("'provider'");
            parse.push_str("      provider: root.field('provider').optional((v) => v.string({ nonEmpty: true })),\n");
            hooks.push_str("\n  route(config) {\n    return config.provider === undefined ? undefined : RoutePlan.single(target(config.provider));\n  },\n");
        }
        if self.has(NewHook::Budget) {
            imports.extend(["BudgetDecision", "budgetLimit"]);
            known.push("'daily_usd'");
            parse.push_str("      dailyUsd: root.field('daily_usd').optional((v) => {\n        if (!(v.number() > 0)) v.fail('must be a number above 0');\n        return v.value;\n      }),\n");
            hooks.push_str(&format!(
                "\n  budget(config, req) {{\n    if (config.dailyUsd === undefined) return BudgetDecision.allow();\n    const scope = req.user !== undefined ? 'user' : 'key';\n    return BudgetDecision.allow({{ limits: [budgetLimit('{n}:daily', scope, 'cost', 'day', config.dailyUsd)] }});\n  }},\n"
            ));
        }
        imports.sort();
        imports.dedup();
        let source = fill(
            include_str!("templates/js_plugin.js.txt"),
            &[
                ("name", n),
                ("build", &build),
                ("imports", &imports.join(", ")),
                ("js_known", &known.join(", ")),
                ("js_parse", &parse),
                ("js_hooks", &hooks),
            ],
        );
        let package = format!(
            "{{\n  \"name\": \"{n}\",\n  \"version\": \"0.1.0\",\n  \"private\": true,\n  \"type\": \"module\",\n  \"main\": \"plugin.js\",\n  \"dependencies\": {{\n    \"@tollgate/guest\": \"file:{}\"\n  }}\n}}\n",
            self.sdk.join("js").display()
        );
        (
            vec![
                ("plugin.js".into(), source),
                ("package.json".into(), package),
                (".gitignore".into(), "/build\nnode_modules/\n".into()),
            ],
            Manifest {
                name: n.into(),
                lang: "js".into(),
                build,
                wasm: PathBuf::from(wasm),
                memory_mib: Some(48),
                deadline_ms: Some(50),
            },
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_are_quoted_for_the_shell_only_when_needed() {
        assert_eq!(
            quote(Path::new("/work/guest-sdk/python")),
            "/work/guest-sdk/python"
        );
        assert_eq!(quote(Path::new("/home/a b/it's")), r"'/home/a b/it'\''s'");
    }

    #[test]
    fn names_become_type_names() {
        assert_eq!(type_name("model-guard"), "ModelGuard");
        assert_eq!(type_name("a2-b"), "A2B");
    }
}
