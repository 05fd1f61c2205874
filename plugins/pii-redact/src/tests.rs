//! Native tests through the guest SDK's harness (the same code path as the component),
//! plus detector tests on [`scan::scan`] and an ignored timing printout.

use super::*;
use scan::{KindSet, scan};
use tollgate_guest::testing::{self, TestRequest};
use tollgate_guest::{Hook, Role};

// --- helpers ---------------------------------------------------------------------------

/// What a scan with every kind on finds in `text`: (kind name, matched text).
fn found(text: &str) -> Vec<(&'static str, String)> {
    let mut out = Vec::new();
    scan(text, KindSet::ALL, &mut out);
    check_matches(text, &out);
    out.iter()
        .map(|m| (m.kind.name(), text[m.start..m.end].to_string()))
        .collect()
}

/// Kinds found in `text`, by name.
fn kinds(text: &str) -> Vec<&'static str> {
    found(text).into_iter().map(|(k, _)| k).collect()
}

/// Asserts `text` holds exactly one match, of `kind`, covering exactly `value`.
#[track_caller]
fn detects(kind: &str, text: &str, value: &str) {
    assert_eq!(
        found(text),
        [(
            Kind::from_name(kind).expect("kind").name(),
            value.to_string()
        )],
        "in {text:?}"
    );
}

/// Asserts `text` is found as a whole, as `kind`.
#[track_caller]
fn whole(kind: &str, text: &str) {
    detects(kind, text, text);
    // and still when embedded in prose
    let prose = format!("Please note: {text}. Thanks!");
    detects(kind, &prose, text);
}

/// Asserts nothing of `kind` is found in `text`.
#[track_caller]
fn not(kind: &str, text: &str) {
    let hits: Vec<_> = found(text)
        .into_iter()
        .filter(|(k, _)| *k == kind)
        .collect();
    assert!(
        hits.is_empty(),
        "{kind} wrongly found in {text:?}: {hits:?}"
    );
}

/// Scan invariants: sorted, non-overlapping, on char boundaries, ASCII only.
#[track_caller]
fn check_matches(text: &str, ms: &[Match]) {
    let mut prev_end = 0;
    for m in ms {
        assert!(m.start < m.end && m.end <= text.len(), "{m:?} in {text:?}");
        assert!(m.start >= prev_end, "overlap at {m:?} in {text:?}");
        assert!(text.is_char_boundary(m.start) && text.is_char_boundary(m.end));
        // Only a private key cut off at the end of the text runs over non-ASCII.
        assert!(
            text[m.start..m.end].is_ascii() || (m.kind == Kind::PrivateKey && m.end == text.len()),
            "{m:?} in {text:?}"
        );
        prev_end = m.end;
    }
}

fn request(config: &str, parts: &[(Role, &str)]) -> (Verdict, Vec<TextPart>) {
    request_as(TestRequest::new(), config, parts)
}

fn request_as(req: TestRequest, config: &str, parts: &[(Role, &str)]) -> (Verdict, Vec<TextPart>) {
    let convo = testing::conversation(parts.iter().copied());
    let v = req
        .run_inspect_request::<PiiRedact>(config, &convo)
        .expect("config is valid");
    (v, convo.parts)
}

/// The request's texts after the verdict, checking the host would accept the edits.
fn redacted(config: &str, parts: &[(Role, &str)]) -> Vec<String> {
    let (v, parts) = request(config, parts);
    testing::apply(&parts, &v).expect("edits apply")
}

fn user(text: &str) -> Vec<String> {
    redacted("{}", &[(Role::User, text)])
}

fn answer(config: &str, texts: &[&str]) -> (Verdict, Vec<TextPart>) {
    let a = testing::answer(texts.iter().copied());
    let v = TestRequest::new()
        .run_inspect_response::<PiiRedact>(config, &a)
        .expect("config is valid");
    (v, a.parts)
}

fn invalid(config: &str) -> String {
    testing::validate::<PiiRedact>(config).expect_err("config should be rejected")
}

fn finding(rule: &str, kind: &str, count: u32) -> Finding {
    Finding::new(rule, kind, count)
}

const JWT: &str = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIiwibmFtZSI6IkpvaG4gRG9lIiwiaWF0IjoxNTE2MjM5MDIyfQ.SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV_adQssw5c";
const AWS: &str = "AKIAIOSFODNN7EXAMPLE";
const OPENAI: &str = "sk-proj-Xk9dF3pQ7rT2vB8nM4wL1zY6cH5jG0aS";
const ANTHROPIC: &str = "sk-ant-api03-Zq8Lm2Nx7Vb4Cc9Dd1Ee3Ff5Gg6Hh0IiJjKkLlMmNnOoPpQq-AA";
const SLACK: &str = "xoxb-123456789012-1234567890123-AbCdEfGhIjKlMnOpQrStUvWx";
const PEM: &str = "-----BEGIN RSA PRIVATE KEY-----\nMIIEowIBAAKCAQEA7bq3Y2vGJx8k\nZm9vYmFyYmF6cXV4\n-----END RSA PRIVATE KEY-----";

fn ghp() -> String {
    format!("ghp_{}", "aB3dE5fG7hJ9kL1mN3pQ5rS7tU9vW1xY3zA5")
}

// --- describe and config -----------------------------------------------------------------

