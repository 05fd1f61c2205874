//! What every request passes before it is routed: it gets an id (echoed on every
//! response as `request-id` and `x-request-id`) and, when it came in on a connection,
//! a place in the per-address gate on unauthenticated requests
//! ([`crate::auth::preauth`]) or a 429. One hand-written service around the whole
//! router, in place of two middleware layers: those cloned a boxed service and boxed
//! a future each, per request, for two lines of work.

use super::RequestId;
use crate::auth::preauth::PreAuthGate;
use crate::error::{ApiError, ErrorKind};
use crate::headers as names;
use crate::telemetry::{Metrics, Unauthenticated};
use axum::Router;
use axum::body::HttpBody;
use axum::http::{HeaderValue, Request};
use axum::response::Response;
use bytes::Bytes;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use tower::Service as _;

/// The front door around the router; cloning is cheap (three `Arc`s and an address).
#[derive(Clone)]
pub struct FrontDoor {
    app: Router,
    gate: Arc<PreAuthGate>,
    metrics: Arc<Metrics>,
    peer: Option<SocketAddr>,
}

impl FrontDoor {
    /// `app` behind a front door with `gate` (refusals counted in `metrics`), for
    /// callers with no connection (no address, so no gate): see [`FrontDoor::for_peer`].
    pub fn new(app: Router, gate: Arc<PreAuthGate>, metrics: Arc<Metrics>) -> Self {
        Self {
            app,
            gate,
            metrics,
            peer: None,
        }
    }

    /// The same front door for the requests of one connection from `peer`.
    pub fn for_peer(&self, peer: SocketAddr) -> Self {
        Self {
            peer: Some(peer),
            ..self.clone()
        }
    }

    /// Serves one request: its id, its place in the gate (or a 429 in the client's
    /// API shape), then the router; the id goes on whatever answers.
    pub async fn handle<B>(mut self, mut req: Request<B>) -> Response
    where
        B: HttpBody<Data = Bytes> + Send + 'static,
        B::Error: Into<axum::BoxError>,
    {
        let id: Arc<str> = Arc::from(crate::ids::request_id());
        let slot = match self.peer {
            None => None,
            Some(peer) => {
                let ip = client_key(peer.ip());
                match self.gate.enter(ip) {
                    Some(slot) => Some(slot),
                    None => return with_id(throttled(&self.metrics, req.uri().path()), &id),
                }
            }
        };
        req.extensions_mut().insert(RequestId(id.clone()));
        if let Some(slot) = &slot {
            req.extensions_mut().insert(slot.clone());
        }
        let resp = match self.app.call(req).await {
            Ok(resp) => resp,
            Err(never) => match never {},
        };
        drop(slot);
        with_id(resp, &id)
    }
}

/// The address a client's share is counted under: IPv4 as is (and IPv4-mapped IPv6 as
/// IPv4), IPv6 by its /64 prefix, since one host commonly holds a whole /64.
pub fn client_key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(v4) => IpAddr::V4(v4),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let mut seg = v6.segments();
                seg[4..].fill(0);
                IpAddr::V6(std::net::Ipv6Addr::from(seg))
            }
        },
    }
}

/// The 429 for an address with too many unauthenticated requests in flight.
fn throttled(metrics: &Metrics, path: &str) -> Response {
    metrics
        .protection
        .unauthenticated(Unauthenticated::Throttled);
    let flavor = super::api_of_path(path);
    let mut e = ApiError::new(
        ErrorKind::RateLimit,
        "too many requests from this address are waiting to authenticate; retry shortly",
    );
    e.retry_after = Some(1);
    e.into_response_for(flavor)
}

