//! The providers' HTTP client: hyper's pooled HTTP/1.1 client over rustls, used
//! directly. Every admitted request goes through it, so it does only what a proxy hop
//! needs: no redirects, no URL parsing per request (the provider's addresses are
//! parsed once), and a stream-idle timer armed once per wait rather than per read.
//! A provider the environment's `HTTPS_PROXY`/`HTTP_PROXY` (less `NO_PROXY`) sends
//! through a proxy is called with reqwest, which speaks to proxies; so are the
//! gateway's other clients (webhooks, trace export, the admin CLI).

use bytes::Bytes;
use futures_util::Stream;
use http::{HeaderMap, HeaderValue, Request, StatusCode, Uri};
use http_body_util::Full;
use hyper::body::{Body as _, Frame, Incoming};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::time::{Instant, Sleep};

/// Idle connections kept per upstream host.
const IDLE_PER_HOST: usize = 64;
/// How long an idle pooled connection is kept.
const IDLE_FOR: Duration = Duration::from_secs(90);
/// TCP keepalive probes, and how long unacknowledged data may wait before the kernel
/// drops the connection: a peer that vanished is noticed in seconds, not at the idle
/// timeout (the values reqwest used).
const KEEPALIVE: Duration = Duration::from_secs(15);
const KEEPALIVE_RETRIES: u32 = 3;
const TCP_USER_TIMEOUT: Duration = Duration::from_secs(30);
/// The longest idle timeout taken as given (a year): `Instant + Duration` must not
/// overflow whatever the config says.
const IDLE_MAX: Duration = Duration::from_secs(365 * 24 * 3600);

/// Why an exchange with the upstream failed at the transport level.
#[derive(Debug, thiserror::Error)]
pub enum TransportError {
    /// No connection could be made (refused, DNS, TLS handshake, connect timeout).
    #[error("{0}")]
    Connect(String),
    /// The response body went silent for longer than the stream-idle timeout.
    #[error("no data from the provider for {0} s")]
    Idle(u64),
    /// The connection failed after it was made (reset, closed mid-body, bad HTTP).
    #[error("{0}")]
    Other(String),
}

impl TransportError {
    /// From hyper's errors: the innermost message (the useful part is several layers
    /// deep), and a connect that timed out said so.
    fn of(e: &(dyn std::error::Error + 'static), connect: bool) -> Self {
        let mut cause = e;
        let mut timed_out = false;
        while let Some(next) = cause.source() {
            timed_out |= next
                .downcast_ref::<std::io::Error>()
                .is_some_and(|io| io.kind() == std::io::ErrorKind::TimedOut);
            cause = next;
        }
        match (connect, timed_out) {
            (true, true) => Self::Connect("the connect timeout passed".into()),
            (true, false) => Self::Connect(cause.to_string()),
            (false, _) => Self::Other(cause.to_string()),
        }
    }

    /// From reqwest's errors (the proxied path).
    fn of_reqwest(e: &reqwest::Error) -> Self {
        if e.is_connect() && e.is_timeout() {
            Self::Connect("the connect timeout passed".into())
        } else {
            Self::of(e, e.is_connect())
        }
    }
}

/// A pooled HTTP/1.1 client for one upstream (http or https).
pub struct HttpClient {
    transport: Transport,
    idle: Duration,
}

enum Transport {
    Direct(Client<Bounded, Full<Bytes>>),
    /// Through the proxy the environment names for this upstream.
    Proxied(reqwest::Client),
}

impl HttpClient {
    /// A client for the upstream at `base` whose connects (DNS, TCP and TLS) give up
    /// after `connect_timeout` and whose response bodies fail after waiting `idle` for
    /// data.
    pub fn new(base: &Uri, connect_timeout: Duration, idle: Duration) -> anyhow::Result<Self> {
        let idle = idle.min(IDLE_MAX);
        let proxy = hyper_util::client::proxy::matcher::Matcher::from_env();
        if proxy.intercept(base).is_some() {
            let client = super::client_builder()
                .connect_timeout(connect_timeout)
                .pool_idle_timeout(IDLE_FOR)
                .pool_max_idle_per_host(IDLE_PER_HOST)
                .tcp_nodelay(true)
                .redirect(reqwest::redirect::Policy::none())
                .build()?;
            return Ok(Self {
                transport: Transport::Proxied(client),
                idle,
            });
        }
        let mut http = HttpConnector::new();
        http.enforce_http(false);
        http.set_nodelay(true);
        http.set_keepalive(Some(KEEPALIVE));
        http.set_keepalive_interval(Some(KEEPALIVE));
        http.set_keepalive_retries(Some(KEEPALIVE_RETRIES));
        http.set_tcp_user_timeout(Some(TCP_USER_TIMEOUT));
        let https = hyper_rustls::HttpsConnectorBuilder::new()
            .with_provider_and_platform_verifier(rustls::crypto::ring::default_provider())?
            .https_or_http()
            .enable_http1()
            .wrap_connector(http);
        let inner = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(IDLE_FOR)
            .pool_max_idle_per_host(IDLE_PER_HOST)
            .pool_timer(TokioTimer::new())
            .build(Bounded {
                inner: https,
                within: connect_timeout,
            });
        Ok(Self {
            transport: Transport::Direct(inner),
            idle,
        })
    }

