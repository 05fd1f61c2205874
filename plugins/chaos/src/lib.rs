//! `chaos`: a plugin that misbehaves on purpose, for end-to-end tests of the sandbox.
//!
//! It shows that a plugin which traps, spins, hogs memory or reaches for ambient
//! authority fails only its own request, within the configured deadline and memory cap,
//! and learns nothing about the machine. Never deploy it for real traffic.
//!
//! Config: `{"mode": "..."}` (default `allow`), one of:
//!
//! | mode         | behaviour                                                                  |
//! |--------------|----------------------------------------------------------------------------|
//! | `allow`      | allows                                                                     |
//! | `deny`       | denies: `status` (default 403, `permission_error`) and optional `message`  |
//! | `annotate`   | allows with labels `chaos`, `chaos.model`, `chaos.tenant`                  |
//! | `trap`       | panics, which the wasm build turns into a trap                             |
//! | `loop`       | spins forever until the host's CPU deadline interrupts it                  |
//! | `oom`        | allocates and touches 1 MiB chunks until the memory cap stops it          |
//! | `log`        | writes one host log line at each level, then allows                        |
//! | `read-body`  | fetches the body from the host; labels `body.len` and `body.bytes`         |
//! | `wasi-probe` | tries env vars, `/etc/passwd`, TCP to 127.0.0.1:1; one label per probe     |
//! | `count`      | allows with label `chaos.calls`: the calls this instance has served (1 for |
//! |              | a fresh instance; more when the entry sets `reuse_instance`); traps on the |
//! |              | call numbered `trap_at` when that is set                                   |
//!
//! `wasi-probe` labels start with `denied` when the attempt failed and `ALLOWED` when
//! it worked, so a test can assert every value starts with `denied`.

use serde::Deserialize;
use std::hint::black_box;
use tollgate_guest::{Decision, LogLevel, Plugin, Request};

/// The plugin; exported as the component's `guest` interface.
pub struct Chaos;

/// What the plugin does on each request.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Mode {
    /// Allow.
    #[default]
    Allow,
    /// Deny with `status` and `message`.
    Deny,
    /// Allow with labels.
    Annotate,
    /// Panic (a trap in wasm).
    Trap,
    /// Spin forever.
    Loop,
    /// Allocate until memory runs out.
    Oom,
    /// Log at every level.
    Log,
    /// Read the body via the host.
    ReadBody,
    /// Probe for ambient authority through WASI.
    WasiProbe,
    /// Count the calls this instance served.
    Count,
}

/// The plugin's config.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// What to do.
    #[serde(default)]
    pub mode: Mode,
    /// HTTP status for `deny` (default 403; the host clamps values outside 400..=599).
    #[serde(default)]
    pub status: Option<u16>,
    /// Message for `deny`.
    #[serde(default)]
    pub message: Option<String>,
    /// For `count`: trap on this call of the instance.
    #[serde(default)]
    pub trap_at: Option<u32>,
}

/// Calls this instance has served (mode `count`).
static CALLS: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);

const SCHEMA: &str = r#"{
  "$schema": "https://json-schema.org/draft/2020-12/schema",
  "title": "chaos",
  "type": "object",
  "additionalProperties": false,
  "properties": {
    "mode": {
      "enum": ["allow", "deny", "annotate", "trap", "loop", "oom", "log", "read-body", "wasi-probe", "count"],
      "default": "allow"
    },
    "status": {"description": "HTTP status for mode = deny.", "type": "integer", "default": 403},
    "message": {"description": "Message for mode = deny.", "type": "string"},
    "trap_at": {"description": "For mode = count: trap on this call of the instance.", "type": "integer", "minimum": 1}
  }
}"#;

#[tollgate_guest::plugin]
impl Plugin for Chaos {
    const NAME: &'static str = "chaos";
    const VERSION: &'static str = env!("CARGO_PKG_VERSION");
    type Config = Config;

