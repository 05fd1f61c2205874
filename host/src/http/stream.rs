//! Relaying an upstream SSE stream to the client as it arrives, through the pair's
//! [`Relay`]. Usage, first token and how the stream ended are read on the way for the
//! log; a client that hangs up is logged as 499 and billed for what was generated.
//! When the tenant's response guardrails `observe` streams, what the client was sent
//! is kept (up to [`OBSERVED_MAX`]) and inspected once the stream has ended, before
//! the request is logged.

use crate::api::Api;
use crate::guard::StreamText;
use crate::pipeline::{Exchange, ResponseGuard};
use crate::providers::{BodyStream, TransportError};
use crate::translate::Relay;
use bytes::Bytes;
use futures_util::Stream;
use std::pin::Pin;
use std::task::{Context, Poll};

/// The client's side of a relayed stream; logs the exchange when the stream ends or
/// the client goes away (then with what was generated so far, as 499).
pub struct RelayStream {
    inner: BodyStream,
    relay: Relay,
    ex: Option<Exchange>,
    done: bool,
    observer: Option<Observer>,
}

/// Most of a stream kept for observing guardrails; they see the start of a longer one.
pub const OBSERVED_MAX: usize = 4 << 20;

/// The response guardrails that inspect a stream after it was delivered.
struct Observer {
    guard: ResponseGuard,
    client: Api,
    sent: Vec<u8>,
}

impl RelayStream {
    /// Relays `upstream` through `relay`, logging into `ex`.
    pub fn new(upstream: crate::providers::Response, relay: Relay, ex: Exchange) -> Self {
        Self {
            inner: upstream.into_stream(),
            relay,
            ex: Some(ex),
            done: false,
            observer: None,
        }
    }

    /// The same stream, inspected by `guard`'s response guardrails once delivered
    /// (`client`: the API the stream is shaped in).
    pub fn observed_by(mut self, guard: Option<(ResponseGuard, Api)>) -> Self {
        self.observer = guard.map(|(guard, client)| Observer {
            guard,
            client,
            sent: Vec::new(),
        });
        self
    }

    /// Keeps what the client is sent: in the captured body, and for observers.
    fn sent(&mut self, bytes: &[u8]) {
        if let Some(ex) = self.ex.as_mut() {
            ex.capture_response(bytes);
        }
        if let Some(o) = &mut self.observer {
            let room = OBSERVED_MAX.saturating_sub(o.sent.len());
            o.sent.extend_from_slice(&bytes[..bytes.len().min(room)]);
        }
    }

    fn finish(&mut self, error: Option<String>) {
        if let Some(mut ex) = self.ex.take() {
            // A stream that failed may never have carried its final usage: bill at least
            // what was relayed.
            ex.bill_stream(self.relay.stats(), error.is_some());
            match self.observer.take() {
                // The client has its answer: the verdicts are only recorded, in the
                // row logged once they are in.
                Some(o) => {
                    let Observer {
                        guard,
                        client,
                        sent,
                    } = o;
                    guard.after(|guard| async move {
                        let mut text =
                            StreamText::parse(client, Bytes::from(sent), &ex.record.usage, true);
                        let decisions = &mut ex.record.decisions;
                        let _ = guard.inspect(&mut text, None, true, decisions).await;
                        ex.finish(200, error);
                    });
                }
                None => ex.finish(200, error),
            }
        }
    }
}

impl Stream for RelayStream {
    type Item = Result<Bytes, std::io::Error>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        loop {
            if self.done {
                return Poll::Ready(None);
            }
            let this = &mut *self;
            match Pin::new(&mut this.inner).poll_next(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Some(Ok(chunk))) => {
                    let had_content = this.relay.stats().saw_content;
                    let out = this.relay.chunk(chunk);
                    if let Some(ex) = this.ex.as_mut()
                        && !had_content
                        && this.relay.stats().saw_content
                    {
                        ex.record.ttft_ms = Some(ex.elapsed_ms());
                    }
                    this.sent(&out);
                    if this.relay.stats().finished {
                        let err = this.relay.stats().error.clone();
                        this.finish(err);
                    }
                    if !out.is_empty() {
                        return Poll::Ready(Some(Ok(out)));
                    }
                }
                Poll::Ready(Some(Err(e))) => {
                    this.done = true;
                    let msg = interrupted(&e);
                    let event = this.relay.interrupted(&msg);
                    this.sent(&event);
                    this.finish(Some(msg));
                    return Poll::Ready(Some(Ok(event)));
                }
                Poll::Ready(None) => {
                    this.done = true;
                    if this.ex.is_none() {
                        return Poll::Ready(None);
                    }
                    let tail = this.relay.end();
                    this.sent(&tail);
                    let err = this.relay.stats().error.clone();
                    this.finish(err);
                    if tail.is_empty() {
                        return Poll::Ready(None);
                    }
                    return Poll::Ready(Some(Ok(tail)));
                }
            }
        }
    }
}

/// What the log and the client's error event say when the provider's stream broke.
pub fn interrupted(e: &TransportError) -> String {
    format!("the provider's stream was interrupted: {e}")
}

impl Drop for RelayStream {
    fn drop(&mut self) {
        if let Some(mut ex) = self.ex.take() {
            // The client hung up mid-stream; bill what was generated so far.
            ex.bill_stream(self.relay.stats(), true);
            ex.finish(499, Some("client closed the stream".into()));
        }
    }
}