    /// Sends `request`; returns once the response headers arrive.
    pub async fn send(&self, request: Request<Bytes>) -> Result<Response, TransportError> {
        let (status, headers, body) = match &self.transport {
            Transport::Direct(client) => {
                let resp = client
                    .request(request.map(Full::new))
                    .await
                    .map_err(|e| TransportError::of(&e, e.is_connect()))?;
                let (head, body) = resp.into_parts();
                (head.status, head.headers, Inner::Direct(body))
            }
            Transport::Proxied(client) => {
                let req = reqwest::Request::try_from(request.map(reqwest::Body::from))
                    .map_err(|e| TransportError::Other(e.to_string()))?;
                let resp = client
                    .execute(req)
                    .await
                    .map_err(|e| TransportError::of_reqwest(&e))?;
                let (head, body) = http::Response::<reqwest::Body>::from(resp).into_parts();
                (head.status, head.headers, Inner::Proxied(body))
            }
        };
        Ok(Response {
            status,
            headers,
            body: BodyStream {
                body,
                idle: self.idle,
                waiting_since: None,
                timer: None,
            },
        })
    }
}

/// The connector with one deadline over the whole connect: DNS, TCP and the TLS
/// handshake (hyper's own connect timeout covers only TCP).
#[derive(Clone)]
struct Bounded {
    inner: HttpsConnector<HttpConnector>,
    within: Duration,
}

type Connected = <HttpsConnector<HttpConnector> as tower::Service<Uri>>::Response;
type BoxError = Box<dyn std::error::Error + Send + Sync>;

impl tower::Service<Uri> for Bounded {
    type Response = Connected;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<Connected, BoxError>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, dst: Uri) -> Self::Future {
        let connect = self.inner.call(dst);
        let within = self.within;
        // One allocation per new connection, not per request.
        Box::pin(async move {
            match tokio::time::timeout(within, connect).await {
                Ok(connected) => connected,
                Err(_) => Err(std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    "the connect timeout passed",
                )
                .into()),
            }
        })
    }
}

/// An upstream response whose body has not been read yet.
pub struct Response {
    status: StatusCode,
    headers: HeaderMap,
    body: BodyStream,
}

impl Response {
    /// The status the upstream answered.
    pub fn status(&self) -> StatusCode {
        self.status
    }

    /// The upstream's response headers.
    pub fn headers(&self) -> &HeaderMap {
        &self.headers
    }

    /// The body's chunks as they arrive.
    pub fn into_stream(self) -> BodyStream {
        self.body
    }

