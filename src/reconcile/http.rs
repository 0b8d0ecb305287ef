//! The loop's HTTP client, for its two reads: a fleet's metric
//! (`autoscale.metric.url`, a plain number in the body) and its health
//! probe (`GET http://ADDRESS:PORT/PATH`).
//!
//! It is hyper's client (the one the AWS SDK already compiles in) with
//! rustls on ring:
//! - `http://` and `https://`; certificates are checked against the
//!   platform's trusted roots, or only those of the PEM file
//!   `SSL_CERT_FILE` names when it is set (OpenSSL's meaning of it);
//! - up to [`MAX_REDIRECTS`] redirects are followed (301, 302, 303, 307,
//!   308; a GET stays a GET);
//! - metric reads go through the proxies the environment names
//!   (`HTTP_PROXY`, `HTTPS_PROXY`, `NO_PROXY`, as for the AWS calls);
//!   health probes never do: they target instance addresses, as a
//!   kubelet's probes do;
//! - one deadline covers the whole exchange, redirects included, and at
//!   most [`MAX_RESPONSE_BYTES`] of body are read, so a slow or hostile
//!   endpoint can neither hold the loop nor grow its memory.
//!
//! [`HttpGet`] is a trait so that tests can answer probes of simulated
//! instances (whose addresses exist only in the local cloud).

use async_trait::async_trait;
use http::Uri;
use http::header::{HeaderValue, LOCATION, PROXY_AUTHORIZATION, USER_AGENT};
use http_body_util::{BodyExt as _, Empty, Limited};
use hyper::body::Bytes;
use hyper::rt::{Read, ReadBufCursor, Write};
use hyper_rustls::{HttpsConnector, HttpsConnectorBuilder};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::proxy::Tunnel;
use hyper_util::client::legacy::connect::{Connected, Connection, HttpConnector};
use hyper_util::client::proxy::matcher::Matcher;
use hyper_util::rt::{TokioExecutor, TokioIo};
use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject as _;
use std::future::Future;
use std::io;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::net::TcpStream;

/// The most bytes of body read of one response.
pub const MAX_RESPONSE_BYTES: usize = 64 * 1024;

/// The most redirects followed for one read.
pub const MAX_REDIRECTS: usize = 3;

/// A response: its status and body (lossily decoded as UTF-8).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HttpResponse {
    /// The status code.
    pub status: u16,
    /// The body.
    pub body: String,
}

/// Why a GET failed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum HttpError {
    /// The URL is not `http(s)://HOST[:PORT][/PATH]`.
    #[error("unsupported URL \"{0}\": expected http(s)://HOST[:PORT]/PATH")]
    BadUrl(String),
    /// Connecting, the TLS handshake, writing or reading failed.
    #[error("{0}")]
    Io(String),
    /// No complete answer within the deadline.
    #[error("no answer within {0:?}")]
    Timeout(Duration),
    /// The answer is not HTTP/1.x, too large, or redirects too often.
    #[error("bad response: {0}")]
    BadResponse(String),
}

/// Something that can GET a URL.
#[async_trait]
pub trait HttpGet: Send + Sync {
    /// GETs `url`, giving up after `timeout`.
    async fn get(&self, url: &str, timeout: Duration) -> Result<HttpResponse, HttpError>;

    /// GETs a health probe's `url`: like [`HttpGet::get`], but never
    /// through a proxy.
    async fn probe(&self, url: &str, timeout: Duration) -> Result<HttpResponse, HttpError> {
        self.get(url, timeout).await
    }
}

/// How the client reaches servers: the trusted roots and the proxies.
#[derive(Clone, Debug, Default)]
pub struct HttpConfig {
    /// A PEM file of root certificates trusted instead of the platform's.
    pub ca_file: Option<PathBuf>,
    /// Which requests go through which proxy; `None`: none do.
    pub proxy: Option<ProxyRules>,
}

