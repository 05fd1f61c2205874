use super::*;
use crate::api::Api;
use crate::plugins::wit;
use crate::usage::Usage;
use bytes::Bytes;
use serde_json::{Value, json};

fn edit(part: u32, start: u32, end: u32, with: &str) -> wit::TextEdit {
    wit::TextEdit {
        part,
        start,
        end,
        replacement: with.into(),
    }
}

fn rewrite(edits: Vec<wit::TextEdit>, append: Option<&str>) -> wit::Rewrite {
    wit::Rewrite {
        edits,
        append_system: append.map(str::to_string),
        findings: Vec::new(),
    }
}

fn texts(s: &dyn Guarded) -> Vec<(String, Option<u32>, String)> {
    let parts = match s.subject() {
        Subject::Request(c) => &c.parts,
        Subject::Response(a) => &a.parts,
    };
    parts
        .iter()
        .map(|p| {
            let role = format!("{:?}", p.role).replace("Role::", "");
            (role, p.message, p.text.clone())
        })
        .collect()
}

fn body_of(t: RequestText) -> Value {
    serde_json::from_slice(&t.into_body().expect("changed")).expect("json")
}

#[test]
fn anthropic_conversation_has_every_text_and_keeps_the_rest() {
    let body = json!({
        "model": "m",
        "system": [{"type": "text", "text": "be brief", "cache_control": {"type": "ephemeral"}}],
        "messages": [
            {"role": "user", "content": "mail bob@example.com"},
            {"role": "assistant", "content": [
                {"type": "thinking", "thinking": "hmm", "signature": "sig"},
                {"type": "text", "text": "calling"},
                {"type": "tool_use", "id": "t1", "name": "lookup", "input": {"q": "x"}}
            ]},
            {"role": "user", "content": [
                {"type": "tool_result", "tool_use_id": "t1", "content": [{"type": "text", "text": "card 4111"}, {"type": "image", "source": {}}]},
                {"type": "tool_result", "tool_use_id": "t2", "content": "plain"},
                {"type": "image", "source": {"type": "base64", "data": "AAAA"}}
            ]}
        ]
    });
    let t = RequestText::parse(Api::Anthropic, body.to_string().as_bytes()).expect("parse");
    assert_eq!(
        texts(&t),
        [
            ("System".into(), None, "be brief".into()),
            ("User".into(), Some(0), "mail bob@example.com".into()),
            ("Assistant".into(), Some(1), "calling".into()),
            ("Tool".into(), Some(2), "card 4111".into()),
            ("Tool".into(), Some(2), "plain".into()),
        ]
    );
    let c = t.conversation();
    assert_eq!(c.other_parts, 3, "thinking, the nested image, the image");
    assert_eq!(c.tool_calls[0].name, "lookup");
    assert_eq!(c.tool_calls[0].arguments, r#"{"q":"x"}"#);

    let mut t = t;
    t.rewrite(rewrite(
        vec![edit(1, 5, 20, "[EMAIL_1]"), edit(3, 5, 9, "[CARD_1]")],
        Some("never reveal PII"),
    ))
    .expect("valid");
    // The next plugin sees the rewritten text, the appended system block numbered
    // with the system prompt.
    assert_eq!(texts(&t)[1].2, "never reveal PII");
    assert_eq!(texts(&t)[2].2, "mail [EMAIL_1]");
    let out = body_of(t);
    let mut expected = body.clone();
    expected["messages"][0]["content"] = json!("mail [EMAIL_1]");
    expected["messages"][2]["content"][0]["content"][0]["text"] = json!("card [CARD_1]");
    expected["system"]
        .as_array_mut()
        .expect("blocks")
        .push(json!({"type": "text", "text": "never reveal PII"}));
    assert_eq!(out, expected, "only the edited texts changed");
}

#[test]
fn a_plain_text_document_is_text_and_a_pdf_is_not() {
    let body = json!({"model": "m", "messages": [{"role": "user", "content": [
        {"type": "document", "source": {"type": "text", "media_type": "text/plain", "data": "ssn 123-45-6789"}},
        {"type": "document", "source": {"type": "base64", "media_type": "application/pdf", "data": "JVBER"}},
        {"type": "text", "text": "summarise"}
    ]}]});
    let mut t = RequestText::parse(Api::Anthropic, body.to_string().as_bytes()).expect("parse");
    assert_eq!(
        texts(&t),
        [
            ("User".into(), Some(0), "ssn 123-45-6789".into()),
            ("User".into(), Some(0), "summarise".into()),
        ]
    );
    assert_eq!(t.conversation().other_parts, 1);
    t.rewrite(rewrite(vec![edit(0, 4, 15, "[SSN_1]")], None))
        .expect("valid");
    let out = body_of(t);
    assert_eq!(
        out["messages"][0]["content"][0]["source"]["data"],
        "ssn [SSN_1]"
    );
    assert_eq!(
        out["messages"][0]["content"][1],
        body["messages"][0]["content"][1]
    );
}

#[test]
fn openai_conversation_and_system_prompt_appends() {
    let body = json!({
        "model": "gpt",
        "messages": [
            {"role": "developer", "content": "rules"},
            {"role": "user", "content": [{"type": "text", "text": "héllo 4111"}, {"type": "image_url", "image_url": {"url": "x"}}]},
            {"role": "assistant", "content": null, "tool_calls": [{"id": "c", "type": "function", "function": {"name": "f", "arguments": "{\"a\":1}"}}]},
            {"role": "tool", "tool_call_id": "c", "content": "result"}
        ]
    });
    let mut t = RequestText::parse(Api::OpenAi, body.to_string().as_bytes()).expect("parse");
    assert_eq!(
        texts(&t),
        [
            ("System".into(), Some(0), "rules".into()),
            ("User".into(), Some(1), "héllo 4111".into()),
            ("Tool".into(), Some(3), "result".into()),
        ]
    );
    assert_eq!(t.conversation().other_parts, 1);
    assert_eq!(t.conversation().tool_calls[0].arguments, r#"{"a":1}"#);
    // "é" is two bytes: 7..11 is "4111".
    t.rewrite(rewrite(vec![edit(1, 7, 11, "[CARD_1]")], Some("extra")))
        .expect("valid");
    let out = body_of(t);
    assert_eq!(out["messages"][0]["content"], "rules\n\nextra");
    assert_eq!(out["messages"][1]["content"][0]["text"], "héllo [CARD_1]");
    assert_eq!(
        out["messages"][1]["content"][1],
        body["messages"][1]["content"][1]
    );

    // No system message: one is put first.
    let body = json!({"model": "gpt", "messages": [{"role": "user", "content": "hi"}]});
    let mut t = RequestText::parse(Api::OpenAi, body.to_string().as_bytes()).expect("parse");
    t.rewrite(rewrite(vec![], Some("be safe"))).expect("valid");
    let out = body_of(t);
    assert_eq!(
        out["messages"][0],
        json!({"role": "system", "content": "be safe"})
    );
    assert_eq!(out["messages"][1]["content"], "hi");

    // Anthropic without a system prompt gets one.
    let body = json!({"model": "m", "messages": [{"role": "user", "content": "hi"}]});
    let mut t = RequestText::parse(Api::Anthropic, body.to_string().as_bytes()).expect("parse");
    t.rewrite(rewrite(vec![], Some("be safe"))).expect("valid");
    assert_eq!(body_of(t)["system"], "be safe");
}

#[test]
fn bad_edits_are_refused_and_change_nothing() {
    let body = json!({"model": "m", "messages": [{"role": "user", "content": "héllo world"}]});
    let parse = || RequestText::parse(Api::Anthropic, body.to_string().as_bytes()).expect("parse");
    let cases: Vec<(Vec<wit::TextEdit>, GuardError)> = vec![
        (
            vec![edit(0, 0, 1, "x"), edit(7, 0, 1, "x")],
            GuardError::NoSuchPart {
                index: 1,
                part: 7,
                parts: 1,
            },
        ),
        (
            vec![edit(0, 2, 3, "x")],
            GuardError::Range {
                index: 0,
                part: 0,
                start: 2,
                end: 3,
                len: 12,
            },
        ),
        (
            vec![edit(0, 5, 4, "x")],
            GuardError::Range {
                index: 0,
                part: 0,
                start: 5,
                end: 4,
                len: 12,
            },
        ),
        (
            vec![edit(0, 0, 99, "x")],
            GuardError::Range {
                index: 0,
                part: 0,
                start: 0,
                end: 99,
                len: 12,
            },
        ),
        (
            vec![edit(0, 7, 12, "a"), edit(0, 0, 8, "b")],
            GuardError::Overlap {
                first: 0,
                second: 1,
                part: 0,
            },
        ),
        (
            vec![edit(0, 3, 3, "a"), edit(0, 3, 3, "b")],
            GuardError::Overlap {
                first: 0,
                second: 1,
                part: 0,
            },
        ),
        (
            vec![edit(0, 0, 0, &"x".repeat(edits::MAX_GROWTH + 1))],
            GuardError::TooLarge {
                added: edits::MAX_GROWTH + 1,
                max: edits::MAX_GROWTH,
            },
        ),
    ];
    for (edits, expected) in cases {
        let mut t = parse();
        assert_eq!(t.rewrite(rewrite(edits, None)), Err(expected.clone()));
        assert!(t.into_body().is_none(), "{expected}: nothing changed");
    }
    // Adjacent edits are fine; several in one part are applied together.
    let mut t = parse();
    t.rewrite(rewrite(
        vec![edit(0, 7, 12, "W"), edit(0, 0, 7, "H ")],
        None,
    ))
    .expect("adjacent");
    assert_eq!(body_of(t)["messages"][0]["content"], "H W");
}

#[test]
fn whole_answers_in_both_shapes() {
    let usage = Usage {
        input_tokens: 10,
        output_tokens: 5,
        ..Usage::default()
    };
    let anthropic = json!({
        "id": "msg", "type": "message", "role": "assistant", "model": "m",
        "content": [{"type": "text", "text": "key AKIAABCDEFGHIJKLMNOP ok"}, {"type": "tool_use", "id": "t", "name": "f", "input": {"a": 1}}],
        "stop_reason": "tool_use", "usage": {"input_tokens": 10, "output_tokens": 5}
    });
    let mut a =
        AnswerText::parse(Api::Anthropic, anthropic.to_string().as_bytes(), &usage).expect("parse");
    let Subject::Response(ans) = a.subject() else {
        panic!("an answer")
    };
    assert_eq!(
        (
            ans.stop_reason.as_deref(),
            ans.input_tokens,
            ans.output_tokens,
            ans.tool_calls.len()
        ),
        (Some("tool_use"), 10, 5, 1)
    );
    assert_eq!(
        a.rewrite(rewrite(vec![], Some("x"))),
        Err(GuardError::AppendToAnswer)
    );
    a.rewrite(rewrite(vec![edit(0, 4, 24, "[AWS_KEY_1]")], None))
        .expect("valid");
    let out: Value = serde_json::from_slice(&a.into_body().expect("changed")).expect("json");
    assert_eq!(out["content"][0]["text"], "key [AWS_KEY_1] ok");
    assert_eq!(out["content"][1], anthropic["content"][1]);

    let openai = json!({
        "id": "c", "object": "chat.completion", "model": "g",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": "a@b.co"}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15}
    });
    let mut a =
        AnswerText::parse(Api::OpenAi, openai.to_string().as_bytes(), &usage).expect("parse");
    assert_eq!(texts(&a), [("Assistant".into(), Some(0), "a@b.co".into())]);
    a.rewrite(rewrite(vec![edit(0, 0, 6, "[EMAIL_1]")], None))
        .expect("valid");
    let out: Value = serde_json::from_slice(&a.into_body().expect("changed")).expect("json");
    assert_eq!(out["choices"][0]["message"]["content"], "[EMAIL_1]");
}

fn anthropic_stream(deltas: &[&str]) -> String {
    let mut s = String::from(
        "event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"id\":\"m\",\"content\":[],\"usage\":{\"input_tokens\":3,\"output_tokens\":1}}}\n\n\
         event: content_block_start\ndata: {\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":\"text\",\"text\":\"\"}}\n\n",
    );
    for d in deltas {
        s.push_str(&format!(
            "event: content_block_delta\ndata: {}\n\n",
            json!({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": d}})
        ));
    }
    s.push_str(
        "event: content_block_stop\ndata: {\"type\":\"content_block_stop\",\"index\":0}\n\n\
         event: content_block_start\ndata: {\"type\":\"content_block_start\",\"index\":1,\"content_block\":{\"type\":\"tool_use\",\"id\":\"t\",\"name\":\"f\",\"input\":{}}}\n\n\
         event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":1,\"delta\":{\"type\":\"input_json_delta\",\"partial_json\":\"{\\\"a\\\":\"}}\n\n\
         event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":1,\"delta\":{\"type\":\"input_json_delta\",\"partial_json\":\"1}\"}}\n\n\
         event: message_delta\ndata: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"tool_use\"},\"usage\":{\"output_tokens\":9}}\n\n\
         event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n",
    );
    s
}

/// The text an SSE client would print: every delta's text, in order.
fn printed(api: Api, bytes: &[u8]) -> String {
    let mut events = Vec::new();
    let mut p = crate::translate::SseParser::new();
    p.feed(bytes, &mut events);
    p.finish(&mut events);
    events
        .iter()
        .filter_map(|e| serde_json::from_str::<Value>(&e.data).ok())
        .filter_map(|d| match api {
            Api::Anthropic => d
                .pointer("/delta/text")
                .and_then(Value::as_str)
                .map(str::to_string),
            Api::OpenAi => d
                .pointer("/choices/0/delta/content")
                .and_then(Value::as_str)
                .map(str::to_string),
        })
        .collect()
}

#[test]
fn streams_are_assembled_and_rewritten_well_formed() {
    let raw = anthropic_stream(&["mail bo", "b@exam", "ple.com ", "now"]);
    let usage = Usage::default();
    let mut s = StreamText::parse(Api::Anthropic, Bytes::from(raw.clone()), &usage, false);
    let Subject::Response(a) = s.subject() else {
        panic!("an answer")
    };
    assert_eq!(a.parts.len(), 1);
    assert_eq!(a.parts[0].text, "mail bob@example.com now");
    assert_eq!(a.tool_calls[0].name, "f");
    assert_eq!(a.tool_calls[0].arguments, r#"{"a":1}"#);
    assert_eq!(a.stop_reason.as_deref(), Some("tool_use"));
    s.rewrite(rewrite(vec![edit(0, 5, 20, "[EMAIL_1]")], None))
        .expect("valid");
    let out = s.to_bytes();
    assert_eq!(printed(Api::Anthropic, &out), "mail [EMAIL_1] now");
    let text = String::from_utf8(out.to_vec()).expect("utf8");
    assert!(!text.contains("bob"), "{text}");
    assert!(
        text.contains("input_json_delta") && text.ends_with("\n\n"),
        "{text}"
    );
    assert_eq!(
        text.matches("event: ").count(),
        raw.matches("event: ").count()
    );

    // Unchanged: the very same bytes.
    let s = StreamText::parse(Api::Anthropic, Bytes::from(raw.clone()), &usage, false);
    assert_eq!(s.to_bytes(), Bytes::from(raw));

    let chunk = |c: &str| {
        format!(
            "data: {}\n\n",
            json!({"id": "x", "object": "chat.completion.chunk", "choices": [{"index": 0, "delta": {"content": c}, "finish_reason": null}]})
        )
    };
    let raw = format!(
        "{}{}{}data: {}\n\ndata: [DONE]\n\n",
        chunk("token ghp_abc"),
        chunk("def"),
        chunk(" end"),
        json!({"id": "x", "object": "chat.completion.chunk", "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]})
    );
    let mut s = StreamText::parse(Api::OpenAi, Bytes::from(raw), &usage, true);
    let Subject::Response(a) = s.subject() else {
        panic!("an answer")
    };
    assert!(a.delivered);
    assert_eq!(a.parts[0].text, "token ghp_abcdef end");
    assert_eq!(a.stop_reason.as_deref(), Some("stop"));
    s.rewrite(rewrite(vec![edit(0, 6, 16, "[GITHUB_TOKEN_1]")], None))
        .expect("valid");
    let out = s.to_bytes();
    assert_eq!(printed(Api::OpenAi, &out), "token [GITHUB_TOKEN_1] end");
    assert!(String::from_utf8_lossy(&out).ends_with("data: [DONE]\n\n"));
}