    /// The whole body, at most `limit` bytes (`None` beyond).
    pub async fn bytes(self, limit: usize) -> Result<Option<Bytes>, TransportError> {
        use futures_util::StreamExt as _;
        let mut s = self.body;
        let mut buf = Vec::new();
        while let Some(chunk) = s.next().await {
            let chunk = chunk?;
            if buf.len() + chunk.len() > limit {
                return Ok(None);
            }
            buf.extend_from_slice(&chunk);
        }
        Ok(Some(Bytes::from(buf)))
    }
}

/// The chunks of an upstream body; fails once it has waited the idle timeout for data.
pub struct BodyStream {
    body: Inner,
    idle: Duration,
    /// When the current wait for data began: the idle timeout counts from there, not
    /// from the last chunk, so a client that reads slowly does not cut its own stream.
    waiting_since: Option<Instant>,
    /// Armed at the first wait, and moved on only when it fires early: a busy stream
    /// does not touch the timer wheel for every chunk.
    timer: Option<Pin<Box<Sleep>>>,
}

enum Inner {
    Direct(Incoming),
    Proxied(reqwest::Body),
}

impl Inner {
    fn poll_frame(
        &mut self,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, TransportError>>> {
        match self {
            Self::Direct(b) => Pin::new(b)
                .poll_frame(cx)
                .map_err(|e| TransportError::of(&e, false)),
            Self::Proxied(b) => Pin::new(b)
                .poll_frame(cx)
                .map_err(|e| TransportError::of_reqwest(&e)),
        }
    }
}

impl Stream for BodyStream {
    type Item = Result<Bytes, TransportError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = &mut *self;
        loop {
            match this.body.poll_frame(cx) {
                Poll::Ready(Some(Ok(frame))) => {
                    this.waiting_since = None;
                    match frame.into_data() {
                        Ok(data) if !data.is_empty() => return Poll::Ready(Some(Ok(data))),
                        // Trailers and empty frames carry nothing to relay.
                        _ => continue,
                    }
                }
                Poll::Ready(Some(Err(e))) => return Poll::Ready(Some(Err(e))),
                Poll::Ready(None) => return Poll::Ready(None),
                Poll::Pending => {}
            }
            let deadline = *this.waiting_since.get_or_insert_with(Instant::now) + this.idle;
            let timer = this
                .timer
                .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(deadline)));
            loop {
                match timer.as_mut().poll(cx) {
                    Poll::Pending => return Poll::Pending,
                    Poll::Ready(()) if Instant::now() >= deadline => {
                        return Poll::Ready(Some(Err(TransportError::Idle(this.idle.as_secs()))));
                    }
                    Poll::Ready(()) => timer.as_mut().reset(deadline),
                }
            }
        }
    }
}

/// An `http::Uri` for `base` + `path`.
pub fn uri(base: &str, path: &str) -> Result<Uri, String> {
    Uri::try_from(format!("{base}{path}")).map_err(|e| e.to_string())
}