/// Proxies for metric reads, as `HTTP_PROXY`/`HTTPS_PROXY`/`NO_PROXY`
/// give them.
#[derive(Clone, Debug)]
pub struct ProxyRules {
    /// The proxy for `http://` URLs.
    pub http: Option<String>,
    /// The proxy for `https://` URLs (reached with `CONNECT`).
    pub https: Option<String>,
    /// Hosts, domains and CIDR blocks reached directly, comma-separated.
    pub no_proxy: String,
}

impl HttpConfig {
    /// What the environment says: `SSL_CERT_FILE`, and the proxy
    /// variables (upper case first, then lower case; `ALL_PROXY` when the
    /// specific one is unset).
    pub fn from_env() -> HttpConfig {
        let var = |names: &[&str]| {
            names
                .iter()
                .find_map(|n| std::env::var(n).ok().filter(|v| !v.trim().is_empty()))
        };
        let all = var(&["ALL_PROXY", "all_proxy"]);
        let http = var(&["HTTP_PROXY", "http_proxy"]).or_else(|| all.clone());
        let https = var(&["HTTPS_PROXY", "https_proxy"]).or(all);
        let proxy = (http.is_some() || https.is_some()).then(|| ProxyRules {
            http,
            https,
            no_proxy: var(&["NO_PROXY", "no_proxy"]).unwrap_or_default(),
        });
        HttpConfig {
            ca_file: std::env::var_os("SSL_CERT_FILE")
                .filter(|v| !v.is_empty())
                .map(PathBuf::from),
            proxy,
        }
    }
}

/// The client [`crate::reconcile::Reconciler::new`] starts with: the
/// platform's roots, no proxy. (Should the TLS set-up fail, every read
/// reports why.)
pub fn default_client() -> Arc<dyn HttpGet> {
    match HttpClient::new(&HttpConfig::default()) {
        Ok(client) => Arc::new(client),
        Err(e) => Arc::new(Unusable(e)),
    }
}

/// A client that could not be built: every read says why.
struct Unusable(String);

#[async_trait]
impl HttpGet for Unusable {
    async fn get(&self, _url: &str, _timeout: Duration) -> Result<HttpResponse, HttpError> {
        Err(HttpError::Io(self.0.clone()))
    }
}

type Hyper = Client<HttpsConnector<Routed>, Empty<Bytes>>;

/// The real client. Cheap to clone; connections are pooled.
#[derive(Clone, Debug)]
pub struct HttpClient {
    /// Metric reads: through the proxies, if any.
    proxied: Hyper,
    /// Health probes: never through a proxy.
    direct: Hyper,
    /// The proxy rules, to add `Proxy-Authorization` to proxied `http://`
    /// requests.
    proxies: Option<Arc<Matcher>>,
}

impl HttpClient {
    /// A client for `config`. Fails when the `ca_file` cannot be read or
    /// holds no certificate, or a proxy is not an `http://` URL.
    pub fn new(config: &HttpConfig) -> Result<HttpClient, String> {
        let tls = tls_config(config.ca_file.as_ref())?;
        let proxies = config
            .proxy
            .as_ref()
            .map(matcher)
            .transpose()?
            .map(Arc::new);
        let client = |proxies: Option<Arc<Matcher>>| {
            let https = HttpsConnectorBuilder::new()
                .with_tls_config(tls.clone())
                .https_or_http()
                .enable_http1()
                .wrap_connector(Routed::new(proxies));
            Client::builder(TokioExecutor::new())
                .pool_idle_timeout(Duration::from_secs(30))
                .build(https)
        };
        Ok(HttpClient {
            proxied: client(proxies.clone()),
            direct: client(None),
            proxies,
        })
    }