#[test]
fn describe_lists_both_guardrail_hooks_and_a_schema() {
    let info = testing::describe::<PiiRedact>();
    assert_eq!(info.name, "pii-redact");
    assert_eq!(info.hooks, [Hook::InspectRequest, Hook::InspectResponse]);
    let schema: serde_json::Value = serde_json::from_str(&info.config_schema).expect("JSON");
    let props = schema["$defs"]["kinds"]["properties"]
        .as_object()
        .expect("kinds");
    let names: Vec<&str> = props.keys().map(String::as_str).collect();
    let mut all: Vec<&str> = Kind::ALL.iter().map(|k| k.name()).collect();
    all.sort_unstable();
    let mut names_sorted = names.clone();
    names_sorted.sort_unstable();
    assert_eq!(names_sorted, all);
    assert_eq!(
        schema["$defs"]["action"]["enum"],
        serde_json::json!(["redact", "deny", "flag", "off"])
    );
}

#[test]
fn documented_config_is_valid() {
    let doc = r#"{
      "kinds": {"email": "redact", "card": "deny", "ip": "off", "jwt": "flag"},
      "default": "redact",
      "apply_to": "both",
      "teams": {"security": {"kinds": {"email": "off"}, "apply_to": "request"}}
    }"#;
    assert_eq!(testing::validate::<PiiRedact>(doc), Ok(()));
    assert_eq!(testing::validate::<PiiRedact>("{}"), Ok(()));
    assert_eq!(testing::validate::<PiiRedact>(""), Ok(()));
}

