//! Walking a plan: each target in order, each with its retries, until one answers with
//! something that is not a "move on" outcome. Every attempt is recorded for the log.
//!
//! Only response headers are awaited here, so nothing has reached the client yet: a
//! stream that fails after it started is never retried (the relay turns it into an error
//! event instead).

use super::{Plan, Target, retry_after};
use crate::error::ApiError;
use crate::providers::UpstreamError;
use crate::store::AttemptRecord;
use axum::http::{HeaderMap, Method};
use bytes::Bytes;
use futures_util::StreamExt as _;
use rand::RngExt as _;
use std::time::{Duration, Instant};

/// Most of a failed attempt's body read to learn its error message.
const ERROR_BODY_LIMIT: usize = 64 << 10;
/// Longest wait for a failed attempt's body before moving on.
const ERROR_BODY_WAIT: Duration = Duration::from_secs(5);

/// The error of an attempt whose answer never arrived because the request was dropped
/// (the client went away) while the provider worked on it.
pub const IN_FLIGHT: &str = "no answer yet: the client went away while the provider worked";

/// The upstream response that will be relayed to the client.
pub struct Served {
    pub response: crate::providers::Response,
    pub target: Target,
    /// Attempt number that produced it (1 = first try).
    pub attempt: u32,
}

/// Sends the request to the plan's targets until one serves it.
///
/// `prepare` builds the upstream path and body for a target (translation, model
/// rewrite); it runs once per target. A response that should not move on (success, or
/// a failure status outside `retry_on`, or the last attempt's failure) is returned for
/// relaying; transport failures on the last attempt become the error.
pub async fn execute(
    plan: &Plan,
    method: Method,
    client_headers: &HeaderMap,
    mut prepare: impl FnMut(&Target) -> Result<(&'static str, Bytes), ApiError>,
    attempts: &mut Vec<AttemptRecord>,
) -> Result<Served, ApiError> {
    let tries = plan.retries.saturating_add(1);
    let planned = (plan.targets.len() as u32).saturating_mul(tries);
    let total = planned.min(plan.max_attempts.max(1));
    if planned > total {
        tracing::info!(
            planned,
            max = total,
            "route plan capped at the most attempts a request may make"
        );
    }
    let mut n = 0u32;
    for target in &plan.targets {
        if n >= total {
            break;
        }
        let (path, body) = prepare(target)?;
        let mut wait_hint: Option<Duration> = None;
        for try_no in 0..tries {
            if n >= total {
                break;
            }
            n += 1;
            let last = n == total;
            if try_no > 0 {
                let unit = rand::rng().random::<f64>();
                tokio::time::sleep(plan.wait_before_retry(try_no, wait_hint.take(), unit)).await;
            }
            let started = Instant::now();
            // Recorded before it is sent: if the client goes away while the provider works,
            // the request was still served (and is billed), not "refused before upstream".
            let at = attempts.len();
            attempts.push(AttemptRecord {
                provider: target.provider.id.clone(),
                model: target.model.clone(),
                target: target.index,
                status: None,
                latency_ms: 0,
                error: Some(IN_FLIGHT.into()),
                at_us: crate::ids::now_us(),
            });
            let sent = target
                .provider
                .send(
                    method.clone(),
                    path,
                    client_headers,
                    body.clone(),
                    plan.attempt_timeout,
                )
                .await;
            let record = &mut attempts[at];
            record.latency_ms = started.elapsed().as_millis() as u64;
            record.error = None;
            match sent {
                Ok(resp) => {
                    let status = resp.status().as_u16();
                    record.status = Some(status);
                    let moves_on = plan.retry_on.statuses.contains(&status);
                    if resp.status().is_success() || !moves_on || last {
                        if !resp.status().is_success() {
                            record.error = Some(format!("upstream answered {status}"));
                        }
                        return Ok(Served {
                            response: resp,
                            target: target.clone(),
                            attempt: n,
                        });
                    }
                    wait_hint = retry_after(resp.headers());
                    let message = error_message(resp).await;
                    record.error = Some(format!("upstream answered {status}: {message}"));
                    tracing::info!(provider = %target.provider.id, status, attempt = n, "moving on after upstream failure");
                }
                Err(e) => {
                    record.error = Some(e.to_string());
                    let moves_on = match &e {
                        UpstreamError::Timeout { .. } => plan.retry_on.timeout,
                        UpstreamError::Connect { .. } | UpstreamError::Other { .. } => {
                            plan.retry_on.connect_error
                        }
                    };
                    if !moves_on || last {
                        return Err(e.to_api_error());
                    }
                    tracing::info!(provider = %target.provider.id, error = %e, attempt = n, "moving on after upstream failure");
                }
            }
        }
    }
    // Unreachable with a non-empty plan: the last attempt always returns above.
    Err(ApiError::internal("the route plan had no targets"))
}

/// The error message of a failed attempt's body, read within bounds.
async fn error_message(resp: crate::providers::Response) -> String {
    let read = async {
        let mut buf = Vec::new();
        let mut s = resp.into_stream();
        while let Some(Ok(chunk)) = s.next().await {
            buf.extend_from_slice(&chunk);
            if buf.len() >= ERROR_BODY_LIMIT {
                break;
            }
        }
        buf
    };
    match tokio::time::timeout(ERROR_BODY_WAIT, read).await {
        Ok(body) => crate::translate::upstream_error_message(&body),
        Err(_) => "error body did not arrive in time".into(),
    }
}