    async fn fetch(&self, url: &str, client: &Hyper) -> Result<HttpResponse, HttpError> {
        let mut uri = parse_url(url)?;
        for _ in 0..=MAX_REDIRECTS {
            let response = client
                .request(self.request(&uri, client)?)
                .await
                // hyper keeps the causes apart (`client error (Connect)` alone says
                // little).
                .map_err(|e| HttpError::Io(crate::cloud::causes(&e)))?;
            let status = response.status();
            if status.is_redirection()
                && status != http::StatusCode::NOT_MODIFIED
                && let Some(next) = response.headers().get(LOCATION)
            {
                uri = redirect_target(&uri, next)?;
                continue;
            }
            let body = Limited::new(response.into_body(), MAX_RESPONSE_BYTES)
                .collect()
                .await
                .map_err(|e| {
                    if e.is::<http_body_util::LengthLimitError>() {
                        HttpError::BadResponse(format!("larger than {MAX_RESPONSE_BYTES} bytes"))
                    } else {
                        HttpError::Io(e.to_string())
                    }
                })?
                .to_bytes();
            return Ok(HttpResponse {
                status: status.as_u16(),
                body: String::from_utf8_lossy(&body).into_owned(),
            });
        }
        Err(HttpError::BadResponse(format!(
            "more than {MAX_REDIRECTS} redirects"
        )))
    }

    fn request(&self, uri: &Uri, client: &Hyper) -> Result<http::Request<Empty<Bytes>>, HttpError> {
        let mut request = http::Request::get(uri.clone())
            .header(USER_AGENT, concat!("converge/", env!("CARGO_PKG_VERSION")))
            .body(Empty::new())
            .map_err(|e| HttpError::BadUrl(e.to_string()))?;
        let proxied = std::ptr::eq(client, &self.proxied);
        if proxied && uri.scheme() == Some(&http::uri::Scheme::HTTP) {
            let auth = self
                .proxies
                .as_ref()
                .and_then(|m| m.intercept(uri))
                .and_then(|i| i.basic_auth().cloned());
            if let Some(auth) = auth {
                request.headers_mut().insert(PROXY_AUTHORIZATION, auth);
            }
        }
        Ok(request)
    }
}

#[async_trait]
impl HttpGet for HttpClient {
    async fn get(&self, url: &str, timeout: Duration) -> Result<HttpResponse, HttpError> {
        tokio::time::timeout(timeout, self.fetch(url, &self.proxied))
            .await
            .unwrap_or(Err(HttpError::Timeout(timeout)))
    }

    async fn probe(&self, url: &str, timeout: Duration) -> Result<HttpResponse, HttpError> {
        tokio::time::timeout(timeout, self.fetch(url, &self.direct))
            .await
            .unwrap_or(Err(HttpError::Timeout(timeout)))
    }
}

/// rustls on ring, trusting `ca_file`'s certificates, else the platform's.
fn tls_config(ca_file: Option<&PathBuf>) -> Result<rustls::ClientConfig, String> {
    let mut roots = rustls::RootCertStore::empty();
    let certs: Vec<CertificateDer<'static>> = match ca_file {
        Some(path) => CertificateDer::pem_file_iter(path)
            .and_then(|certs| certs.collect::<Result<_, _>>())
            .map_err(|e| format!("SSL_CERT_FILE {}: {e}", path.display()))?,
        // An empty platform store is not an error here: plain http still
        // works, and an https read then fails naming the unknown issuer.
        None => rustls_native_certs::load_native_certs().certs,
    };
    let (added, _ignored) = roots.add_parsable_certificates(certs);
    if let Some(path) = ca_file
        && added == 0
    {
        return Err(format!(
            "SSL_CERT_FILE {}: no certificate in it",
            path.display()
        ));
    }
    rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .map(|b| b.with_root_certificates(roots).with_no_client_auth())
        .map_err(|e| e.to_string())
}

/// The proxy matcher for `rules`; only `http://` proxies (the client
/// speaks to the proxy in the clear, and tunnels TLS through it).
fn matcher(rules: &ProxyRules) -> Result<Matcher, String> {
    let mut builder = Matcher::builder().no(rules.no_proxy.clone());
    for (name, url) in [("HTTP_PROXY", &rules.http), ("HTTPS_PROXY", &rules.https)] {
        let Some(url) = url else { continue };
        let full = if url.contains("://") {
            url.clone()
        } else {
            format!("http://{url}")
        };
        let ok = full
            .parse::<Uri>()
            .is_ok_and(|u| u.scheme_str() == Some("http") && u.host().is_some());
        if !ok {
            return Err(format!(
                "{name}={url:?} is not an http:// proxy URL (expected http://HOST:PORT)"
            ));
        }
        builder = if name == "HTTP_PROXY" {
            builder.http(full)
        } else {
            builder.https(full)
        };
    }
    Ok(builder.build())
}

