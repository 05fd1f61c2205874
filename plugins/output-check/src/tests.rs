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

// ---- the schema validator ----

use crate::schema::{MAX_STEPS, Outcome, Schema};
use std::hint::black_box;
use std::time::Instant;

fn compile(schema: &str) -> Schema {
    let v: Value = serde_json::from_str(schema).expect("test schema is JSON");
    Schema::compile(&v).unwrap_or_else(|e| panic!("{schema}: {e}"))
}

fn outcome(schema: &Schema, doc: &str) -> Outcome {
    schema.check(&serde_json::from_str(doc).expect("test doc is JSON"))
}

/// Checks `schema` passes every doc of `pass` and fails every `(doc, message)` of
/// `fail` with exactly that message.
fn keyword(schema: &str, pass: &[&str], fail: &[(&str, &str)]) {
    let s = compile(schema);
    for doc in pass {
        assert_eq!(
            outcome(&s, doc),
            Outcome::Valid,
            "{schema} should pass {doc}"
        );
    }
    for (doc, want) in fail {
        assert_eq!(
            outcome(&s, doc),
            Outcome::Invalid((*want).to_string()),
            "{schema} on {doc}"
        );
    }
}

#[test]
fn type_enum_and_const() {
    keyword(
        r#"{"type":"string"}"#,
        &[r#""a""#],
        &[("1", "/: expected string, found number")],
    );
    keyword(
        r#"{"type":["string","null"]}"#,
        &["null", r#""x""#],
        &[("[]", "/: expected null or string, found array")],
    );
    keyword(
        r#"{"type":"integer"}"#,
        &["3", "-3", "3.0", "1e2"],
        &[
            ("3.5", "/: expected integer, found number"),
            (r#""3""#, "/: expected integer, found string"),
        ],
    );
    keyword(
        r#"{"type":"number"}"#,
        &["3", "3.5"],
        &[("true", "/: expected number, found boolean")],
    );
    keyword(
        r#"{"type":"object"}"#,
        &["{}"],
        &[("null", "/: expected object, found null")],
    );
    keyword(
        r#"{"enum":["a",1,null]}"#,
        &[r#""a""#, "1", "1.0", "null"],
        &[(r#""b""#, r#"/: not one of the 'enum' values ["a",1,null]"#)],
    );
    keyword(
        r#"{"const":{"a":[1]}}"#,
        &[r#"{"a":[1.0]}"#],
        &[(r#"{"a":[2]}"#, r#"/: not the 'const' value {"a":[1]}"#)],
    );
}

#[test]
fn number_keywords() {
    keyword(
        r#"{"minimum":5}"#,
        &["5", "5.5", r#""not a number""#],
        &[("4.9", "/: less than the minimum 5")],
    );
    keyword(
        r#"{"maximum":5}"#,
        &["5", "-1"],
        &[("6", "/: greater than the maximum 5")],
    );
    keyword(
        r#"{"exclusiveMinimum":5}"#,
        &["5.1"],
        &[("5", "/: must be greater than 5 (exclusiveMinimum)")],
    );
    keyword(
        r#"{"exclusiveMaximum":5}"#,
        &["4.9"],
        &[("5", "/: must be less than 5 (exclusiveMaximum)")],
    );
    // Draft 4: booleans that make `minimum` and `maximum` exclusive.
    keyword(
        r#"{"minimum":5,"exclusiveMinimum":true,"maximum":9,"exclusiveMaximum":true}"#,
        &["6", "8.9"],
        &[
            ("5", "/: must be greater than 5 (exclusiveMinimum)"),
            ("9", "/: must be less than 9 (exclusiveMaximum)"),
        ],
    );
    keyword(r#"{"minimum":5,"exclusiveMinimum":false}"#, &["5"], &[]);
    keyword(
        r#"{"multipleOf":0.1}"#,
        &["0.3", "3", "0"],
        &[("0.35", "/: not a multiple of 0.1")],
    );
    keyword(
        r#"{"multipleOf":3}"#,
        &["9", "-9", "9.0"],
        &[("10", "/: not a multiple of 3")],
    );
    // Integers are compared exactly, beyond f64's precision.
    keyword(
        r#"{"maximum":9007199254740993}"#,
        &["9007199254740993"],
        &[(
            "9007199254740994",
            "/: greater than the maximum 9007199254740993",
        )],
    );
}

#[test]
fn string_keywords() {
    // Lengths count characters, not bytes.
    keyword(
        r#"{"minLength":3}"#,
        &[r#""héé""#, "7"],
        &[(r#""ab""#, "/: 2 characters; at least 3 required")],
    );
    keyword(
        r#"{"maxLength":2}"#,
        &[r#""éé""#, r#""""#],
        &[(r#""abc""#, "/: 3 characters; at most 2 allowed")],
    );
    keyword(
        r#"{"pattern":"^[a-z]+-\\d+$"}"#,
        &[r#""ab-12""#, "12"],
        &[(
            r#""AB-12""#,
            r"/: does not match the pattern '^[a-z]+-\d+$'",
        )],
    );
    // A search, not a whole-string match.
    keyword(
        r#"{"pattern":"b"}"#,
        &[r#""abc""#],
        &[(r#""ac""#, "/: does not match the pattern 'b'")],
    );
}

#[test]
fn array_keywords() {
    keyword(
        r#"{"items":{"type":"integer"}}"#,
        &["[]", "[1,2]", r#"{"not":"an array"}"#],
        &[(r#"[1,"x"]"#, "/1: expected integer, found string")],
    );
    // Draft 4's tuple form, and `additionalItems`.
    keyword(
        r#"{"items":[{"type":"string"}],"additionalItems":false}"#,
        &[r#"["a"]"#, "[]"],
        &[
            (r#"["a",1]"#, "/: 2 items; at most 1 allowed"),
            ("[1]", "/0: expected string, found number"),
        ],
    );
    keyword(
        r#"{"items":[{"type":"string"}],"additionalItems":{"type":"integer"}}"#,
        &[r#"["a",1,2]"#],
        &[(r#"["a","b"]"#, "/1: expected integer, found string")],
    );
    keyword(r#"{"items":[{"type":"string"}]}"#, &[r#"["a",1,{}]"#], &[]);
    keyword(
        r#"{"prefixItems":[{"type":"string"},{"type":"boolean"}],"items":{"type":"integer"}}"#,
        &[r#"["a"]"#, r#"["a",true,1,2]"#],
        &[
            (r#"["a",1]"#, "/1: expected boolean, found number"),
            (r#"["a",true,"b"]"#, "/2: expected integer, found string"),
        ],
    );
    keyword(
        r#"{"prefixItems":[{"type":"string"}],"items":false}"#,
        &[r#"["a"]"#],
        &[(r#"["a","b","c"]"#, "/: 3 items; at most 1 allowed")],
    );
    keyword(
        r#"{"contains":{"type":"string"}}"#,
        &[r#"[1,"a"]"#],
        &[
            ("[1,2]", "/: no item matches 'contains'"),
            ("[]", "/: no item matches 'contains'"),
        ],
    );
    keyword(
        r#"{"contains":{"const":1},"minContains":2,"maxContains":3}"#,
        &["[1,1]", "[1,2,1,1]"],
        &[
            ("[1,2]", "/: 1 item matches 'contains'; at least 2 required"),
            (
                "[1,1,1,1]",
                "/: 4 items match 'contains'; at most 3 allowed",
            ),
        ],
    );
    keyword(
        r#"{"minItems":2,"maxItems":5}"#,
        &["[1,2]", "[1,2,3,4,5]"],
        &[
            ("[1]", "/: 1 item; at least 2 required"),
            ("[1,2,3,4,5,6,7]", "/: 7 items; at most 5 allowed"),
        ],
    );
    keyword(
        r#"{"uniqueItems":true}"#,
        &[
            r#"[1,"1",[1],{"a":1},true,null]"#,
            "[]",
            r#"[{"a":1},{"a":2}]"#,
        ],
        &[
            (
                "[1,2,1.0]",
                "/: items 0 and 2 are equal; 'uniqueItems' forbids duplicates",
            ),
            (
                r#"[{"a":1,"b":[2]},{"b":[2.0],"a":1}]"#,
                "/: items 0 and 1 are equal; 'uniqueItems' forbids duplicates",
            ),
            (
                "[3,4,5,4,3]",
                "/: items 1 and 3 are equal; 'uniqueItems' forbids duplicates",
            ),
        ],
    );
    keyword(r#"{"uniqueItems":false}"#, &["[1,1]"], &[]);
}

#[test]
fn object_keywords() {
    keyword(
        r#"{"properties":{"a":{"type":"string"}},"required":["a","age"]}"#,
        &[r#"{"a":"x","age":1}"#, "[]"],
        &[
            (r#"{"a":1,"age":1}"#, "/a: expected string, found number"),
            (r#"{"a":"x"}"#, "/: missing required property 'age'"),
        ],
    );
    keyword(
        r#"{"properties":{"a":true},"additionalProperties":false}"#,
        &[r#"{"a":1}"#, "{}"],
        &[(
            r#"{"a":1,"b":2}"#,
            "/b: property not allowed ('additionalProperties' is false)",
        )],
    );
    keyword(
        r#"{"additionalProperties":{"type":"integer"}}"#,
        &[r#"{"x":1}"#],
        &[(r#"{"x":"s"}"#, "/x: expected integer, found string")],
    );
    keyword(
        r#"{"patternProperties":{"^n_":{"type":"number"}},"additionalProperties":false}"#,
        &[r#"{"n_a":1}"#],
        &[
            (r#"{"n_a":"x"}"#, "/n_a: expected number, found string"),
            (
                r#"{"b":1}"#,
                "/b: property not allowed ('additionalProperties' is false)",
            ),
        ],
    );
    keyword(
        r#"{"propertyNames":{"maxLength":3}}"#,
        &[r#"{"abc":1}"#],
        &[(
            r#"{"abcd":1}"#,
            "/abcd: the property name does not match 'propertyNames'",
        )],
    );
    keyword(
        r#"{"minProperties":2,"maxProperties":3}"#,
        &[r#"{"a":1,"b":2}"#],
        &[
            (r#"{"a":1}"#, "/: 1 property; at least 2 required"),
            (
                r#"{"a":1,"b":2,"c":3,"d":4}"#,
                "/: 4 properties; at most 3 allowed",
            ),
        ],
    );
    keyword(
        r#"{"dependentRequired":{"card":["cvv"]}}"#,
        &["{}", r#"{"card":1,"cvv":2}"#, r#"{"cvv":2}"#],
        &[(
            r#"{"card":1}"#,
            "/: property 'card' requires property 'cvv'",
        )],
    );
    keyword(
        r#"{"dependentSchemas":{"card":{"required":["cvv"]}}}"#,
        &["{}", r#"{"card":1,"cvv":2}"#],
        &[(r#"{"card":1}"#, "/: missing required property 'cvv'")],
    );
    // Draft 4's `dependencies`, both forms.
    keyword(
        r#"{"dependencies":{"a":["b"],"c":{"properties":{"d":{"type":"string"}}}}}"#,
        &[r#"{"a":1,"b":1}"#, r#"{"c":1,"d":"x"}"#, r#"{"d":1}"#],
        &[
            (r#"{"a":1}"#, "/: property 'a' requires property 'b'"),
            (r#"{"c":1,"d":1}"#, "/d: expected string, found number"),
        ],
    );
    // A pointer escapes `~` and `/` in keys.
    keyword(
        r#"{"additionalProperties":{"type":"string"}}"#,
        &[],
        &[(r#"{"a/b~c":1}"#, "/a~1b~0c: expected string, found number")],
    );
}

#[test]
fn combinators_and_conditionals() {
    keyword(
        r#"{"allOf":[{"type":"integer"},{"minimum":3}]}"#,
        &["3"],
        &[
            ("2", "/: less than the minimum 3"),
            ("3.5", "/: expected integer, found number"),
        ],
    );
    keyword(
        r#"{"anyOf":[{"type":"string"},{"type":"null"}]}"#,
        &["null", r#""a""#],
        &[("1", "/: matches none of the 2 'anyOf' schemas")],
    );
    keyword(
        r#"{"oneOf":[{"type":"integer"},{"minimum":2}]}"#,
        &["1", "2.5"],
        &[
            (
                "3",
                "/: matches 'oneOf' schemas 0 and 1; exactly one allowed",
            ),
            ("1.5", "/: matches none of the 2 'oneOf' schemas"),
        ],
    );
    keyword(
        r#"{"not":{"type":"string"}}"#,
        &["1"],
        &[(r#""a""#, "/: matches the 'not' schema")],
    );
    let conditional = r#"{"if":{"properties":{"kind":{"const":"a"}}},"then":{"required":["x"]},"else":{"required":["y"]}}"#;
    keyword(
        conditional,
        &[r#"{"kind":"a","x":1}"#, r#"{"kind":"b","y":1}"#],
        &[
            (r#"{"kind":"a"}"#, "/: missing required property 'x'"),
            (r#"{"kind":"b"}"#, "/: missing required property 'y'"),
        ],
    );
    keyword(r#"{"if":{"type":"string"}}"#, &["1", r#""a""#], &[]);
    keyword("true", &["1", "null", r#"{"a":[]}"#], &[]);
    keyword(
        "false",
        &[],
        &[("1", "/: not allowed (the schema is false)")],
    );
    keyword(
        r#"{"properties":{"a":false}}"#,
        &["{}"],
        &[(r#"{"a":1}"#, "/a: not allowed (the schema is false)")],
    );
    keyword(r#"{"allOf":[true,{}]}"#, &["1"], &[]);
}

#[test]
fn refs_to_definitions_and_recursion() {
    keyword(
        r##"{"$defs":{"pos":{"type":"integer","minimum":1}},"properties":{"n":{"$ref":"#/$defs/pos"}}}"##,
        &[r#"{"n":1}"#],
        &[(r#"{"n":0}"#, "/n: less than the minimum 1")],
    );
    keyword(
        r##"{"definitions":{"s":{"type":"string"}},"items":{"$ref":"#/definitions/s"}}"##,
        &[r#"["a"]"#],
        &[(r#"["a",2]"#, "/1: expected string, found number")],
    );
    // Escaped pointers, and a $ref's siblings apply too.
    keyword(
        r##"{"$defs":{"a/b":{"type":"string"},"c d":{"type":"integer"}},"properties":{"x":{"$ref":"#/$defs/a~1b","maxLength":2},"y":{"$ref":"#/$defs/c%20d"}}}"##,
        &[r#"{"x":"ab","y":1}"#],
        &[
            (r#"{"y":"1"}"#, "/y: expected integer, found string"),
            (r#"{"x":"abc"}"#, "/x: 3 characters; at most 2 allowed"),
        ],
    );
    // A tree: the schema refers to itself.
    let tree = r##"{"type":"object","required":["name"],"properties":{"name":{"type":"string"},"children":{"type":"array","items":{"$ref":"#"}}}}"##;
    keyword(
        tree,
        &[r#"{"name":"a","children":[{"name":"b","children":[{"name":"c"}]},{"name":"d"}]}"#],
        &[(
            r#"{"name":"a","children":[{"name":"b","children":[{"name":"c"},{"name":5}]}]}"#,
            "/children/0/children/1/name: expected string, found number",
        )],
    );
    // Recursion as deep as an answer can nest is fine.
    let deep = format!("{}{}", "[".repeat(120), "]".repeat(120));
    keyword(r##"{"type":"array","items":{"$ref":"#"}}"##, &[&deep], &[]);
}

#[test]
fn ref_loops_and_blowups_hit_the_limits() {
    for schema in [
        r##"{"$ref":"#"}"##,
        r##"{"$defs":{"a":{"$ref":"#/$defs/b"},"b":{"$ref":"#/$defs/a"}},"$ref":"#/$defs/a"}"##,
        r##"{"anyOf":[{"type":"string"},{"$ref":"#"}]}"##,
        r##"{"properties":{"a":{"not":{"$ref":"#/properties/a"}}}}"##,
    ] {
        let s = compile(schema);
        let doc = r#"{"a":1}"#;
        match outcome(&s, doc) {
            Outcome::GaveUp(m) => assert!(m.contains("$ref loop"), "{schema}: {m}"),
            o => panic!("{schema}: {o:?}"),
        }
    }
    // Each level tries two branches that both fail: 2^40 paths, cut off by the step limit.
    let mut defs = serde_json::Map::new();
    for i in 0..40 {
        let next = format!("#/$defs/d{}", i + 1);
        defs.insert(
            format!("d{i}"),
            serde_json::json!({"anyOf": [{"$ref": next}, {"$ref": next}]}),
        );
    }
    defs.insert("d40".into(), Value::Bool(false));
    let schema = serde_json::json!({"$defs": defs, "$ref": "#/$defs/d0"});
    let s = Schema::compile(&schema).expect("compiles");
    let started = Instant::now();
    match s.check(&Value::Null) {
        Outcome::GaveUp(m) => assert!(m.contains(&MAX_STEPS.to_string()), "{m}"),
        o => panic!("{o:?}"),
    }
    assert!(started.elapsed().as_secs() < 5);
    // Big arrays count too.
    let s = compile(r#"{"uniqueItems":true}"#);
    let many = Value::Array(vec![Value::from(0); MAX_STEPS as usize + 1]);
    assert!(matches!(s.check(&many), Outcome::GaveUp(_)));

    // Through the plugin: the admin's looping schema fails the answer, a request's
    // lets it through.
    let plain = TestRequest::new().model("claude-sonnet-4-5");
    let v = check(&plain, r##"{"schema":{"$ref":"#"}}"##, "{}");
    let msg = &v.denial().expect("denied").message;
    assert!(
        msg.contains("could not be checked") && msg.contains("$ref loop"),
        "{msg}"
    );
    assert_eq!(v.findings()[0].rule, "json_schema");
    let req =
        openai(r##"{"type":"json_schema","json_schema":{"name":"l","schema":{"$ref":"#"}}}"##);
    assert_eq!(check(&req, "{}", "{}"), Verdict::allow());
    assert!(check(&req, "{}", "nope").denial().is_some());
}

#[test]
fn unsupported_keywords_are_refused_in_the_config() {
    let refused = |schema: &str| {
        testing::validate::<OutputCheck>(&format!(r#"{{"schema":{schema}}}"#)).expect_err(schema)
    };
    assert_eq!(
        refused(r#"{"properties":{"a":{"type":"object","unevaluatedProperties":false}}}"#),
        "config: schema: /properties/a: unsupported keyword 'unevaluatedProperties'"
    );
    assert_eq!(
        refused(r#"{"items":{"unevaluatedItems":false}}"#),
        "config: schema: /items: unsupported keyword 'unevaluatedItems'"
    );
    assert_eq!(
        refused(r##"{"$dynamicRef":"#node"}"##),
        "config: schema: /: unsupported keyword '$dynamicRef'"
    );
    assert_eq!(
        refused(r#"{"anyOf":[{"type":"string"},{"requried":["a"]}]}"#),
        "config: schema: /anyOf/1: unknown keyword 'requried'"
    );
    let err = refused(r#"{"properties":{"a":{"$ref":"https://example.com/a.json"}}}"#);
    assert!(
        err.starts_with(
            "config: schema: /properties/a: unsupported $ref 'https://example.com/a.json'"
        ),
        "{err}"
    );
    let err = refused(r##"{"$ref":"#node"}"##);
    assert!(err.contains("unsupported $ref '#node'"), "{err}");
    let err = refused(r##"{"$ref":"#/$defs/missing"}"##);
    assert_eq!(
        err,
        "config: schema: /: $ref '#/$defs/missing' points to nothing"
    );
    // Errors inside a definition name the definition's place.
    let err = refused(r##"{"$defs":{"x":{"type":"strin"}},"$ref":"#/$defs/x"}"##);
    assert_eq!(
        err,
        "config: schema: /$defs/x: 'type' names an unknown type 'strin'"
    );
    let err = refused(r#"{"pattern":"(unclosed"}"#);
    assert!(
        err.starts_with("config: schema: /: pattern '(unclosed' does not compile"),
        "{err}"
    );
    let long = "a".repeat(crate::schema::MAX_PATTERN + 1);
    let err = refused(&format!(r#"{{"patternProperties":{{"{long}":true}}}}"#));
    assert!(err.contains("longer than the 1024 allowed"), "{err}");
    for bad in [
        r#"{"minLength":-1}"#,
        r#"{"maxItems":1.5}"#,
        r#"{"multipleOf":0}"#,
        r#"{"required":"a"}"#,
        r#"{"enum":1}"#,
        r#"{"properties":[]}"#,
        r#"{"items":[{"type":1}]}"#,
        "1",
    ] {
        refused(bad);
    }
    // Annotations are accepted and ignored; `format` is not checked.
    let annotated = r#"{"schema":{"$schema":"https://json-schema.org/draft/2020-12/schema","$id":"urn:x","title":"t","description":"d","default":"a","examples":["a"],"$comment":"c","format":"email","x-vendor":{"any":"thing"},"type":"string","deprecated":false}}"#;
    testing::validate::<OutputCheck>(annotated).expect("annotations are fine");
    let plain = TestRequest::new().model("claude-sonnet-4-5");
    assert_eq!(
        check(&plain, annotated, r#""not an email""#),
        Verdict::allow()
    );
}

#[test]
fn a_request_schema_that_cannot_be_checked_is_skipped() {
    for schema in [
        r#"{"type":"object","unevaluatedProperties":false}"#,
        r#"{"type":"object","nullable":true}"#,
        r#"{"$ref":"https://example.com/s.json"}"#,
        r#"{"type":"object","properties":{"a":{"pattern":"\\p{L}+"}}}"#,
        r#""not a schema""#,
    ] {
        let req = openai(&format!(
            r#"{{"type":"json_schema","json_schema":{{"name":"s","schema":{schema}}}}}"#
        ));
        // Not schema-checked ...
        assert_eq!(check(&req, "{}", "[1]"), Verdict::allow(), "{schema}");
        // ... but still JSON-checked.
        let v = check(&req, "{}", "not json");
        assert_eq!(v.findings()[0].rule, "json_parse", "{schema}");
    }
}

#[test]
fn violations_never_quote_the_answer() {
    const SECRET: &str = "AKIAIOSFODNN7EXAMPLE";
    let doc = format!(r#"{{"key":"{SECRET}"}}"#);
    for rule in [
        r#"{"type":"integer"}"#,
        r#"{"enum":["a","b"]}"#,
        r#"{"const":"a"}"#,
        r#"{"maxLength":5}"#,
        r#"{"minLength":50}"#,
        r#"{"pattern":"^[a-z]+$"}"#,
        r#"{"not":{"type":"string"}}"#,
        r#"{"anyOf":[{"type":"integer"},{"type":"null"}]}"#,
        r#"{"oneOf":[{"type":"string"},{"type":"string"}]}"#,
        r#"{"format":"email","type":"array"}"#,
    ] {
        let config = format!(r#"{{"schema":{{"type":"object","properties":{{"key":{rule}}}}}}}"#);
        let plain = TestRequest::new().model("claude-sonnet-4-5");
        let v = check(&plain, &config, &doc);
        let msg = &v
            .denial()
            .unwrap_or_else(|| panic!("{rule} denies"))
            .message;
        assert!(msg.contains("/key: "), "{msg}");
        assert!(
            !msg.contains(SECRET) && !msg.contains("AKIA"),
            "{rule}: {msg}"
        );
    }
    // Nor a parse error.
    let req = openai(r#"{"type":"json_object"}"#);
    let msg = check(&req, "{}", &format!("{{\"key\": {SECRET}}}"))
        .denial()
        .expect("denied")
        .message
        .clone();
    assert!(!msg.contains(SECRET), "{msg}");
}

/// An answer of `(choice, text)` parts.
fn choices_answer(parts: &[(u32, &str)]) -> Answer {
    let mut answer = testing::answer(parts.iter().map(|(_, text)| *text));
    for (part, (choice, _)) in answer.parts.iter_mut().zip(parts) {
        part.message = Some(*choice);
    }
    answer
}

#[test]
fn each_choice_is_checked_on_its_own() {
    let req = openai(PERSON);
    let run = |parts: &[(u32, &str)]| {
        req.run_inspect_response::<OutputCheck>("{}", &choices_answer(parts))
            .expect("valid config")
    };
    // Parts of one choice are joined; choices are not.
    let ok = run(&[
        (0, r#"{"name":"Ann","#),
        (1, r#"{"name":"Bo","age":2}"#),
        (0, r#""age":1}"#),
    ]);
    assert_eq!(ok, Verdict::allow());
    let v = run(&[(0, r#"{"name":"Ann","age":1}"#), (1, r#"{"name":"Bo"}"#)]);
    let msg = &v.denial().expect("denied").message;
    assert_eq!(
        msg,
        "the model's answer was withheld by output-check: choice 1: the answer does not match the JSON schema: /: missing required property 'age'"
    );
    assert_eq!(
        v.findings(),
        [tollgate_guest::Finding::new("json_schema", "format", 1)]
    );
    // The first failing choice is named; every failing one is counted.
    let v = run(&[
        (1, r#"{"name":"Bo"}"#),
        (0, "nope"),
        (2, r#"{"name":"Cy"}"#),
    ]);
    let msg = &v.denial().expect("denied").message;
    assert!(
        msg.contains("choice 0: the answer is not valid JSON"),
        "{msg}"
    );
    assert_eq!(
        v.findings(),
        [
            tollgate_guest::Finding::new("json_parse", "format", 1),
            tollgate_guest::Finding::new("json_schema", "format", 2)
        ]
    );
    // One choice: no choice number.
    let v = run(&[(0, r#"{"name":"Bo"}"#)]);
    assert!(!v.denial().expect("denied").message.contains("choice"));
}

/// The gateway's criterion case, natively: run with
/// `cargo test --release -p tollgate-output-check -- --ignored --nocapture`.
#[test]
#[ignore = "prints timings"]
fn bench_case_timing() {
    const CONFIG: &str = r#"{"schema":{"type":"object","required":["summary","tickets"],"properties":{"summary":{"type":"string"},"tickets":{"type":"array","items":{"type":"integer"}}}}}"#;
    const ANSWER: &str = r#"{"summary":"export stalls after batch two","tickets":[48213]}"#;
    let req = TestRequest::new().model("claude-sonnet-4-5");
    let answer = testing::answer([ANSWER]);
    let time = |name: &str, n: u32, mut f: Box<dyn FnMut() + '_>| {
        for _ in 0..n / 10 {
            f();
        }
        let started = Instant::now();
        for _ in 0..n {
            f();
        }
        let per = started.elapsed() / n;
        println!("{name:<60} {:>8.2} µs", per.as_secs_f64() * 1e6);
    };
    assert_eq!(
        req.run_inspect_response::<OutputCheck>(CONFIG, &answer),
        Ok(Verdict::allow())
    );
    let n = 50_000;
    time(
        "whole call (config parse + compile + request + check)",
        n,
        Box::new(|| {
            black_box(req.run_inspect_response::<OutputCheck>(black_box(CONFIG), &answer)).ok();
        }),
    );
    time(
        "config parse + validate (schema compile)",
        n,
        Box::new(|| {
            black_box(testing::validate::<OutputCheck>(black_box(CONFIG))).ok();
        }),
    );
    let schema_json: Value = serde_json::from_str::<Value>(CONFIG).expect("json")["schema"].clone();
    time(
        "schema compile",
        n,
        Box::new(|| {
            black_box(Schema::compile(black_box(&schema_json))).ok();
        }),
    );
    let schema = Schema::compile(&schema_json).expect("compiles");
    time(
        "answer parse + check",
        n,
        Box::new(|| {
            let doc: Value = serde_json::from_str(black_box(ANSWER)).expect("json");
            black_box(schema.check(&doc));
        }),
    );
}
