//! The middleware that makes every request take a place in the per-address gate on
//! unauthenticated requests ([`crate::auth::preauth`]) or answer 429.

use super::DataPlane;
use crate::api::Api;
use crate::error::{ApiError, ErrorKind};
use crate::telemetry::Unauthenticated;
use axum::extract::{ConnectInfo, Request, State};
use axum::middleware::Next;
use axum::response::Response;
use std::net::SocketAddr;
use std::sync::Arc;

/// The middleware: takes a place for the request's address or answers 429.
pub async fn gate(State(state): State<Arc<DataPlane>>, mut req: Request, next: Next) -> Response {
    let Some(ip) = req
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| super::listener::client_key(c.0.ip()))
    else {
        return next.run(req).await;
    };
    let Some(slot) = state.preauth.enter(ip) else {
        state
            .metrics
            .protection
            .unauthenticated(Unauthenticated::Throttled);
        let flavor = if req.uri().path().starts_with("/v1/chat") {
            Api::OpenAi
        } else {
            Api::Anthropic
        };
        let mut e = ApiError::new(
            ErrorKind::RateLimit,
            "too many requests from this address are waiting to authenticate; retry shortly",
        );
        e.retry_after = Some(1);
        return e.into_response_for(flavor);
    };
    req.extensions_mut().insert(slot.clone());
    let resp = next.run(req).await;
    drop(slot);
    resp
}