/// Parses a metric or probe URL: `http(s)://HOST[:PORT][/PATH]`, no
/// user name or password.
fn parse_url(url: &str) -> Result<Uri, HttpError> {
    let bad = || HttpError::BadUrl(url.to_owned());
    let uri: Uri = url.parse().map_err(|_| bad())?;
    let scheme_ok = matches!(uri.scheme_str(), Some("http" | "https"));
    let authority = uri.authority().ok_or_else(bad)?;
    // The parser takes any text after the host's colon as the port.
    let port_text = match authority.as_str().rsplit_once(':') {
        Some((host, port)) if !host.starts_with('[') || host.ends_with(']') => Some(port),
        _ => None,
    };
    let port_ok = port_text.is_none_or(|p| p.parse::<u16>().is_ok());
    if !scheme_ok || !port_ok || authority.host().is_empty() || authority.as_str().contains('@') {
        return Err(bad());
    }
    Ok(uri)
}

/// Where a redirect's `Location` points, resolved against `base`
/// (RFC 9110 10.2.2: it may be relative).
fn redirect_target(base: &Uri, location: &HeaderValue) -> Result<Uri, HttpError> {
    let bad = || HttpError::BadResponse(format!("redirect to an unusable location {location:?}"));
    let location = location.to_str().map_err(|_| bad())?;
    let scheme = base.scheme_str().unwrap_or("http");
    let authority = base.authority().map(|a| a.as_str()).unwrap_or_default();
    let absolute = if location.contains("://") {
        location.to_owned()
    } else if let Some(rest) = location.strip_prefix("//") {
        format!("{scheme}://{rest}")
    } else if location.starts_with('/') {
        format!("{scheme}://{authority}{location}")
    } else {
        let dir = base.path().rsplit_once('/').map_or("", |(d, _)| d);
        format!("{scheme}://{authority}{dir}/{location}")
    };
    parse_url(&absolute).map_err(|_| bad())
}

/// The TCP connector under TLS: straight to the server, to the proxy for
/// a proxied `http://` URL, or through a `CONNECT` tunnel for a proxied
/// `https://` one.
#[derive(Clone, Debug)]
struct Routed {
    tcp: HttpConnector,
    proxies: Option<Arc<Matcher>>,
}

impl Routed {
    fn new(proxies: Option<Arc<Matcher>>) -> Routed {
        let mut tcp = HttpConnector::new();
        // TLS is the layer above; this one sees https:// URLs too.
        tcp.enforce_http(false);
        tcp.set_nodelay(true);
        tcp.set_connect_timeout(Some(Duration::from_secs(10)));
        Routed { tcp, proxies }
    }
}

type BoxError = Box<dyn std::error::Error + Send + Sync>;

impl tower_service::Service<Uri> for Routed {
    type Response = Stream;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<Stream, BoxError>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        tower_service::Service::<Uri>::poll_ready(&mut self.tcp, cx).map_err(Into::into)
    }

    fn call(&mut self, dst: Uri) -> Self::Future {
        let mut tcp = self.tcp.clone();
        let intercept = self.proxies.as_ref().and_then(|m| m.intercept(&dst));
        Box::pin(async move {
            let Some(proxy) = intercept else {
                let io = tcp.call(dst).await?;
                return Ok(Stream {
                    io,
                    via_proxy: false,
                });
            };
            if dst.scheme() == Some(&http::uri::Scheme::HTTPS) {
                let mut tunnel = Tunnel::new(proxy.uri().clone(), tcp);
                if let Some(auth) = proxy.basic_auth() {
                    tunnel = tunnel.with_auth(auth.clone());
                }
                let io = tunnel.call(dst).await?;
                Ok(Stream {
                    io,
                    via_proxy: false,
                })
            } else {
                // The request goes to the proxy in absolute form.
                let io = tcp.call(proxy.uri().clone()).await?;
                Ok(Stream {
                    io,
                    via_proxy: true,
                })
            }
        })
    }
}

