//! Hot-path cost of relaying a stream: one upstream stream of 200 text deltas, fed
//! one event per chunk as a network delivers it, through each (client API, provider
//! API) pair's relay, and a whole answer decoded by each pair's codec. Reported per
//! stream; divide by the event count for the per-event figure.

use bytes::Bytes;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use std::hint::black_box;
use tollgate::api::Api;
use tollgate::translate::Codec;

const DELTAS: usize = 200;

/// An Anthropic Messages stream as the API sends it, one `Bytes` per event.
fn anthropic_stream() -> Vec<Bytes> {
    let mut events = vec![
        r#"event: message_start
data: {"type":"message_start","message":{"id":"msg_01","type":"message","role":"assistant","model":"claude-sonnet-4-5","content":[],"stop_reason":null,"stop_sequence":null,"usage":{"input_tokens":472,"output_tokens":2}}}

"#.to_string(),
        "event: content_block_start\ndata: {\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":\"text\",\"text\":\"\"}}\n\n".to_string(),
    ];
    for i in 0..DELTAS {
        events.push(format!(
            "event: content_block_delta\ndata: {{\"type\":\"content_block_delta\",\"index\":0,\"delta\":{{\"type\":\"text_delta\",\"text\":\"word{i} \"}}}}\n\n"
        ));
    }
    events.push(
        "event: content_block_stop\ndata: {\"type\":\"content_block_stop\",\"index\":0}\n\n".into(),
    );
    events.push("event: message_delta\ndata: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"end_turn\",\"stop_sequence\":null},\"usage\":{\"output_tokens\":200}}\n\n".into());
    events.push("event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n".into());
    events.into_iter().map(Bytes::from).collect()
}

/// An OpenAI Chat Completions stream with its usage chunk, one `Bytes` per chunk.
fn openai_stream() -> Vec<Bytes> {
    let head = r#""id":"chatcmpl-1","object":"chat.completion.chunk","created":1694268190,"model":"gpt-4o-mini""#;
    let mut events = vec![format!(
        "data: {{{head},\"choices\":[{{\"index\":0,\"delta\":{{\"role\":\"assistant\",\"content\":\"\"}},\"logprobs\":null,\"finish_reason\":null}}]}}\n\n"
    )];
    for i in 0..DELTAS {
        events.push(format!(
            "data: {{{head},\"choices\":[{{\"index\":0,\"delta\":{{\"content\":\"word{i} \"}},\"logprobs\":null,\"finish_reason\":null}}]}}\n\n"
        ));
    }
    events.push(format!(
        "data: {{{head},\"choices\":[{{\"index\":0,\"delta\":{{}},\"logprobs\":null,\"finish_reason\":\"stop\"}}]}}\n\n"
    ));
    events.push(format!(
        "data: {{{head},\"choices\":[],\"usage\":{{\"prompt_tokens\":472,\"completion_tokens\":200,\"total_tokens\":672}}}}\n\n"
    ));
    events.push("data: [DONE]\n\n".into());
    events.into_iter().map(Bytes::from).collect()
}

fn streams(c: &mut Criterion) {
    let anthropic = anthropic_stream();
    let openai = openai_stream();
    let mut g = c.benchmark_group("relay");
    for (client, upstream, name) in [
        (
            Api::Anthropic,
            Api::Anthropic,
            "anthropic<-anthropic (passthrough)",
        ),
        (Api::OpenAi, Api::OpenAi, "openai<-openai (passthrough)"),
        (
            Api::Anthropic,
            Api::OpenAi,
            "anthropic<-openai (translated)",
        ),
        (
            Api::OpenAi,
            Api::Anthropic,
            "openai<-anthropic (translated)",
        ),
    ] {
        let events = match upstream {
            Api::Anthropic => &anthropic,
            Api::OpenAi => &openai,
        };
        g.throughput(Throughput::Elements(events.len() as u64));
        let codec = Codec::new(client, upstream);
        g.bench_function(name, |b| {
            b.iter(|| {
                let mut relay = codec.stream("claude-sonnet-4-5", "req_bench", false);
                let mut sent = 0usize;
                for ev in events {
                    sent += relay.chunk(ev.clone()).len();
                }
                sent += relay.end().len();
                black_box((sent, relay.stats().usage))
            })
        });
    }
    g.finish();
}

criterion_group!(benches, streams);
criterion_main!(benches);