    fn config_schema() -> &'static str {
        SCHEMA
    }

    fn validate(c: &Config) -> Result<(), String> {
        if c.mode != Mode::Deny && (c.status.is_some() || c.message.is_some()) {
            return Err("status and message are only used with mode = \"deny\"".into());
        }
        if c.mode != Mode::Count && c.trap_at.is_some() {
            return Err("trap_at is only used with mode = \"count\"".into());
        }
        Ok(())
    }

    fn policy(c: &Config, req: &Request) -> Decision {
        match c.mode {
            Mode::Allow => Decision::allow(),
            Mode::Deny => Decision::deny(
                c.status.unwrap_or(403),
                "permission_error",
                c.message
                    .as_deref()
                    .unwrap_or("denied by the chaos test plugin"),
            ),
            Mode::Annotate => Decision::allow_with([
                ("chaos", "annotated"),
                ("chaos.model", req.model()),
                ("chaos.tenant", req.tenant()),
            ]),
            Mode::Trap => panic!("chaos: deliberate trap"),
            Mode::Count => {
                let n = CALLS.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1;
                if c.trap_at == Some(n) {
                    panic!("chaos: deliberate trap on call {n}");
                }
                Decision::allow_with([("chaos.calls", n.to_string())])
            }
            Mode::Loop => spin(),
            Mode::Oom => exhaust_memory(),
            Mode::Log => {
                for (level, name) in [
                    (LogLevel::Trace, "Trace"),
                    (LogLevel::Debug, "Debug"),
                    (LogLevel::Info, "Info"),
                    (LogLevel::Warn, "Warn"),
                    (LogLevel::Error, "Error"),
                ] {
                    req.log(level, format!("chaos: {name} line"));
                }
                Decision::allow()
            }
            Mode::ReadBody => {
                let len = req.body().len();
                Decision::allow_with([
                    ("body.len", len.to_string()),
                    ("body.bytes", req.body_bytes().to_string()),
                ])
            }
            Mode::WasiProbe => Decision::allow_with(wasi_probe()),
        }
    }
}

tollgate_guest::export_plugin!(Chaos);

/// Loops forever; `black_box` keeps the optimiser from proving the loop useless.
fn spin() -> ! {
    let mut n: u64 = 0;
    loop {
        n = black_box(n.wrapping_add(1));
    }
}

/// Keeps allocating 1 MiB chunks and writing to every byte, so the memory is really
/// used, until allocation fails (a trap in wasm) or the host stops the instance.
fn exhaust_memory() -> ! {
    const CHUNK: usize = 1 << 20;
    let mut chunks: Vec<Vec<u8>> = Vec::new();
    loop {
        let mut chunk = Vec::with_capacity(CHUNK);
        chunk.resize(CHUNK, black_box(0xA5u8));
        chunks.push(black_box(chunk));
    }
}