/// A TCP connection that knows whether it leads to a proxy (then hyper
/// writes request targets in absolute form, RFC 9112 3.2.2).
#[derive(Debug)]
struct Stream {
    io: TokioIo<TcpStream>,
    via_proxy: bool,
}

impl Connection for Stream {
    fn connected(&self) -> Connected {
        self.io.connected().proxy(self.via_proxy)
    }
}

impl Read for Stream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: ReadBufCursor<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_read(cx, buf)
    }
}

impl Write for Stream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().io).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_shutdown(cx)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a panic is how a test fails
mod tests {
    use super::*;
    use std::sync::Mutex;
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    use tokio::net::TcpListener;

    const CA: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/tls/ca.pem");
    const CERT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/tls/server.pem");
    const KEY: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/tls/server.key");

    type Replies = Arc<dyn Fn(&str) -> Vec<u8> + Send + Sync>;

    /// A server answering each request line with `reply(line)` and then
    /// keeping the connection open, as a keep-alive server does; it
    /// records the request lines it was sent. With `tls`, it speaks TLS
    /// with the test certificate for 127.0.0.1.
    async fn serve(tls: bool, reply: Replies) -> (String, Arc<Mutex<Vec<String>>>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let record = seen.clone();
        let acceptor = tls.then(tls_acceptor);
        tokio::spawn(async move {
            loop {
                let (tcp, _) = listener.accept().await.unwrap();
                let (reply, record, acceptor) = (reply.clone(), record.clone(), acceptor.clone());
                tokio::spawn(async move {
                    match acceptor {
                        Some(a) => answer(a.accept(tcp).await.unwrap(), reply, record).await,
                        None => answer(tcp, reply, record).await,
                    }
                });
            }
        });
        let scheme = if tls { "https" } else { "http" };
        (format!("{scheme}://{addr}"), seen)
    }

