//! Relaying an upstream SSE stream to the client as it arrives, through the pair's
//! [`Relay`]. Usage, first token and how the stream ended are read on the way for the
//! log; a client that hangs up is logged as 499 and billed for what was generated.

use crate::pipeline::Exchange;
use crate::providers::root_cause;
use crate::translate::Relay;
use bytes::Bytes;
use futures_util::Stream;
use std::pin::Pin;
use std::task::{Context, Poll};

/// The client's side of a relayed stream; logs the exchange when the stream ends or
/// the client goes away (then with what was generated so far, as 499).
pub struct RelayStream {
    inner: Pin<Box<dyn Stream<Item = reqwest::Result<Bytes>> + Send>>,
    relay: Relay,
    ex: Option<Exchange>,
    done: bool,
}

impl RelayStream {
    /// Relays `upstream` through `relay`, logging into `ex`.
    pub fn new(upstream: reqwest::Response, relay: Relay, ex: Exchange) -> Self {
        Self {
            inner: Box::pin(upstream.bytes_stream()),
            relay,
            ex: Some(ex),
            done: false,
        }
    }

    fn finish(&mut self, error: Option<String>) {
        if let Some(mut ex) = self.ex.take() {
            // A stream that failed may never have carried its final usage: bill at least
            // what was relayed.
            let stats = self.relay.stats();
            ex.record.usage = if error.is_some() {
                ex.usage_estimated = true;
                stats.usage_when_cut()
            } else {
                stats.usage
            };
            ex.finish(200, error);
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
            match this.inner.as_mut().poll_next(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Some(Ok(chunk))) => {
                    let had_content = this.relay.stats().saw_content;
                    let out = this.relay.chunk(chunk);
                    if let Some(ex) = this.ex.as_mut() {
                        if !had_content && this.relay.stats().saw_content {
                            ex.record.ttft_ms = Some(ex.elapsed_ms());
                        }
                        ex.capture_response(&out);
                    }
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
                    let msg = format!("the provider's stream was interrupted: {}", root_cause(&e));
                    let event = this.relay.interrupted(&msg);
                    if let Some(ex) = this.ex.as_mut() {
                        ex.capture_response(&event);
                    }
                    this.finish(Some(msg));
                    return Poll::Ready(Some(Ok(event)));
                }
                Poll::Ready(None) => {
                    this.done = true;
                    if this.ex.is_none() {
                        return Poll::Ready(None);
                    }
                    let tail = this.relay.end();
                    if let Some(ex) = this.ex.as_mut() {
                        ex.capture_response(&tail);
                    }
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

impl Drop for RelayStream {
    fn drop(&mut self) {
        if let Some(mut ex) = self.ex.take() {
            // The client hung up mid-stream; bill what was generated so far.
            ex.record.usage = self.relay.stats().usage_when_cut();
            ex.usage_estimated = true;
            ex.finish(499, Some("client closed the stream".into()));
        }
    }
}