#[test]
fn validation_names_the_bad_field() {
    let e = invalid(r#"{"kinds": {"emial": "redact"}}"#);
    assert!(
        e.starts_with("config: kinds.emial: unknown kind; expected one of email, phone, card"),
        "{e}"
    );
    assert!(e.ends_with("private_key, jwt"), "{e}");
    let e = invalid(r#"{"teams": {"security": {"kinds": {"ssn": "off", "cc": "deny"}}}}"#);
    assert!(
        e.starts_with("config: teams.security.kinds.cc: unknown kind"),
        "{e}"
    );
    let e = invalid(r#"{"kinds": {"email": "dney"}}"#);
    assert!(
        e.starts_with("config: kinds.email: unknown variant `dney`"),
        "{e}"
    );
    let e = invalid(r#"{"default": "block"}"#);
    assert!(
        e.starts_with("config: default: unknown variant `block`"),
        "{e}"
    );
    let e = invalid(r#"{"apply_to": "answers"}"#);
    assert!(
        e.starts_with("config: apply_to: unknown variant `answers`"),
        "{e}"
    );
    let e = invalid(r#"{"kind": {}}"#);
    assert!(e.contains("unknown field `kind`"), "{e}");
    let e = invalid(r#"{"teams": {"a": {"teams": {}}}}"#);
    assert!(
        e.starts_with("config: teams.a.teams: unknown field `teams`"),
        "{e}"
    );
    let e = invalid(r#"{"teams": {"": {}}}"#);
    assert!(
        e.starts_with("config: teams: a team name must not be empty"),
        "{e}"
    );
}

#[test]
fn team_overrides_merge_over_the_top_level() {
    let c: Config = serde_json::from_str(
        r#"{"kinds": {"card": "deny", "email": "flag"}, "default": "flag", "apply_to": "both",
            "teams": {"sec": {"kinds": {"email": "off"}, "default": "redact", "apply_to": "request"}}}"#,
    )
    .expect("parses");
    let top = c.settings(None);
    assert_eq!(top.action(Kind::Card), Action::Deny);
    assert_eq!(top.action(Kind::Email), Action::Flag);
    assert_eq!(top.action(Kind::Jwt), Action::Flag);
    assert_eq!(top.apply_to, ApplyTo::Both);
    assert_eq!(c.settings(Some("other")), top);
    let sec = c.settings(Some("sec"));
    assert_eq!(sec.action(Kind::Email), Action::Off);
    assert_eq!(
        sec.action(Kind::Card),
        Action::Deny,
        "top-level kinds still apply"
    );
    assert_eq!(sec.action(Kind::Jwt), Action::Redact, "the team's default");
    assert_eq!(sec.apply_to, ApplyTo::Request);
    assert!(!sec.enabled().contains(Kind::Email));
}

// --- detectors: positives and negatives ------------------------------------------------

#[test]
fn emails() {
    whole("email", "alice@example.com");
    whole("email", "bob.smith+tag@mail.example.co.uk");
    whole("email", "neil_x-y%z@sub-domain.example.io");
    detects("email", "mailto:carol@example.org", "carol@example.org");
    detects("email", "<dave@example.com>", "dave@example.com");
    detects("email", "write to .erin@example.com.", "erin@example.com");
    detects("email", "连系frank@example.com谢谢", "frank@example.com");
    for neg in [
        "ping @alice about it",
        "user@localhost",
        "icon@2x.png",
        "foo@bar",
        "a@b.c",
        "npm i @scope/pkg@1.2.3",
        "x@-bad.com",
        "trailing.@example.com",
        "@decorator.method",
        "a@b@c.com",
    ] {
        not("email", neg);
    }
}

#[test]
fn phones() {
    for p in [
        "+1 (555) 123-4567",
        "+1 555 123 4567",
        "+1-555-123-4567",
        "+44 20 7946 0958",
        "+44 (0)20 7946 0958",
        "+33 1 23 45 67 89",
        "+4915112345678",
        "(555) 123-4567",
        "(555)123-4567",
        "555-123-4567",
        "555.123.4567",
        "555 123 4567",
        "1-800-555-1234",
        "020 7946 0958",
        "07700 900123",
        "01 23 45 67 89",
        "06-12345678",
        "0412 345 678",
        "138 0013 8000",
        "(11) 91234-5678",
        "030 12345678",
        "+91 98765 43210",
    ] {
        whole("phone", p);
    }
    // Trailing groups that do not fit are left out.
    detects("phone", "call 555 123 4567 2 times", "555 123 4567");
    for neg in [
        "on 2024-01-15 at 10:30",
        "on 15.01.2024",
        "version 1.2.3",
        "v10.4.22",
        "order 123456789012",
        "id 12345678901",
        "1 000 000 000 users",
        "grew by 100 200 300",
        "scores 10 20 30 40 50",
        "at 12:30",
        "123e4567-e89b-12d3-a456-426614174000",
        "550e8400-e29b-41d4-a716-446655440000",
        "ISBN 978-3-16-148410-0",
        "in 2019-2021",
        "call 555-1234",
        "pi is 3.14159 2.71828",
        "ORD-2024-000123456",
        "555-123-4567abc",
        "+12 34",
        "5+555 123 4567",
        "48.8566 2.3522",
        "in 2023 2024 2025",
        "acct 1234-5678-9012",
        "98765 43210",
        "555 123 456",
    ] {
        not("phone", neg);
    }
}

#[test]
fn cards() {
    for c in [
        "4111 1111 1111 1111",
        "4111-1111-1111-1111",
        "4111111111111111",
        "4222222222222",
        "5555 5555 5555 4444",
        "5105105105105100",
        "2223003122003222",
        "378282246310005",
        "3782 822463 10005",
        "6011111111111117",
        "30569309025904",
        "3530111333300000",
        "6200000000000005",
    ] {
        whole("card", c);
    }
    detects(
        "card",
        "4111 1111 1111 1111 12 items",
        "4111 1111 1111 1111",
    );
    // A number before it reads as a phone number (`2 4111 1111`): the card wins.
    detects("card", "qty 2 4111 1111 1111 1111", "4111 1111 1111 1111");
    detects("card", "qty 2 4111-1111-1111-1111", "4111-1111-1111-1111");
    for neg in [
        "4111 1111 1111 1112",     // Luhn fails
        "1234567812345670",        // Luhn-valid, no issuer
        "1700000000000",           // millisecond timestamp
        "41111111111111111111111", // too long
        "4111-1111 1111-1111",     // mixed separators
        "41 11 11 11 11 11 11 11", // not card grouping
        "12345678-1234-1234-1234-123456789012",
        "x4111111111111111",
        "4111111111111111.5",
    ] {
        not("card", neg);
    }
}

#[test]
fn ibans() {
    for i in [
        "DE89 3704 0044 0532 0130 00",
        "DE89370400440532013000",
        "GB82 WEST 1234 5698 7654 32",
        "GB82WEST12345698765432",
        "FR14 2004 1010 0505 0001 3M02 606",
        "NL91ABNA0417164300",
        "NO9386011117947",
    ] {
        whole("iban", i);
    }
    for neg in [
        "DE89 3704 0044 0532 0130 01", // mod 97 fails
        "DE89 3704 0044 0532 0130",    // too short
        "DE89370400440532013000X",     // glued
        "ZZ89370400440532013000",      // no such country
        "DE00370400440532013000",      // check digits out of range
        "de89370400440532013000",
        "US20 budget",
    ] {
        not("iban", neg);
    }
}

#[test]
fn ssns() {
    whole("ssn", "123-45-6789");
    whole("ssn", "899-01-0001");
    detects("ssn", "SSN:123-45-6789;", "123-45-6789");
    for neg in [
        "000-12-3456",
        "666-12-3456",
        "900-12-3456",
        "123-00-4567",
        "123-45-0000",
        "123-45-67890",
        "1123-45-6789",
        "123-45-6789-1",
        "a123-45-6789",
        "123 45 6789",
    ] {
        not("ssn", neg);
    }
}

#[test]
fn ip_addresses() {
    for ip in [
        "192.168.1.10",
        "10.0.0.1",
        "8.8.8.8",
        "255.255.255.0",
        "1.2.3.4",
        "2001:db8::1",
        "2001:0db8:85a3:0000:0000:8a2e:0370:7334",
        "fe80::1",
        "2001:db8::",
    ] {
        whole("ip", ip);
    }
    detects("ip", "http://192.168.0.1:8080/admin", "192.168.0.1");
    detects("ip", "route 10.0.0.0/8", "10.0.0.0");
    for neg in [
        "999.1.1.1",
        "256.1.1.1",
        "1.2.3.4.5",
        "v1.2.3.4",
        "1.2.3",
        "01.02.03.04",
        "127.0.0.1",
        "0.0.0.0",
        "255.255.255.255",
        "at 12:30",
        "at 12:30:45",
        "use std::io::Read",
        "impl Face::face",
        "dead::beef",
        "00:1A:2B:3C:4D:5E",
        "a:b:c:d:e:f:1:2:3",
        "1:2:3:4:5:6:7",
    ] {
        not("ip", neg);
    }
}

#[test]
fn aws_keys() {
    whole("aws_key", AWS);
    whole("aws_key", "ASIAY34FZKBOKMUTVV7A");
    for neg in [
        "AKIAIOSFODNN7EXAMPL",
        "AKIAIOSFODNN7EXAMPLE1",
        "AKIAiosfodnn7example",
        "XAKIAIOSFODNN7EXAMPLE",
        "AKIA is a prefix",
    ] {
        not("aws_key", neg);
    }
}

#[test]
fn github_tokens() {
    whole("github_token", &ghp());
    for prefix in ["gho_", "ghu_", "ghs_", "ghr_"] {
        whole("github_token", &ghp().replacen("ghp_", prefix, 1));
    }
    let pat = format!("github_pat_11ABCDEFG0123456789abc_{}", "x".repeat(59));
    whole("github_token", &pat);
    for neg in [
        "ghp_short".to_string(),
        ghp().replacen("ghp_", "ghx_", 1),
        ghp()[..39].to_string(),
        format!("x{}", ghp()),
        "github_pat_tooshort".to_string(),
        "github is great".to_string(),
    ] {
        not("github_token", &neg);
    }
}

#[test]
fn slack_tokens() {
    whole("slack_token", SLACK);
    whole("slack_token", "xoxp-2345678901-3456789012-abcdef");
    for neg in [
        "xoxb-not-a-real-token-here",
        "xoxz-1234567890-1234567890",
        "xoxb-12345",
        "xoxb-",
        "xoxo",
    ] {
        not("slack_token", neg);
    }
}

#[test]
fn api_keys() {
    whole("api_key", OPENAI);
    whole("api_key", ANTHROPIC);
    whole("api_key", "sk-1234567890abcdef1234567890abcdef");
    detects(
        "api_key",
        "OPENAI_API_KEY=sk-Ab3dEf7hIj9kLm1nOp3qRs5t\n",
        "sk-Ab3dEf7hIj9kLm1nOp3qRs5t",
    );
    for neg in [
        "the task-force met",
        "a risk-free plan",
        "sk-learn is a library",
        "sk-short1",
        "sk-2024-annual-report-final-v2",
        "sk-abcdefghijklmnopqrstuvwxyz",
        "sk_live_4eC39HqLyjWDarjtT1zdp7dc",
        "ask-1234567890abcdef1234567890",
    ] {
        not("api_key", neg);
    }
}

#[test]
fn private_keys() {
    whole("private_key", PEM);
    let openssh = "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAABG5vbmU=\n-----END OPENSSH PRIVATE KEY-----";
    whole("private_key", openssh);
    // Cut off: to the end of the text.
    let cut = "key:\n-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASC\nsk-proj-Xk9dF3pQ7rT2vB8nM4wL1zY6cH5jG0aS";
    detects("private_key", cut, &cut[5..]);
    for neg in [
        "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----",
        "-----BEGIN PUBLIC KEY-----\nMIIB\n-----END PUBLIC KEY-----",
        "-----BEGIN private key-----",
        "--- a/file\n+++ b/file",
    ] {
        not("private_key", neg);
    }
}

#[test]
fn jwts() {
    whole("jwt", JWT);
    detects("jwt", &format!("Authorization: Bearer {JWT}"), JWT);
    let jwe = "eyJhbGciOiJSU0EtT0FFUCJ9.OKOawDo13gRp2ojaHV7LFpZcgV7T6DVZ.48V1_ALb6US04U3b.5eym8TW_c8SuK0ltJ3rpYIzOeDQz7TALvtu6UG9oMo4vpzs9tX_EFShS8iB7j6ji.XFBoMYUZodetZdvTiFvSkQ";
    whole("jwt", jwe);
    for neg in [
        "eyJhbGciOiJIUzI1NiJ9",
        "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0",
        "eyJ.eyJ.abc",
        "eyJhbGciOiJIUzI1NiJ9.e.SflKxwRJSMeKKF2QT4fwpMeJf36P",
        "xeyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.SflKxwRJSMeKKF2QT4fwpMeJf36P",
        "every eye judges",
    ] {
        not("jwt", neg);
    }
}

#[test]
fn prose_and_code_find_nothing() {
    let text = "Version 2.4.1 shipped on 2024-03-15 at 09:30. We processed 1,234,567 events \
                (up 12.5% from 1 000 000), see issue #4821 and RFC 7231 section 6.5.1. The \
                UUID 123e4567-e89b-12d3-a456-426614174000 maps to order 98765432. Use \
                `std::collections::HashMap` or `a::b`; ratio 16:9; task-list, risk-based, \
                skim-reading, @mentions, foo@bar, e.g. x86_64 and arm64. Call back in 5 min. \
                Hash: 9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08. \
                ISBN 978-0-306-40615-7, tel. ext 1234, zip 94107-1234, PO 45-678-90.";
    assert_eq!(found(text), []);
}

#[test]
fn unicode_neighbours_are_separators() {
    detects("email", "📧alice@example.com✅", "alice@example.com");
    detects("phone", "电话：555-123-4567。", "555-123-4567");
    detects("card", "カード4111111111111111です", "4111111111111111");
    detects("aws_key", "ключ:AKIAIOSFODNN7EXAMPLE—", AWS);
    detects("ip", "адрес 192.168.1.10 ok", "192.168.1.10");
    assert_eq!(found("naïve café résumé — 日本語のテキスト 🦀"), []);
}

// --- overlaps ----------------------------------------------------------------------------

#[test]
fn overlapping_detections_resolve_deterministically() {
    // A JWT as an e-mail local part: the credential wins.
    let text = format!("{JWT}@example.com");
    assert_eq!(kinds(&text), ["jwt"]);
    // A key inside a private key block: the block wins.
    let text = format!("-----BEGIN PRIVATE KEY-----\n{OPENAI}\n{AWS}\n-----END PRIVATE KEY-----");
    assert_eq!(found(&text), [("private_key", text.clone())]);
    // A card that is also a phone-shaped prefix: the card wins.
    assert_eq!(kinds("card 4111 1111 1111 1111 ok"), ["card"]);
    // An IP that looks like dotted phone groups.
    assert_eq!(kinds("555.123.4567 vs 10.123.45.78"), ["phone", "ip"]);
    // Adjacent detections stay separate.
    let text = format!("{AWS} alice@example.com,555-123-4567;{JWT}");
    assert_eq!(kinds(&text), ["aws_key", "email", "phone", "jwt"]);
    // And through the plugin, the edits apply.
    let text = format!("{JWT}@example.com and 4111 1111 1111 1111 {OPENAI}");
    assert_eq!(
        user(&text),
        ["[JWT_1]@example.com and [CARD_1] [API_KEY_1]"]
    );
}

#[test]
fn resolve_prefers_credentials_then_length() {
    let m = |kind, start, end| Match { kind, start, end };
    let mut v = vec![
        m(Kind::Phone, 0, 20),
        m(Kind::Email, 5, 30),
        m(Kind::Jwt, 10, 15),
        m(Kind::Card, 40, 50),
        m(Kind::Phone, 40, 52),
        m(Kind::Ip, 60, 70),
    ];
    scan::resolve(&mut v);
    assert_eq!(
        v,
        [
            m(Kind::Jwt, 10, 15),
            m(Kind::Card, 40, 50),
            m(Kind::Ip, 60, 70)
        ]
    );
}

// --- the plugin: redact, numbering, deny, flag, teams, apply_to --------------------------

#[test]
fn redacts_every_kind_with_typed_placeholders() {
    let pat = ghp();
    let text = format!(
        "mail alice@example.com, call +1 555 123 4567, card 4111 1111 1111 1111, \
         iban DE89 3704 0044 0532 0130 00, ssn 123-45-6789, ip 10.1.2.3, aws {AWS}, \
         gh {pat}, slack {SLACK}, key {OPENAI}, jwt {JWT}, pem {PEM}"
    );
    let out = user(&text);
    assert_eq!(
        out,
        [
            "mail [EMAIL_1], call [PHONE_1], card [CARD_1], iban [IBAN_1], ssn [SSN_1], ip [IP_1], \
          aws [AWS_KEY_1], gh [GITHUB_TOKEN_1], slack [SLACK_TOKEN_1], key [API_KEY_1], \
          jwt [JWT_1], pem [PRIVATE_KEY_1]"
        ]
    );
    let (v, _) = request("{}", &[(Role::User, &text)]);
    let expected: Vec<Finding> = Kind::ALL
        .iter()
        .map(|k| finding(k.name(), k.category(), 1))
        .collect();
    assert_eq!(v.findings(), expected);
}

#[test]
fn same_value_same_placeholder_across_parts() {
    let parts = [
        (
            Role::System,
            "Contact admin@corp.example or ops@corp.example.",
        ),
        (
            Role::User,
            "My card is 4111-1111-1111-1111 and mail ADMIN@corp.example",
        ),
        (
            Role::Assistant,
            "Noted: 4111 1111 1111 1111, ops@corp.example, bob@corp.example",
        ),
        (
            Role::Tool,
            "{\"ip\": \"10.0.0.7\", \"card\": \"5555555555554444\"}",
        ),
    ];
    let out = redacted("{}", &parts);
    assert_eq!(
        out,
        [
            "Contact [EMAIL_1] or [EMAIL_2].",
            "My card is [CARD_1] and mail [EMAIL_1]",
            "Noted: [CARD_1], [EMAIL_2], [EMAIL_3]",
            "{\"ip\": \"[IP_1]\", \"card\": \"[CARD_2]\"}",
        ]
    );
    let (v, _) = request("{}", &parts);
    assert_eq!(
        v.findings(),
        [
            finding("email", "pii", 5),
            finding("card", "pii", 3),
            finding("ip", "pii", 1)
        ]
    );
}

#[test]
fn clean_text_is_allowed() {
    let (v, _) = request(
        "{}",
        &[(Role::User, "Summarise the meeting notes, please.")],
    );
    assert_eq!(v, Verdict::allow());
    let (v, _) = answer("{}", &["Here is the summary."]);
    assert_eq!(v, Verdict::allow());
}

#[test]
fn deny_refuses_requests_without_echoing_the_secret() {
    let config = r#"{"kinds": {"aws_key": "deny"}}"#;
    let text = format!("deploy with {AWS} to alice@example.com");
    let (v, _) = request(config, &[(Role::User, &text)]);
    let d = v.denial().expect("denied");
    assert_eq!(
        (d.status, d.error_type.as_str()),
        (400, "invalid_request_error")
    );
    assert_eq!(
        d.message,
        "request refused by pii-redact: it contains 1 credential (aws_key); remove it and retry"
    );
    assert!(!d.message.contains(AWS) && !d.message.contains("alice"));
    assert_eq!(
        v.findings(),
        [
            finding("email", "pii", 1),
            finding("aws_key", "credential", 1)
        ]
    );
    assert!(v.edits().is_empty());
}

#[test]
fn deny_message_counts_every_denied_kind() {
    let config = r#"{"default": "deny"}"#;
    let text = format!("{AWS} {OPENAI} {AWS} 123-45-6789 alice@example.com");
    let (v, _) = request(config, &[(Role::User, &text)]);
    let msg = &v.denial().expect("denied").message;
    assert_eq!(
        msg,
        "request refused by pii-redact: it contains 3 credentials (aws_key, api_key) and \
         2 pieces of personal data (email, ssn); remove them and retry"
    );
    for secret in [AWS, OPENAI, "123-45-6789", "alice"] {
        assert!(!msg.contains(secret));
    }
}

#[test]
fn deny_withholds_answers_even_delivered_ones() {
    let config = r#"{"kinds": {"aws_key": "deny"}}"#;
    let text = format!("Use this key: {AWS}");
    let (v, _) = answer(config, &[&text]);
    let d = v.denial().expect("denied");
    assert_eq!((d.status, d.error_type.as_str()), (502, "api_error"));
    assert_eq!(
        d.message,
        "the model's answer was withheld by pii-redact: it contained 1 credential (aws_key)"
    );
    let mut a = testing::answer([text.as_str()]);
    a.delivered = true;
    let v = TestRequest::new()
        .run_inspect_response::<PiiRedact>(config, &a)
        .expect("valid");
    assert_eq!(v.denial().map(|d| d.status), Some(502));
}

#[test]
fn answers_are_redacted_too() {
    let (v, parts) = answer("{}", &["Reach me at ", "bob@example.com or 555-123-4567"]);
    assert_eq!(
        testing::apply(&parts, &v).expect("applies"),
        ["Reach me at ", "[EMAIL_1] or [PHONE_1]"]
    );
}

#[test]
fn flag_records_without_editing() {
    let config = r#"{"kinds": {"jwt": "flag", "email": "flag"}}"#;
    let text = format!("token {JWT} for a@example.com, b@example.com");
    let (v, _) = request(config, &[(Role::User, &text)]);
    assert_eq!(
        v,
        Verdict::flag([finding("email", "pii", 2), finding("jwt", "credential", 1)])
    );
    // Mixed: flagged kinds stay, redacted kinds are replaced, both are reported.
    let config = r#"{"kinds": {"jwt": "flag"}}"#;
    let out = redacted(config, &[(Role::User, &text)]);
    assert_eq!(out, [format!("token {JWT} for [EMAIL_1], [EMAIL_2]")]);
}

#[test]
fn off_kinds_are_not_looked_for() {
    let config = r#"{"kinds": {"ip": "off"}}"#;
    let (v, _) = request(config, &[(Role::User, "server 10.0.0.1")]);
    assert_eq!(v, Verdict::allow());
    let (v, _) = request(
        r#"{"default": "off"}"#,
        &[(Role::User, "alice@example.com")],
    );
    assert_eq!(v, Verdict::allow());
    let out = redacted(
        r#"{"default": "off", "kinds": {"email": "redact"}}"#,
        &[(Role::User, "alice@example.com 10.0.0.1")],
    );
    assert_eq!(out, ["[EMAIL_1] 10.0.0.1"]);
}

#[test]
fn per_team_overrides() {
    let config = r#"{"kinds": {"card": "deny"},
                     "teams": {"security": {"kinds": {"email": "off", "card": "flag"}, "apply_to": "request"},
                               "support": {"default": "deny"}}}"#;
    let text = "alice@example.com paid with 4111111111111111";
    let (v, _) = request_as(
        TestRequest::new().team("eng"),
        config,
        &[(Role::User, text)],
    );
    assert_eq!(v.denial().map(|d| d.status), Some(400));
    let (v, parts) = request_as(
        TestRequest::new().team("security"),
        config,
        &[(Role::User, text)],
    );
    assert_eq!(v.findings(), [finding("card", "pii", 1)]);
    assert_eq!(testing::apply(&parts, &v).expect("applies"), [text]);
    // security does not act on answers at all
    let a = testing::answer([text]);
    let v = TestRequest::new()
        .team("security")
        .run_inspect_response::<PiiRedact>(config, &a)
        .expect("valid");
    assert_eq!(v, Verdict::allow());
    // support denies everything, naming both kinds
    let (v, _) = request_as(
        TestRequest::new().meta("team", "support"),
        config,
        &[(Role::User, text)],
    );
    assert_eq!(
        v.denial().expect("denied").message,
        "request refused by pii-redact: it contains 2 pieces of personal data (email, card); \
         remove them and retry"
    );
}

#[test]
fn apply_to_selects_the_hooks() {
    let text = "mail alice@example.com";
    let only_requests = r#"{"apply_to": "request"}"#;
    let only_answers = r#"{"apply_to": "response"}"#;
    assert!(
        request(only_requests, &[(Role::User, text)])
            .0
            .findings()
            .len()
            == 1
    );
    assert_eq!(answer(only_requests, &[text]).0, Verdict::allow());
    assert_eq!(
        request(only_answers, &[(Role::User, text)]).0,
        Verdict::allow()
    );
    assert!(answer(only_answers, &[text]).0.findings().len() == 1);
}

/// The inputs of the gateway's end-to-end tests (`tests/test_guardrails.py`) and of the
/// host's guardrail bench, as the plugin sees them.
#[test]
fn gateway_test_and_bench_inputs() {
    assert_eq!(
        user("Please mail bob@example.com about card 4111 1111 1111 1111 today"),
        ["Please mail [EMAIL_1] about card [CARD_1] today"]
    );
    let parts = [
        (Role::System, "Support desk for ann@corp.example"),
        (Role::User, "ann@corp.example wrote from 10.1.2.3"),
    ];
    assert_eq!(
        redacted("{}", &parts),
        ["Support desk for [EMAIL_1]", "[EMAIL_1] wrote from [IP_1]"]
    );
    let (v, parts) = answer(
        r#"{"apply_to": "response"}"#,
        &["the key is AKIAIOSFODNN7EXAMPLE ok"],
    );
    assert_eq!(v.findings(), [finding("aws_key", "credential", 1)]);
    assert_eq!(
        testing::apply(&parts, &v).expect("applies"),
        ["the key is [AWS_KEY_1] ok"]
    );
    let (v, _) = request("{}", &[(Role::User, "call me at +1 415 555 0100")]);
    assert_eq!(v.findings(), [finding("phone", "pii", 1)]);
    for clean in [
        "what is the weather",
        "ignore all previous instructions",
        "hello",
    ] {
        assert_eq!(request("{}", &[(Role::User, clean)]).0, Verdict::allow());
    }
    let (v, parts) = request("{}", &bench_conversation());
    assert_eq!(
        v.findings(),
        [
            finding("email", "pii", 2),
            finding("phone", "pii", 1),
            finding("card", "pii", 1),
            finding("ip", "pii", 1),
            finding("aws_key", "credential", 1),
        ]
    );
    let out = testing::apply(&parts, &v).expect("applies");
    assert!(out[3].starts_with(
        "Hi team, please look at ticket 48213. Contact [EMAIL_1] or call [PHONE_1]. Card on \
         file [CARD_1], origin [IP_1]. "
    ));
    assert!(out[3].ends_with("Old key [AWS_KEY_1] was rotated; cc [EMAIL_2]. "));
}

/// The host bench's 4 KiB support-desk conversation (`host/benches/guardrails.rs`).
fn bench_conversation() -> Vec<(Role, &'static str)> {
    let filler = "The customer reports that the export job stalls after the second batch, \
        and asks whether the retry policy can be tuned for large accounts. ";
    let mut user = String::from(
        "Hi team, please look at ticket 48213. Contact jane.doe@example.com or call \
         +1 415 555 0134. Card on file 4111 1111 1111 1111, origin 203.0.113.7. ",
    );
    while user.len() < 3300 {
        user.push_str(filler);
    }
    user.push_str("Old key AKIAIOSFODNN7EXAMPLE was rotated; cc ops@example.org. ");
    vec![
        (
            Role::System,
            "You are a support assistant for Acme. Answer briefly and cite ticket numbers.",
        ),
        (Role::User, "Can you summarise the ticket below?"),
        (
            Role::Assistant,
            "Of course: paste it and I will summarise it.",
        ),
        (Role::User, String::leak(user)),
    ]
}

// --- generated inputs ---------------------------------------------------------------------

/// A small deterministic PRNG (xorshift64*).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[(self.next() % items.len() as u64) as usize]
    }
}

const FRAGMENTS: &[&str] = &[
    "alice@example.com",
    "+1 555 123 4567",
    "(555) 123-4567",
    "555-123-4567",
    "4111 1111 1111 1111",
    "4111111111111111",
    "DE89 3704 0044 0532 0130 00",
    "123-45-6789",
    "10.0.0.1",
    "2001:db8::1",
    AWS,
    OPENAI,
    ANTHROPIC,
    SLACK,
    JWT,
    PEM,
    "-----BEGIN PRIVATE KEY-----\nabc",
    "ghp_aB3dE5fG7hJ9kL1mN3pQ5rS7tU9vW1xY3zA5",
    " ",
    "  ",
    "\n",
    ".",
    "-",
    "@",
    "+",
    "(",
    ")",
    ":",
    "::",
    "_",
    "/",
    ",",
    "é",
    "日本",
    "🦀",
    "\u{200b}",
    "ü",
    "0",
    "1",
    "42",
    "255",
    "2024",
    "07",
    "eyJ",
    "sk-",
    "xoxb-",
    "AKIA",
    "ghp_",
    "DE89",
    "the ",
    "word",
    "Z",
    "ff",
    "e",
];

/// Random concatenations of fragments (many glued without spaces) through every action:
/// scans keep their invariants and every verdict's edits apply.
#[test]
fn generated_texts_always_yield_applicable_verdicts() {
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let configs = [
        "{}",
        r#"{"default": "flag"}"#,
        r#"{"kinds": {"phone": "off", "email": "flag"}}"#,
        r#"{"default": "deny"}"#,
    ];
    let mut out = Vec::new();
    for round in 0..3000 {
        let parts: Vec<String> = (0..1 + rng.next() % 3)
            .map(|_| {
                let n = rng.next() % 12;
                (0..n).map(|_| rng.pick(FRAGMENTS)).collect()
            })
            .collect();
        for p in &parts {
            scan(p, KindSet::ALL, &mut out);
            check_matches(p, &out);
        }
        let roles: Vec<(Role, &str)> = parts.iter().map(|p| (Role::User, p.as_str())).collect();
        let config = configs[round % configs.len()];
        let (v, tparts) = request(config, &roles);
        let after = testing::apply(&tparts, &v).unwrap_or_else(|e| panic!("{e}: {parts:?}"));
        if let Some(d) = v.denial() {
            for secret in [AWS, OPENAI, SLACK, JWT, "alice@example.com", "123-45-6789"] {
                assert!(!d.message.contains(secret));
            }
        }
        if config == "{}" {
            // Redacting leaves no credential to find. (Personal data may appear: a
            // placeholder can free a neighbour that was glued to a redacted word, as in
            // `a@example.com+1 555 123 4567`.)
            for text in &after {
                let left = found(text);
                assert!(
                    left.iter()
                        .all(|(k, _)| !Kind::from_name(k).expect("kind").is_credential()),
                    "{left:?} left in {text:?} from {parts:?}"
                );
            }
        }
    }
}

/// Random bytes from a digit- and separator-heavy alphabet: no panics, invariants hold.
#[test]
fn random_number_soup_keeps_invariants() {
    let alphabet = "0123456789 -.+():/@aeAKxsgé";
    let chars: Vec<char> = alphabet.chars().collect();
    let mut rng = Rng(42);
    let mut out = Vec::new();
    for _ in 0..5000 {
        let len = rng.next() % 64;
        let text: String = (0..len)
            .map(|_| chars[(rng.next() % chars.len() as u64) as usize])
            .collect();
        scan(&text, KindSet::ALL, &mut out);
        check_matches(&text, &out);
    }
}

/// Inputs built to make a careless scanner quadratic (every byte starting a candidate
/// that runs to the end): each 256 KiB text still scans in one quick pass.
#[test]
fn adversarial_inputs_scan_in_linear_time() {
    let patterns = [
        "eyJ-",
        "eyJa.",
        "sk-a",
        "xoxb-1",
        "ghp_",
        "a@",
        "a.",
        "1 ",
        "1-",
        "1.",
        "1:",
        "12:",
        "a:",
        "DE89",
        "AKIA",
        "(1",
        "+1",
        "-----BEGIN PRIVATE KEY-----",
        "-",
        "_",
        "J",
        "4111 ",
        "eyJhbGciOiJIUzI1NiJ9.",
        "x@a.",
        "::",
        "1.1.1.1.",
    ];
    let mut out = Vec::new();
    for p in patterns {
        let text = p.repeat(256 * 1024 / p.len());
        let t = std::time::Instant::now();
        scan(&text, KindSet::ALL, &mut out);
        check_matches(&text, &out);
        let ms = t.elapsed().as_millis();
        assert!(ms < 5_000, "{p:?} took {ms} ms");
    }
}

// --- timing ---------------------------------------------------------------------------------

const PROSE: &str = "The quarterly review covered three main topics. First, the team discussed \
    the migration of the billing service to the new cluster, which is expected to finish by the \
    end of next month. Several engineers raised concerns about the rollback plan, and the group \
    agreed to write a short runbook before the cut-over. Second, the product manager presented \
    the results of the customer survey: most respondents liked the new dashboard, but many asked \
    for better export options and faster search. Third, the security lead reminded everyone to \
    rotate their credentials and to avoid pasting secrets into chat tools or tickets. In 2023 we \
    shipped 14 releases; this year we aim for 20, with smaller and safer changes each time. ";

fn prose_4k() -> String {
    let mut s = String::new();
    while s.len() < 4096 {
        s.push_str(PROSE);
    }
    s.truncate(4096);
    s
}

fn prose_4k_with_pii() -> String {
    let items = [
        "alice@example.com",
        "+1 555 123 4567",
        "4111 1111 1111 1111",
        "123-45-6789",
        "10.20.30.40",
        AWS,
        OPENAI,
        JWT,
        "DE89 3704 0044 0532 0130 00",
        "bob@corp.example",
    ];
    let base = prose_4k();
    let chunk = base.len() / items.len();
    let mut s = String::new();
    for (k, item) in items.iter().enumerate() {
        let piece = &base[k * chunk..(k + 1) * chunk - item.len() - 2];
        s.push_str(piece);
        s.push(' ');
        s.push_str(item);
        s.push(' ');
    }
    s
}

/// The fastest of several rounds of `iters` calls of `f`, in ns per call (the minimum
/// filters out noise from other processes).
fn min_ns(iters: u32, mut f: impl FnMut()) -> u128 {
    (0..15)
        .map(|_| {
            let t = std::time::Instant::now();
            for _ in 0..iters {
                f();
            }
            t.elapsed().as_nanos() / u128::from(iters)
        })
        .min()
        .expect("rounds")
}

/// Prints native timings: `cargo test --release -p tollgate-pii-redact -- --ignored --nocapture`.
#[test]
#[ignore = "timing printout, not a test"]
fn timing_4k() {
    use std::hint::black_box;
    for (name, text) in [("prose", prose_4k()), ("prose+10 pii", prose_4k_with_pii())] {
        let mut out = Vec::new();
        scan(&text, KindSet::ALL, &mut out);
        let hits = out.len();
        let scan_ns = min_ns(2000, || {
            scan(black_box(&text), KindSet::ALL, &mut out);
            black_box(&out);
        });
        let parts = testing::conversation([(Role::User, text.as_str())]).parts;
        let call_ns = min_ns(2000, || {
            let c: Config = serde_json::from_str(black_box("{}")).expect("config");
            config::validate(&c).expect("valid");
            black_box(inspect(
                &c.settings(None),
                black_box(&parts),
                Direction::Request,
            ));
        });
        println!(
            "{name}: {} bytes, {hits} matches: scan {scan_ns} ns, config+scan+verdict {call_ns} ns",
            text.len()
        );
    }
    let parts = testing::conversation(bench_conversation()).parts;
    let bytes: usize = parts.iter().map(|p| p.text.len()).sum();
    let call_ns = min_ns(2000, || {
        let c: Config = serde_json::from_str(black_box("{}")).expect("config");
        config::validate(&c).expect("valid");
        black_box(inspect(
            &c.settings(None),
            black_box(&parts),
            Direction::Request,
        ));
    });
    println!("host bench conversation: {bytes} bytes: config+scan+verdict {call_ns} ns");
}

#[test]
fn more_redactions_than_the_host_applies_are_refused_instead() {
    let text: String = (0..tollgate_guest::MAX_EDITS + 1)
        .map(|i| format!("u{i}@example.com "))
        .collect();
    let convo =
        tollgate_guest::testing::conversation([(tollgate_guest::Role::User, text.as_str())]);
    let v = tollgate_guest::testing::TestRequest::new()
        .run_inspect_request::<crate::PiiRedact>("{}", &convo)
        .expect("valid config");
    let d = v.denial().expect("refused, not passed through");
    assert_eq!(d.status, 400);
    assert!(d.message.contains("4097"), "{}", d.message);
}
