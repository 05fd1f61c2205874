//! The providers' HTTP client: hyper's pooled HTTP/1.1 client over rustls, used
//! directly. Every admitted request goes through it, so it does only what a proxy hop
//! needs: no redirects, no URL parsing per request (the provider's addresses are
//! parsed once), and a stream-idle timer armed once per silence rather than per read.
//! The gateway's other clients (webhooks, trace export, the admin CLI) use reqwest.

use bytes::Bytes;
use futures_util::Stream;
use http::{HeaderMap, HeaderValue, Request, StatusCode, Uri};
use http_body_util::Full;
use hyper::body::{Body as _, Incoming};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use std::future::Future as _;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::time::{Instant, Sleep};

/// Idle connections kept per upstream host.
const IDLE_PER_HOST: usize = 64;
/// How long an idle pooled connection is kept.
const IDLE_FOR: Duration = Duration::from_secs(90);

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
}

/// A pooled HTTP/1.1 client for one upstream (http or https).
pub struct HttpClient {
    inner: Client<HttpsConnector<HttpConnector>, Full<Bytes>>,
    idle: Duration,
}

impl HttpClient {
    /// A client whose connects give up after `connect_timeout` and whose response
    /// bodies fail after `idle` without data.
    pub fn new(connect_timeout: Duration, idle: Duration) -> anyhow::Result<Self> {
        let mut http = HttpConnector::new();
        http.enforce_http(false);
        http.set_nodelay(true);
        http.set_connect_timeout(Some(connect_timeout));
        let https = hyper_rustls::HttpsConnectorBuilder::new()
            .with_provider_and_platform_verifier(rustls::crypto::ring::default_provider())?
            .https_or_http()
            .enable_http1()
            .wrap_connector(http);
        let inner = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(IDLE_FOR)
            .pool_max_idle_per_host(IDLE_PER_HOST)
            .pool_timer(TokioTimer::new())
            .build(https);
        Ok(Self { inner, idle })
    }

    /// Sends `request`; returns once the response headers arrive.
    pub async fn send(&self, request: Request<Full<Bytes>>) -> Result<Response, TransportError> {
        let resp = self
            .inner
            .request(request)
            .await
            .map_err(|e| TransportError::of(&e, e.is_connect()))?;
        let (head, body) = resp.into_parts();
        Ok(Response {
            status: head.status,
            headers: head.headers,
            body: BodyStream {
                body,
                idle: self.idle,
                last: Instant::now(),
                timer: None,
            },
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

/// The chunks of an upstream body; fails once it has been silent for the idle timeout.
pub struct BodyStream {
    body: Incoming,
    idle: Duration,
    /// When data last arrived (or the headers did).
    last: Instant,
    /// Armed at the first wait, and moved on only when it fires early: a busy stream
    /// does not touch the timer wheel for every chunk.
    timer: Option<Pin<Box<Sleep>>>,
}

impl Stream for BodyStream {
    type Item = Result<Bytes, TransportError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = &mut *self;
        loop {
            match Pin::new(&mut this.body).poll_frame(cx) {
                Poll::Ready(Some(Ok(frame))) => {
                    this.last = Instant::now();
                    match frame.into_data() {
                        Ok(data) if !data.is_empty() => return Poll::Ready(Some(Ok(data))),
                        // Trailers and empty frames carry nothing to relay.
                        _ => continue,
                    }
                }
                Poll::Ready(Some(Err(e))) => {
                    return Poll::Ready(Some(Err(TransportError::of(&e, false))));
                }
                Poll::Ready(None) => return Poll::Ready(None),
                Poll::Pending => {}
            }
            let deadline = this.last + this.idle;
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

    fn get(base: &str) -> Request<Full<Bytes>> {
        let mut req = Request::new(Full::new(Bytes::new()));
        *req.uri_mut() = uri(base, "/v1/messages").unwrap();
        req
    }

    #[tokio::test]
    async fn a_silent_stream_fails_after_the_idle_timeout_and_a_busy_one_does_not() {
        let client = HttpClient::new(Duration::from_secs(1), Duration::from_millis(150)).unwrap();
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
    async fn a_refused_connection_is_a_connect_error() {
        // Bind, learn the port, close it: nothing listens there now.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let client = HttpClient::new(Duration::from_secs(1), Duration::from_secs(1)).unwrap();
        match client.send(get(&format!("http://127.0.0.1:{port}"))).await {
            Err(TransportError::Connect(m)) => assert!(m.contains("refused"), "{m}"),
            Err(e) => panic!("expected a connect error, got {e:?}"),
            Ok(_) => panic!("expected a connect error, got a response"),
        }
    }

    #[tokio::test]
    async fn a_body_over_the_limit_is_not_buffered() {
        let client = HttpClient::new(Duration::from_secs(1), Duration::from_secs(1)).unwrap();
        let base = upstream(3, Duration::ZERO, false).await;
        let whole = client.send(get(&base)).await.unwrap().bytes(1 << 10).await;
        assert_eq!(whole.unwrap().unwrap().len(), 27);
        let base = upstream(3, Duration::ZERO, false).await;
        let cut = client.send(get(&base)).await.unwrap().bytes(20).await;
        assert!(cut.unwrap().is_none());
    }
}
