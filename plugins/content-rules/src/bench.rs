//! Native timings (ignored test; run with `--ignored --nocapture`): what one call costs
//! with a realistic 50-matcher config over a 4 KiB prompt. No assertions on time.

use crate::scan;
use crate::{ContentRules, Side, verdict};
use std::time::Instant;
use tollgate_guest::Role;
use tollgate_guest::testing::{self, TestRequest};

/// Realistic regexes a tenant admin writes.
pub const PATTERNS: &[&str] = &[
    r"\b\d{3}-\d{4}\b",
    r"(?i)confidential",
    r"(?i)falcon[- ]?\d+",
    r"(?i)\bproject\s+(falcon|osprey|kestrel)\b",
    r"\b[A-Z]{2,4}-\d{3,6}\b",
    r"(?i)internal[ -]only",
    r"\bsk-[A-Za-z0-9]{20,}\b",
    r"AKIA[0-9A-Z]{16}",
    r"(?i)do not distribute",
    r"-----BEGIN [A-Z ]*PRIVATE KEY-----",
    r"\b\d{4}[- ]?\d{4}[- ]?\d{4}[- ]?\d{4}\b",
    r"(?i)\bssn\b",
    r"\b[\w.+-]+@acme\.com\b",
    r"(?i)top[ -]secret",
    r"(?i)password\s*[:=]",
    r"ghp_[A-Za-z0-9]{36}",
    r"(?i)\bq[1-4] (revenue|earnings)\b",
    r"(?i)merger|acquisition",
    r"(?i)layoffs?",
    r"(?i)\bproj-\d+\b",
    r"xox[baprs]-[0-9a-zA-Z-]+",
    r"(?i)restricted",
    r"(?i)\bbluebird\b",
    r"(?i)salary|compensation",
    r"\b(?:\d{1,3}\.){3}\d{1,3}\b",
];

/// 25 pattern rules and 25 keyword rules (names, codenames), some scoped.
pub fn mixed_config() -> String {
    let mut rules = Vec::new();
    for (i, p) in PATTERNS.iter().enumerate() {
        rules.push(serde_json::json!({
            "name": format!("pattern-{i}"), "action": if i % 2 == 0 { "deny" } else { "flag" },
            "patterns": [p], "apply_to": "both",
        }));
    }
    let names = [
        "Jane Doe",
        "John Smith",
        "Priya Patel",
        "Wei Chen",
        "Carlos Garcia",
        "Olga Ivanova",
        "Ahmed Khan",
        "Maria Rossi",
        "Kenji Sato",
        "Fatima Ali",
        "Lars Nilsson",
        "Ana Souza",
        "Tom Becker",
        "Mia Novak",
        "Sam Okafor",
        "Eva Horvat",
        "Noah Levi",
        "Zoe Martin",
        "Ivan Petrov",
        "Lea Dubois",
        "Omar Haddad",
        "Nina Berg",
        "Raj Mehta",
        "Kim Park",
        "Leo Russo",
    ];
    let codenames = [
        "osprey",
        "kestrel",
        "harrier",
        "merlin",
        "goshawk",
        "peregrine",
        "condor",
        "kite",
        "buzzard",
        "hobby",
        "lanner",
        "saker",
        "gyrfalcon",
        "eagle owl",
        "snowy owl",
        "barn owl",
        "tawny",
        "shrike",
        "heron",
        "egret",
        "bittern",
        "plover",
        "curlew",
        "dunlin",
        "godwit",
    ];
    for i in 0..25 {
        let mut rule = serde_json::json!({
            "name": format!("keywords-{i}"), "action": "flag",
            "keywords": [names[i], codenames[i], format!("project {}", codenames[i])],
        });
        if i % 5 == 0 {
            rule["teams"] = serde_json::json!(["eng", "data"]);
            rule["models"] = serde_json::json!(["claude-*", "gpt-4o*"]);
        }
        rules.push(rule);
    }
    serde_json::json!({"rules": rules, "max_prompt_chars": 200000}).to_string()
}

/// The 50 patterns of [`one_rule_config`], one rule each, no scopes.
pub fn fifty_rules_config() -> String {
    let v: serde_json::Value = serde_json::from_str(&one_rule_config()).expect("JSON");
    let rules: Vec<_> = v["rules"][0]["patterns"]
        .as_array()
        .expect("patterns")
        .iter()
        .enumerate()
        .map(|(i, p)| serde_json::json!({"name": format!("rule-{i}"), "patterns": [p]}))
        .collect();
    serde_json::json!({ "rules": rules }).to_string()
}

