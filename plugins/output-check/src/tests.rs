use super::*;
use tollgate_guest::testing::{self, TestRequest};

fn openai(response_format: &str) -> TestRequest {
    TestRequest::new()
        .model("gpt-4o")
        .team("data")
        .endpoint(tollgate_guest::Endpoint::ChatCompletions)
        .body(format!(
            r#"{{"model":"gpt-4o","messages":[],"response_format":{response_format}}}"#
        ))
}

fn check(req: &TestRequest, config: &str, text: &str) -> Verdict {
    req.run_inspect_response::<OutputCheck>(config, &testing::answer([text]))
        .expect("config is valid")
}

const PERSON: &str = r#"{"type":"json_schema","json_schema":{"name":"p","schema":{"type":"object","required":["name","age"],"properties":{"name":{"type":"string"},"age":{"type":"integer"}}}}}"#;

#[test]
fn json_object_answers_must_parse() {
    let req = openai(r#"{"type":"json_object"}"#);
    assert_eq!(check(&req, "{}", " {\"a\": 1}\n"), Verdict::allow());
    let v = check(&req, "{}", "Sure! Here it is: {\"a\": 1}");
    let d = v.denial().expect("denied");
    assert_eq!((d.status, d.error_type.as_str()), (502, "api_error"));
    assert!(d.message.contains("not valid JSON"), "{}", d.message);
    assert_eq!(v.findings()[0].rule, "json_parse");
    // A fenced block is not what a JSON client can parse.
    assert!(
        check(&req, "{}", "```json\n{\"a\": 1}\n```")
            .denial()
            .is_some()
    );
}

#[test]
fn the_requested_schema_is_enforced_and_the_violation_named() {
    let req = openai(PERSON);
    assert_eq!(
        check(&req, "{}", r#"{"name":"Ann","age":41}"#),
        Verdict::allow()
    );
    let v = check(&req, "{}", r#"{"name":"Ann","age":"forty"}"#);
    let msg = &v.denial().expect("denied").message;
    assert!(msg.contains("/age") && msg.contains("integer"), "{msg}");
    assert_eq!(v.findings()[0].rule, "json_schema");
    let v = check(&req, "{}", r#"{"name":"Ann"}"#);
    assert!(v.denial().expect("denied").message.contains("age"));
    // Flag instead of deny.
    let v = check(&req, r#"{"action":"flag"}"#, r#"{"name":1,"age":2}"#);
    assert!(v.is_flag() && v.findings()[0].rule == "json_schema");
}

#[test]
fn anthropic_output_format_and_the_admins_schema() {
    let req = TestRequest::new().model("claude-sonnet-4-5").body(
        r#"{"model":"claude-sonnet-4-5","messages":[],"output_format":{"type":"json_schema","schema":{"type":"array","items":{"type":"number"}}}}"#,
    );
    assert_eq!(check(&req, "{}", "[1, 2.5]"), Verdict::allow());
    assert!(check(&req, "{}", r#"[1, "x"]"#).denial().is_some());
    // The admin's schema applies to every answer in scope, and wins over the request's.
    let config = r#"{"schema":{"type":"object"}}"#;
    assert!(check(&req, config, "[1, 2]").denial().is_some());
    let plain = TestRequest::new().model("claude-sonnet-4-5");
    assert!(check(&plain, config, "hello").denial().is_some());
    assert_eq!(check(&plain, config, "{}"), Verdict::allow());
}

#[test]
fn only_answers_in_scope_and_asked_for_json_are_checked() {
    let plain = TestRequest::new().model("gpt-4o").team("data");
    assert_eq!(check(&plain, "{}", "not json"), Verdict::allow());
    assert!(
        check(&plain, r#"{"require_json":true}"#, "not json")
            .denial()
            .is_some()
    );
    let req = openai(r#"{"type":"json_object"}"#);
    assert_eq!(
        check(&req, r#"{"models":["claude-*"]}"#, "nope"),
        Verdict::allow()
    );
    assert_eq!(
        check(&req, r#"{"teams":["sales"]}"#, "nope"),
        Verdict::allow()
    );
    assert!(
        check(&req, r#"{"models":["gpt-*"],"teams":["data"]}"#, "nope")
            .denial()
            .is_some()
    );
    // Tool calls only: nothing to check.
    let v = req
        .run_inspect_response::<OutputCheck>("{}", &testing::answer([]))
        .expect("valid");
    assert_eq!(v, Verdict::allow());
}

#[test]
fn violations_are_clipped_and_configs_checked() {
    let req = openai(PERSON);
    let long = format!(r#"{{"name":"Ann","age":"{}"}}"#, "x".repeat(5000));
    let msg = check(&req, "{}", &long)
        .denial()
        .expect("denied")
        .message
        .clone();
    assert!(msg.len() < 400, "{}", msg.len());
    let err = testing::validate::<OutputCheck>(r#"{"schema":{"type":"nonsense"}}"#).unwrap_err();
    assert!(err.starts_with("config: schema:"), "{err}");
    let err = testing::validate::<OutputCheck>(r#"{"models":[""]}"#).unwrap_err();
    assert_eq!(err, "config: models: entries must not be empty");
    let err = testing::validate::<OutputCheck>(r#"{"acton":"deny"}"#).unwrap_err();
    assert!(err.contains("unknown field `acton`"), "{err}");
}