fn with_id(mut resp: Response, id: &str) -> Response {
    if let Ok(v) = HeaderValue::from_str(id) {
        resp.headers_mut().insert(names::REQUEST_ID, v.clone());
        resp.headers_mut().insert(names::X_REQUEST_ID, v);
    }
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    use axum::Extension;
    use axum::http::StatusCode;
    use axum::routing::post;
    use http_body_util::BodyExt as _;
    use tokio::sync::Notify;

    #[test]
    fn ipv6_clients_share_their_slash_64() {
        let a: IpAddr = "2001:db8:1:2:aaaa::1".parse().expect("ip");
        let b: IpAddr = "2001:db8:1:2:bbbb::9".parse().expect("ip");
        let other: IpAddr = "2001:db8:1:3::1".parse().expect("ip");
        assert_eq!(client_key(a), client_key(b));
        assert_ne!(client_key(a), client_key(other));
        let mapped: IpAddr = "::ffff:10.0.0.7".parse().expect("ip");
        assert_eq!(client_key(mapped), IpAddr::from([10, 0, 0, 7]));
    }

    /// What the test router's handlers signal and wait on.
    #[derive(Default)]
    struct Signals {
        /// A held request is in its handler (after giving its place back, for
        /// `/hold-authenticated`).
        started: Notify,
        /// Lets a held request answer.
        release: Notify,
    }

    /// A door with one unauthenticated place per address, before a router whose
    /// `/hold` waits for `release` holding its place, whose `/hold-authenticated` gives
    /// its place back first, and whose `/id` answers the request id it was given.
    fn door() -> (FrontDoor, Arc<Signals>, Arc<Metrics>) {
        let signals = Arc::new(Signals::default());
        let (hold, hold_auth) = (signals.clone(), signals.clone());
        let app = Router::new()
            .route(
                "/hold",
                post(move || async move {
                    hold.started.notify_one();
                    hold.release.notified().await;
                    "held"
                }),
            )
            .route(
                "/hold-authenticated",
                post(move |req: axum::extract::Request| async move {
                    crate::auth::preauth::authenticated(req.extensions());
                    hold_auth.started.notify_one();
                    hold_auth.release.notified().await;
                    "held"
                }),
            )
            .route(
                "/id",
                post(
                    |Extension(RequestId(id)): Extension<RequestId>| async move { id.to_string() },
                ),
            );
        let metrics = Metrics::new();
        let door = FrontDoor::new(app, PreAuthGate::new(1), metrics.clone());
        (door, signals, metrics)
    }

    fn post_to(path: &str) -> Request<axum::body::Body> {
        Request::post(path)
            .body(axum::body::Body::empty())
            .expect("request")
    }

    /// Status, request id (checked to be echoed as `x-request-id` too), `retry-after`
    /// and the body (JSON, or else a JSON string of its text).
    async fn answer(resp: Response) -> (StatusCode, String, Option<String>, serde_json::Value) {
        let header = |name| {
            resp.headers()
                .get(name)
                .and_then(|v: &HeaderValue| v.to_str().ok())
                .map(str::to_string)
        };
        let (id, x_id) = (header(names::REQUEST_ID), header(names::X_REQUEST_ID));
        assert!(
            id.as_deref().is_some_and(|id| id.starts_with("req_")),
            "{id:?}"
        );
        assert_eq!(id, x_id, "x-request-id echoes request-id");
        let retry = header(axum::http::header::RETRY_AFTER);
        let status = resp.status();
        let body = resp.into_body().collect().await.expect("body").to_bytes();
        let body = serde_json::from_slice(&body)
            .unwrap_or_else(|_| String::from_utf8_lossy(&body).into_owned().into());
        (status, id.unwrap_or_default(), retry, body)
    }

    const HOST_A: [u8; 4] = [10, 0, 0, 1];

    #[tokio::test]
    async fn every_answer_carries_the_id_the_handler_saw() {
        let (door, _, _) = door();
        let peer = SocketAddr::from((HOST_A, 5000));
        let (status, id, _, body) = answer(door.for_peer(peer).handle(post_to("/id")).await).await;
        assert_eq!(status, StatusCode::OK);
        assert!(id.starts_with("req_"), "{id}");
        assert_eq!(body, serde_json::Value::String(id.clone()));
        // A caller with no connection (no gate) gets an id of its own.
        let (_, other, _, body) = answer(door.clone().handle(post_to("/id")).await).await;
        assert!(other.starts_with("req_") && other != id);
        assert_eq!(body, serde_json::Value::String(other));
        // So do the router's own 404 and 405 (`answer` checks the id is there).
        let (status, ..) = answer(door.clone().handle(post_to("/nowhere")).await).await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        let get = Request::get("/id")
            .body(axum::body::Body::empty())
            .expect("request");
        let (status, ..) = answer(door.clone().handle(get).await).await;
        assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
    }

    #[tokio::test]
    async fn an_address_past_its_unauthenticated_places_gets_a_429_in_its_api_shape() {
        let (door, signals, metrics) = door();
        let first = door.for_peer(SocketAddr::from((HOST_A, 5000)));
        let same_host = door.for_peer(SocketAddr::from((HOST_A, 5001)));
        let other_host = door.for_peer(SocketAddr::from(([10, 0, 0, 2], 5000)));
        let held = tokio::spawn(first.handle(post_to("/hold")));
        signals.started.notified().await;

        let (status, id, retry, body) =
            answer(same_host.clone().handle(post_to("/v1/messages")).await).await;
        assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
        assert!(id.starts_with("req_"));
        assert_eq!(retry.as_deref(), Some("1"));
        assert_eq!(body["type"], "error", "Anthropic shape: {body}");
        assert_eq!(body["error"]["type"], "rate_limit_error");
        let chat = same_host.clone().handle(post_to("/v1/chat/completions"));
        let (status, openai_id, _, body) = answer(chat.await).await;
        assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
        assert_ne!(openai_id, id);
        assert!(body["error"]["message"].is_string(), "OpenAI shape: {body}");
        assert!(body.get("type").is_none(), "OpenAI shape: {body}");
        let throttled = metrics
            .protection
            .unauthenticated_count(Unauthenticated::Throttled);
        assert_eq!(throttled, 2);

        // Another address, and a caller with no connection, are not held up.
        let (status, ..) = answer(other_host.handle(post_to("/id")).await).await;
        assert_eq!(status, StatusCode::OK);
        let (status, ..) = answer(door.clone().handle(post_to("/id")).await).await;
        assert_eq!(status, StatusCode::OK);

        // The place comes back when the held request is answered.
        signals.release.notify_one();
        let (status, _, _, body) = answer(held.await.expect("held request")).await;
        assert_eq!((status, body), (StatusCode::OK, "held".into()));
        let (status, ..) = answer(same_host.handle(post_to("/id")).await).await;
        assert_eq!(status, StatusCode::OK);
    }

    #[tokio::test]
    async fn a_request_that_authenticates_gives_its_place_back_while_it_runs() {
        let (door, signals, _) = door();
        let a = door.for_peer(SocketAddr::from((HOST_A, 5000)));
        let held = tokio::spawn(a.clone().handle(post_to("/hold-authenticated")));
        signals.started.notified().await;
        let (status, ..) = answer(a.handle(post_to("/id")).await).await;
        assert_eq!(status, StatusCode::OK);
        assert!(!held.is_finished());
        signals.release.notify_one();
        let (status, ..) = answer(held.await.expect("held request")).await;
        assert_eq!(status, StatusCode::OK);
    }
}