/// One rule with 50 patterns: the 25 above and 25 whole words.
pub fn one_rule_config() -> String {
    let mut pats: Vec<String> = PATTERNS.iter().map(|p| p.to_string()).collect();
    for w in [
        "osprey",
        "kestrel",
        "harrier",
        "merlin",
        "goshawk",
        "peregrine",
        "condor",
        "buzzard",
        "lanner",
        "saker",
        "gyrfalcon",
        "shrike",
        "heron",
        "egret",
        "bittern",
        "plover",
        "curlew",
        "dunlin",
        "godwit",
        "avocet",
        "sandpiper",
        "redshank",
        "turnstone",
        "whimbrel",
        "knot",
    ] {
        pats.push(format!(r"(?i)\b{w}\b"));
    }
    serde_json::json!({"rules": [{"name": "all", "patterns": pats}]}).to_string()
}

/// About 4 KiB of ordinary prompt text (no match unless `hit`).
pub fn prompt(hit: bool) -> String {
    let para = "Hi team, please summarise the following notes from the planning meeting held on \
2024-03-14. We discussed the roadmap for the next two quarters, the hiring plan and the migration \
of the billing service to the new cluster (ticket 4471, owner: Dana). The design review is \
scheduled for Thursday; bring the latency numbers from the dashboard, version 2.3.1 of the client \
library, and the draft of the customer announcement. Budget questions go to finance before the \
end of the month. ";
    let mut s = String::new();
    while s.len() < 4096 {
        s.push_str(para);
    }
    s.truncate(4096);
    if hit {
        s.replace_range(1000..1040, " call me at 555-0199 re project Osprey  ");
    }
    s
}

fn time<T>(n: u32, mut f: impl FnMut() -> T) -> f64 {
    for _ in 0..n / 10 {
        std::hint::black_box(f());
    }
    let mut samples: Vec<f64> = (0..n)
        .map(|_| {
            let t = Instant::now();
            std::hint::black_box(f());
            t.elapsed().as_secs_f64() * 1e6
        })
        .collect();
    samples.sort_by(f64::total_cmp);
    samples[samples.len() / 2]
}

#[test]
#[ignore = "timings: run with --ignored --nocapture (release for realistic numbers)"]
fn timings() {
    let n = 3000;
    for (label, config) in [
        ("50 rules (25 regex + 25 keyword lists)", mixed_config()),
        ("1 rule x 50 regexes", one_rule_config()),
        ("50 rules x 1 regex", fifty_rules_config()),
    ] {
        let parsed = testing::validate::<ContentRules>(&config);
        assert!(parsed.is_ok(), "{parsed:?}");
        let parse_us = time(n, || testing::validate::<ContentRules>(&config));
        let c: crate::Config = serde_json::from_str(&config).expect("config parses");
        let prepared = c.prepare().expect("encodes");
        let decode_us = time(n, || crate::Config::from_prepared(&prepared));
        for hit in [false, true] {
            let text = prompt(hit);
            let convo = testing::conversation([
                (Role::System, "You are a helpful assistant."),
                (Role::User, text.as_str()),
            ]);
            let scope: Vec<usize> = (0..c.rules.len()).collect();
            let scan_us = time(n, || {
                let counts = scan::scan(&c, &scope, false, &convo.parts);
                verdict(&c, &scope, &counts, Side::Request)
            });
            let req = TestRequest::new().team("eng").model("claude-sonnet-4-5");
            let v = req
                .run_inspect_request::<ContentRules>(&config, &convo)
                .expect("valid");
            // The whole hook as the component runs it in a fresh instance: the config
            // read back from its prepared form (the harness also checks it each time).
            let harness_us = time(n, || {
                req.run_inspect_request::<ContentRules>(&config, &convo)
            });
            println!(
                "{label}, 4 KiB prompt, {}: config parse+validate {parse_us:.1} us, prepared form \
                 ({} bytes) read {decode_us:.1} us, scan {scan_us:.1} us, per call ~{:.1} us \
                 (harness run {harness_us:.1} us); findings {:?}",
                if hit { "2 matches" } else { "no match" },
                prepared.len(),
                decode_us + scan_us,
                v.findings()
                    .iter()
                    .map(|f| (f.rule.as_str(), f.count))
                    .collect::<Vec<_>>(),
            );
        }
    }
}