/// Tries what a sandboxed plugin must not be able to do; one label per attempt.
fn wasi_probe() -> Vec<(String, String)> {
    let env = {
        let vars = std::env::vars_os().count();
        match std::env::var("HOME") {
            Ok(_) => format!("ALLOWED: HOME is set ({vars} variables visible)"),
            Err(e) if vars == 0 => format!("denied: {e}; no variables visible"),
            Err(e) => format!("ALLOWED: {e}, but {vars} variables visible"),
        }
    };
    let fs = match std::fs::File::open("/etc/passwd") {
        Ok(_) => "ALLOWED: opened /etc/passwd".to_string(),
        Err(e) => format!("denied: {e}"),
    };
    let tcp = match std::net::TcpStream::connect(("127.0.0.1", 1)) {
        Ok(_) => "ALLOWED: connected to 127.0.0.1:1".to_string(),
        // Connection refused means the network was reachable: that is a leak too.
        Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => {
            format!("ALLOWED: reached the network ({e})")
        }
        Err(e) => format!("denied: {e}"),
    };
    vec![
        ("wasi.env".into(), env),
        ("wasi.fs".into(), fs),
        ("wasi.tcp".into(), tcp),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;
    use tollgate_guest::Hook;
    use tollgate_guest::testing::{self, LogLine, TestRequest};

    fn run(config: &str) -> Decision {
        TestRequest::new()
            .run::<Chaos>(config)
            .expect("config is valid")
    }

    #[test]
    fn describe() {
        let info = testing::describe::<Chaos>();
        assert_eq!(
            (info.name.as_str(), info.hooks.as_slice()),
            ("chaos", &[Hook::Policy][..])
        );
        let schema: serde_json::Value =
            serde_json::from_str(&info.config_schema).expect("schema is JSON");
        assert_eq!(
            schema["properties"]["mode"]["enum"]
                .as_array()
                .map(Vec::len),
            Some(10)
        );
    }

    #[test]
    fn count_numbers_the_calls_and_traps_only_where_asked() {
        assert!(
            Chaos::validate(&Config {
                trap_at: Some(2),
                ..Config::default()
            })
            .is_err(),
            "trap_at belongs to count"
        );
        let label = |d: Decision| match d {
            Decision::AllowWith(labels) => labels
                .into_iter()
                .find(|a| a.key == "chaos.calls")
                .map(|a| a.value),
            other => panic!("count should allow with a label: {other:?}"),
        };
        let first = label(run(r#"{"mode":"count"}"#)).expect("a count");
        let second = label(run(r#"{"mode":"count"}"#)).expect("a count");
        let (a, b): (u32, u32) = (first.parse().expect("n"), second.parse().expect("n"));
        assert!(b > a, "{a} then {b}");
    }

    #[test]
    fn config() {
        assert_eq!(testing::validate::<Chaos>("{}"), Ok(()));
        for mode in [
            "allow",
            "deny",
            "annotate",
            "trap",
            "loop",
            "oom",
            "log",
            "read-body",
            "wasi-probe",
        ] {
            assert_eq!(
                testing::validate::<Chaos>(&format!(r#"{{"mode": "{mode}"}}"#)),
                Ok(()),
                "{mode}"
            );
        }
        let err = testing::validate::<Chaos>(r#"{"mode": "explode"}"#).unwrap_err();
        assert!(
            err.starts_with("config: mode: unknown variant `explode`"),
            "{err}"
        );
        let err = testing::validate::<Chaos>(r#"{"mode": "allow", "status": 500}"#).unwrap_err();
        assert_eq!(
            err,
            r#"config: status and message are only used with mode = "deny""#
        );
    }

    #[test]
    fn allow_and_deny() {
        assert_eq!(run("{}"), Decision::Allow);
        assert_eq!(run(r#"{"mode": "allow"}"#), Decision::Allow);
        assert_eq!(
            run(r#"{"mode": "deny"}"#),
            Decision::forbid("denied by the chaos test plugin")
        );
        assert_eq!(
            run(r#"{"mode": "deny", "status": 429, "message": "slow"}"#),
            Decision::deny(429, "permission_error", "slow")
        );
    }

    #[test]
    fn annotate() {
        let d = TestRequest::new()
            .tenant("acme")
            .model("m")
            .run::<Chaos>(r#"{"mode": "annotate"}"#)
            .unwrap();
        assert_eq!(
            d,
            Decision::allow_with([
                ("chaos", "annotated"),
                ("chaos.model", "m"),
                ("chaos.tenant", "acme")
            ])
        );
    }

    #[test]
    fn log_writes_each_level() {
        let req = TestRequest::new();
        assert_eq!(req.run::<Chaos>(r#"{"mode": "log"}"#), Ok(Decision::Allow));
        let levels: Vec<LogLevel> = req.logs().iter().map(|l: &LogLine| l.level).collect();
        assert_eq!(
            levels,
            [
                LogLevel::Trace,
                LogLevel::Debug,
                LogLevel::Info,
                LogLevel::Warn,
                LogLevel::Error
            ]
        );
        assert_eq!(req.logs()[2].message, "chaos: Info line");
    }

    #[test]
    fn read_body() {
        let req = TestRequest::new().body(r#"{"model":"m"}"#);
        let d = req.run::<Chaos>(r#"{"mode": "read-body"}"#).unwrap();
        assert_eq!(d.annotation("body.len"), Some("13"));
        assert_eq!(d.annotation("body.bytes"), Some("13"));
        assert_eq!(req.body_reads(), 1);
    }

    #[test]
    #[should_panic(expected = "chaos: deliberate trap")]
    fn trap_panics() {
        run(r#"{"mode": "trap"}"#);
    }

    #[test]
    fn wasi_probe_reports_each_attempt() {
        // Natively nothing is sandboxed, so only the shape is checked here; the
        // end-to-end tests check that every value starts with `denied` under the host.
        let d = run(r#"{"mode": "wasi-probe"}"#);
        let keys: Vec<&str> = d.annotations().iter().map(|a| a.key.as_str()).collect();
        assert_eq!(keys, ["wasi.env", "wasi.fs", "wasi.tcp"]);
        for a in d.annotations() {
            assert!(
                a.value.starts_with("denied") || a.value.starts_with("ALLOWED"),
                "{}: {}",
                a.key,
                a.value
            );
        }
    }
}