/// The `user-agent` the gateway sends upstream.
pub fn user_agent() -> HeaderValue {
    HeaderValue::from_static(concat!("tollgate/", env!("CARGO_PKG_VERSION")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures_util::StreamExt as _;
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

    /// Serves one chunked response on a fresh port: `chunks` written `gap` apart, then
    /// the end of the body unless `stall`, in which case the connection stays open.
    async fn upstream(chunks: usize, gap: Duration, stall: bool) -> String {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            let (mut sock, _) = listener.accept().await.unwrap();
            let mut buf = [0u8; 4096];
            let _ = sock.read(&mut buf).await;
            let head = "HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n";
            sock.write_all(head.as_bytes()).await.unwrap();
            for i in 0..chunks {
                let data = format!("data: {i}\n\n");
                sock.write_all(format!("{:x}\r\n{data}\r\n", data.len()).as_bytes())
                    .await
                    .unwrap();
                tokio::time::sleep(gap).await;
            }
            if stall {
                tokio::time::sleep(Duration::from_secs(30)).await;
            } else {
                sock.write_all(b"0\r\n\r\n").await.unwrap();
            }
        });
        format!("http://{addr}")
    }

    fn direct(idle: Duration) -> HttpClient {
        let base = uri("http://127.0.0.1:1", "").unwrap();
        let client = HttpClient::new(&base, Duration::from_secs(1), idle).unwrap();
        assert!(matches!(client.transport, Transport::Direct(_)));
        client
    }

    fn get(base: &str) -> Request<Bytes> {
        let mut req = Request::new(Bytes::new());
        *req.uri_mut() = uri(base, "/v1/messages").unwrap();
        req
    }

    #[tokio::test]
    async fn a_silent_stream_fails_after_the_idle_timeout_and_a_busy_one_does_not() {
        let client = direct(Duration::from_millis(150));
        // Chunks 60 ms apart for longer than the idle timeout: every chunk arrives.
        let base = upstream(6, Duration::from_millis(60), false).await;
        let mut s = client.send(get(&base)).await.unwrap().into_stream();
        let mut got = Vec::new();
        while let Some(chunk) = s.next().await {
            got.push(chunk.unwrap());
        }
        assert_eq!(got.len(), 6);
        assert_eq!(&got[5][..], b"data: 5\n\n");
        // Two chunks, then silence: both chunks, then the idle error.
        let base = upstream(2, Duration::from_millis(10), true).await;
        let resp = client.send(get(&base)).await.unwrap();
        assert_eq!(resp.status(), StatusCode::OK);
        let started = Instant::now();
        let mut s = resp.into_stream();
        assert_eq!(&s.next().await.unwrap().unwrap()[..], b"data: 0\n\n");
        assert_eq!(&s.next().await.unwrap().unwrap()[..], b"data: 1\n\n");
        match s.next().await {
            Some(Err(TransportError::Idle(_))) => {}
            other => panic!("expected the idle timeout, got {other:?}"),
        }
        assert!(started.elapsed() >= Duration::from_millis(150));
    }

    #[tokio::test]
    async fn a_client_that_reads_slowly_is_not_cut_by_the_idle_timeout() {
        // The upstream sends everything at once; the reader waits longer than the idle
        // timeout between chunks. The timeout counts the wait for data, not the gap
        // since the last chunk, so nothing fails.
        let client = direct(Duration::from_millis(100));
        let base = upstream(3, Duration::ZERO, false).await;
        let mut s = client.send(get(&base)).await.unwrap().into_stream();
        let mut got = 0;
        loop {
            tokio::time::sleep(Duration::from_millis(250)).await;
            match s.next().await {
                Some(chunk) => got += chunk.unwrap().len(),
                None => break,
            }
        }
        assert_eq!(got, 27);
    }

    #[tokio::test]
    async fn a_refused_connection_is_a_connect_error() {
        // Bind, learn the port, close it: nothing listens there now.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let client = direct(Duration::from_secs(1));
        match client.send(get(&format!("http://127.0.0.1:{port}"))).await {
            Err(TransportError::Connect(m)) => assert!(m.contains("refused"), "{m}"),
            Err(e) => panic!("expected a connect error, got {e:?}"),
            Ok(_) => panic!("expected a connect error, got a response"),
        }
    }

    #[tokio::test]
    async fn a_body_over_the_limit_is_not_buffered() {
        let client = direct(Duration::from_secs(1));
        let base = upstream(3, Duration::ZERO, false).await;
        let whole = client.send(get(&base)).await.unwrap().bytes(1 << 10).await;
        assert_eq!(whole.unwrap().unwrap().len(), 27);
        let base = upstream(3, Duration::ZERO, false).await;
        let cut = client.send(get(&base)).await.unwrap().bytes(20).await;
        assert!(cut.unwrap().is_none());
    }
}