    async fn answer<S>(mut s: S, reply: Replies, record: Arc<Mutex<Vec<String>>>)
    where
        S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
    {
        // Keep-alive: every request on the connection gets its reply.
        let mut chunk = [0u8; 4096];
        loop {
            let mut buf = Vec::new();
            while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
                match s.read(&mut chunk).await {
                    Ok(0) | Err(_) => return,
                    Ok(n) => buf.extend_from_slice(&chunk[..n]),
                }
            }
            let text = String::from_utf8_lossy(&buf).into_owned();
            let line = text.lines().next().unwrap_or_default().to_owned();
            record.lock().unwrap().push(line.clone());
            if s.write_all(&reply(&line)).await.is_err() || s.flush().await.is_err() {
                return;
            }
        }
    }

    fn tls_acceptor() -> tokio_rustls::TlsAcceptor {
        let certs = CertificateDer::pem_file_iter(CERT)
            .unwrap()
            .collect::<Result<Vec<_>, _>>()
            .unwrap();
        let key = rustls_pki_types::PrivateKeyDer::from_pem_file(KEY).unwrap();
        let config = rustls::ServerConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .unwrap();
        tokio_rustls::TlsAcceptor::from(Arc::new(config))
    }

    fn fixed(reply: &'static [u8]) -> Replies {
        Arc::new(move |_| reply.to_vec())
    }

    fn client(config: HttpConfig) -> HttpClient {
        HttpClient::new(&config).unwrap()
    }

    const SECOND: Duration = Duration::from_secs(1);

    #[test]
    fn urls_are_parsed_or_refused() {
        for good in [
            "http://127.0.0.1:9100/queue/length",
            "http://metrics.internal",
            "https://[::1]:8080/x?y=1",
        ] {
            assert!(parse_url(good).is_ok(), "{good}");
        }
        for bad in ["ftp://a", "http://", "http://a:port/", "http://u@a/", "a/b"] {
            assert!(parse_url(bad).is_err(), "{bad}");
        }
        let base: Uri = "https://m.internal:8443/a/b?c".parse().unwrap();
        for (location, want) in [
            ("/x", "https://m.internal:8443/x"),
            ("y?z=1", "https://m.internal:8443/a/y?z=1"),
            ("//other/p", "https://other/p"),
            ("http://plain/q", "http://plain/q"),
        ] {
            let got = redirect_target(&base, &HeaderValue::from_static(location)).unwrap();
            assert_eq!(got.to_string(), want, "{location}");
        }
    }

    #[tokio::test]
    async fn replies_with_a_length_or_chunks_end_without_the_connection_closing() {
        let c = client(HttpConfig::default());
        let (url, _) = serve(
            false,
            fixed(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n17"),
        )
        .await;
        let r = c.get(&format!("{url}/queue/length"), SECOND).await.unwrap();
        assert_eq!((r.status, r.body.as_str()), (200, "17"));
        let chunked = b"HTTP/1.1 503 Busy\r\nTransfer-Encoding: chunked\r\n\r\n4\r\nwelc\r\n3;x=1\r\nome\r\n0\r\n\r\n";
        let (url, _) = serve(false, fixed(chunked)).await;
        let r = c.get(&url, SECOND).await.unwrap();
        assert_eq!((r.status, r.body.as_str()), (503, "welcome"));
        // Both headers: Transfer-Encoding wins (RFC 9112 6.3).
        let both = b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\nTransfer-Encoding: chunked\r\n\r\n2\r\n42\r\n0\r\n\r\n";
        let (url, _) = serve(false, fixed(both)).await;
        let r = c.get(&url, SECOND).await.unwrap();
        assert_eq!((r.status, r.body.as_str()), (200, "42"));
    }

    #[tokio::test]
    async fn a_silent_server_times_out_and_a_huge_or_foreign_reply_is_refused() {
        let c = client(HttpConfig::default());
        let (url, _) = serve(false, fixed(b"")).await;
        let e = c.get(&url, Duration::from_millis(200)).await.unwrap_err();
        assert!(matches!(e, HttpError::Timeout(_)), "{e}");
        let huge: &'static [u8] = Box::leak(
            format!(
                "HTTP/1.1 200 OK\r\nContent-Length: {n}\r\n\r\n{}",
                "9".repeat(MAX_RESPONSE_BYTES + 1),
                n = MAX_RESPONSE_BYTES + 1
            )
            .into_bytes()
            .into_boxed_slice(),
        );
        let (url, _) = serve(false, fixed(huge)).await;
        let e = c.get(&url, SECOND).await.unwrap_err();
        assert!(e.to_string().contains("larger than 65536 bytes"), "{e}");
        let (url, _) = serve(false, fixed(b"SSH-2.0-OpenSSH_9.6\r\n\r\n")).await;
        assert!(matches!(c.get(&url, SECOND).await, Err(HttpError::Io(_))));
    }

    #[tokio::test]
    async fn redirects_are_followed_up_to_three_times() {
        let c = client(HttpConfig::default());
        let hops: Replies =
            Arc::new(|line: &str| {
                let path = line.split_whitespace().nth(1).unwrap_or("/");
                match path.strip_prefix("/hop/").and_then(|n| n.parse::<u32>().ok()) {
                Some(0) => b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\n7".to_vec(),
                Some(n) => format!(
                    "HTTP/1.1 307 Temporary Redirect\r\nLocation: {}\r\nContent-Length: 0\r\n\r\n",
                    n - 1
                )
                .into_bytes(),
                None => b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n".to_vec(),
            }
            });
        let (url, seen) = serve(false, hops).await;
        let r = c.get(&format!("{url}/hop/3"), SECOND).await.unwrap();
        assert_eq!((r.status, r.body.as_str()), (200, "7"));
        assert_eq!(seen.lock().unwrap().len(), 4);
        let e = c.get(&format!("{url}/hop/4"), SECOND).await.unwrap_err();
        assert!(e.to_string().contains("more than 3 redirects"), "{e}");
    }

    #[tokio::test]
    async fn https_trusts_the_ca_file_and_refuses_an_unknown_issuer() {
        let reply = fixed(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n12");
        let (url, _) = serve(true, reply).await;
        let trusted = client(HttpConfig {
            ca_file: Some(CA.into()),
            proxy: None,
        });
        let r = trusted.get(&format!("{url}/m"), SECOND).await.unwrap();
        assert_eq!((r.status, r.body.as_str()), (200, "12"));
        // The platform's roots do not know the test CA.
        let e = client(HttpConfig::default())
            .get(&url, SECOND)
            .await
            .unwrap_err();
        assert!(e.to_string().contains("certificate"), "{e}");
        let e = HttpClient::new(&HttpConfig {
            ca_file: Some(KEY.into()),
            proxy: None,
        })
        .unwrap_err();
        assert!(e.contains("no certificate in it"), "{e}");
        let e = HttpClient::new(&HttpConfig {
            ca_file: Some("/nonexistent/ca.pem".into()),
            proxy: None,
        })
        .unwrap_err();
        assert!(e.starts_with("SSL_CERT_FILE /nonexistent/ca.pem"), "{e}");
    }

    /// A proxy that records each connection's first line (the request, or
    /// `CONNECT host:port`) and then pipes bytes to that host.
    async fn recording_proxy() -> (String, Arc<Mutex<Vec<String>>>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let record = seen.clone();
        tokio::spawn(async move {
            loop {
                let (mut client, _) = listener.accept().await.unwrap();
                let record = record.clone();
                tokio::spawn(async move {
                    let mut buf = vec![0u8; 8192];
                    let n = client.read(&mut buf).await.unwrap();
                    let head = String::from_utf8_lossy(&buf[..n]).into_owned();
                    let line = head.lines().next().unwrap_or_default().to_owned();
                    record.lock().unwrap().push(line.clone());
                    let target = line.split_whitespace().nth(1).unwrap_or_default();
                    let (host, connect) = match target.strip_prefix("http://") {
                        Some(rest) => (rest.split('/').next().unwrap_or_default(), false),
                        None => (target, true),
                    };
                    let mut server = tokio::net::TcpStream::connect(host).await.unwrap();
                    if connect {
                        client
                            .write_all(b"HTTP/1.1 200 Connection established\r\n\r\n")
                            .await
                            .unwrap();
                    } else {
                        server.write_all(&buf[..n]).await.unwrap();
                    }
                    let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
                });
            }
        });
        (format!("http://{addr}"), seen)
    }

    #[tokio::test]
    async fn metric_reads_use_the_proxy_unless_no_proxy_lists_the_host_and_probes_never_do() {
        let (proxy, through) = recording_proxy().await;
        let reply = fixed(b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\n5");
        let (plain, _) = serve(false, reply.clone()).await;
        let (tls, _) = serve(true, reply).await;
        let rules = |no_proxy: &str| HttpConfig {
            ca_file: Some(CA.into()),
            proxy: Some(ProxyRules {
                http: Some(proxy.clone()),
                https: Some(proxy.clone()),
                no_proxy: no_proxy.to_owned(),
            }),
        };
        let c = client(rules(""));
        assert_eq!(
            c.get(&format!("{plain}/q"), SECOND).await.unwrap().body,
            "5"
        );
        assert_eq!(c.get(&format!("{tls}/q"), SECOND).await.unwrap().body, "5");
        let lines = through.lock().unwrap().clone();
        let host = tls.trim_start_matches("https://");
        assert_eq!(
            lines,
            [
                format!("GET {plain}/q HTTP/1.1"),
                format!("CONNECT {host} HTTP/1.1")
            ]
        );
        assert_eq!(
            c.probe(&format!("{plain}/health"), SECOND)
                .await
                .unwrap()
                .body,
            "5"
        );
        let direct = client(rules("localhost,127.0.0.0/8"));
        assert_eq!(
            direct
                .get(&format!("{plain}/q"), SECOND)
                .await
                .unwrap()
                .body,
            "5"
        );
        assert_eq!(
            through.lock().unwrap().len(),
            2,
            "no more went through the proxy"
        );
        let e = HttpClient::new(&HttpConfig {
            ca_file: None,
            proxy: Some(ProxyRules {
                http: None,
                https: Some("socks5://proxy:1080".into()),
                no_proxy: String::new(),
            }),
        })
        .unwrap_err();
        assert!(e.starts_with("HTTPS_PROXY=\"socks5://proxy:1080\""), "{e}");
    }
}
