//! A minimal HTTP/1.1 client for the loop's two reads: a fleet's metric
//! (`autoscale.metric.url`, a plain number in the body) and its health
//! probe (`GET http://ADDRESS:PORT/PATH`). Plain `http://` only, one
//! request per connection, a deadline on the whole exchange and a cap on
//! what is read, so a slow or hostile endpoint can neither hold the loop
//! nor grow its memory.
//!
//! [`HttpGet`] is a trait so that tests can answer probes of simulated
//! instances (whose addresses exist only in the local cloud).

use async_trait::async_trait;
use std::time::Duration;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;

/// The most bytes read of one response (head and body).
pub const MAX_RESPONSE_BYTES: usize = 64 * 1024;

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
    /// The URL is not `http://HOST[:PORT][/PATH]`.
    #[error("unsupported URL \"{0}\": expected http://HOST[:PORT]/PATH")]
    BadUrl(String),
    /// Connecting, writing or reading failed.
    #[error("{0}")]
    Io(String),
    /// No complete answer within the deadline.
    #[error("no answer within {0:?}")]
    Timeout(Duration),
    /// The answer is not HTTP/1.x, or too large.
    #[error("bad response: {0}")]
    BadResponse(String),
}

/// Something that can GET a URL.
#[async_trait]
pub trait HttpGet: Send + Sync {
    /// GETs `url`, giving up after `timeout`.
    async fn get(&self, url: &str, timeout: Duration) -> Result<HttpResponse, HttpError>;
}

/// The real client, over tokio's TCP stream.
#[derive(Clone, Copy, Debug, Default)]
pub struct PlainHttp;

#[async_trait]
impl HttpGet for PlainHttp {
    async fn get(&self, url: &str, timeout: Duration) -> Result<HttpResponse, HttpError> {
        let target = Target::parse(url)?;
        match tokio::time::timeout(timeout, exchange(&target)).await {
            Ok(r) => r,
            Err(_) => Err(HttpError::Timeout(timeout)),
        }
    }
}

/// Where a URL points.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Target {
    /// The host as written (brackets kept for IPv6), for `Host:`.
    host_header: String,
    /// The host to connect to.
    host: String,
    port: u16,
    path: String,
}

impl Target {
    fn parse(url: &str) -> Result<Target, HttpError> {
        let bad = || HttpError::BadUrl(url.to_owned());
        let rest = url.strip_prefix("http://").ok_or_else(bad)?;
        let (authority, path) = match rest.find(['/', '?']) {
            Some(i) if rest[i..].starts_with('/') => (&rest[..i], rest[i..].to_owned()),
            Some(i) => (&rest[..i], format!("/{}", &rest[i..])),
            None => (rest, "/".to_owned()),
        };
        if authority.is_empty() || authority.contains('@') {
            return Err(bad());
        }
        let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
            let (h, after) = v6.split_once(']').ok_or_else(bad)?;
            let port = match after.strip_prefix(':') {
                Some(p) => p.parse().map_err(|_| bad())?,
                None if after.is_empty() => 80,
                None => return Err(bad()),
            };
            (h.to_owned(), port)
        } else {
            match authority.rsplit_once(':') {
                Some((h, p)) => (h.to_owned(), p.parse().map_err(|_| bad())?),
                None => (authority.to_owned(), 80),
            }
        };
        if host.is_empty() || path.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(bad());
        }
        Ok(Target {
            host_header: authority.to_owned(),
            host,
            port,
            path,
        })
    }
}

async fn exchange(t: &Target) -> Result<HttpResponse, HttpError> {
    let io = |e: std::io::Error| HttpError::Io(e.to_string());
    let mut stream = TcpStream::connect((t.host.as_str(), t.port))
        .await
        .map_err(io)?;
    let request = format!(
        "GET {} HTTP/1.1\r\nHost: {}\r\nUser-Agent: converge\r\nAccept: */*\r\nConnection: close\r\n\r\n",
        t.path, t.host_header
    );
    stream.write_all(request.as_bytes()).await.map_err(io)?;
    let mut buf = Vec::new();
    let mut chunk = [0u8; 8192];
    loop {
        let n = stream.read(&mut chunk).await.map_err(io)?;
        if n == 0 {
            break;
        }
        if buf.len() + n > MAX_RESPONSE_BYTES {
            return Err(HttpError::BadResponse(format!(
                "larger than {MAX_RESPONSE_BYTES} bytes"
            )));
        }
        buf.extend_from_slice(&chunk[..n]);
        // Stop as soon as a response with a length is complete, without
        // waiting for the server to close.
        if let Some(done) = complete(&buf)
            && done
        {
            break;
        }
    }
    parse_response(&buf)
}

/// Whether `buf` holds a whole response whose length is known; `None`
/// while the head is incomplete.
fn complete(buf: &[u8]) -> Option<bool> {
    let end = find(buf, b"\r\n\r\n")?;
    let head = String::from_utf8_lossy(&buf[..end]);
    let len = header(&head, "content-length").and_then(|v| v.trim().parse::<usize>().ok());
    Some(len.is_some_and(|l| buf.len() >= end + 4 + l))
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

fn header<'a>(head: &'a str, name: &str) -> Option<&'a str> {
    head.lines().skip(1).find_map(|l| {
        let (k, v) = l.split_once(':')?;
        k.trim().eq_ignore_ascii_case(name).then_some(v.trim())
    })
}

fn parse_response(buf: &[u8]) -> Result<HttpResponse, HttpError> {
    let bad = |m: &str| HttpError::BadResponse(m.to_owned());
    let end = find(buf, b"\r\n\r\n").ok_or_else(|| bad("incomplete response head"))?;
    let head = String::from_utf8_lossy(&buf[..end]);
    let status_line = head.lines().next().unwrap_or("");
    let mut parts = status_line.split_whitespace();
    let version = parts.next().unwrap_or("");
    if !version.starts_with("HTTP/1.") {
        return Err(bad("not an HTTP/1.x response"));
    }
    let status: u16 = parts
        .next()
        .and_then(|s| s.parse().ok())
        .filter(|s| (100..600).contains(s))
        .ok_or_else(|| bad("no status code"))?;
    let mut body = &buf[end + 4..];
    if let Some(len) = header(&head, "content-length").and_then(|v| v.parse::<usize>().ok()) {
        body = &body[..len.min(body.len())];
    }
    let body = if header(&head, "transfer-encoding")
        .is_some_and(|v| v.to_ascii_lowercase().contains("chunked"))
    {
        dechunk(body).ok_or_else(|| bad("malformed chunked body"))?
    } else {
        body.to_vec()
    };
    Ok(HttpResponse {
        status,
        body: String::from_utf8_lossy(&body).into_owned(),
    })
}

fn dechunk(mut b: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    loop {
        let line_end = find(b, b"\r\n")?;
        let size_text = std::str::from_utf8(&b[..line_end]).ok()?;
        let size_text = size_text.split(';').next()?.trim();
        let size = usize::from_str_radix(size_text, 16).ok()?;
        b = &b[line_end + 2..];
        if size == 0 {
            return Some(out);
        }
        if b.len() < size {
            return None;
        }
        out.extend_from_slice(&b[..size]);
        b = b.get(size..)?;
        b = b.strip_prefix(b"\r\n").unwrap_or(b);
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a panic is how a test fails
mod tests {
    use super::*;
    use tokio::net::TcpListener;

    #[test]
    fn urls_are_parsed_or_refused() {
        let t = Target::parse("http://127.0.0.1:9100/queue/length").unwrap();
        assert_eq!(
            (t.host.as_str(), t.port, t.path.as_str()),
            ("127.0.0.1", 9100, "/queue/length")
        );
        let t = Target::parse("http://metrics.internal").unwrap();
        assert_eq!((t.port, t.path.as_str()), (80, "/"));
        let t = Target::parse("http://[::1]:8080/x?y=1").unwrap();
        assert_eq!(
            (t.host.as_str(), t.port, t.path.as_str()),
            ("::1", 8080, "/x?y=1")
        );
        for bad in [
            "https://a/",
            "http://",
            "http://a:port/",
            "ftp://a",
            "http://u@a/",
            "http://a/ b",
        ] {
            assert!(Target::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn responses_are_parsed_with_length_or_chunks() {
        let r = parse_response(b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\n42\nextra").unwrap();
        assert_eq!((r.status, r.body.as_str()), (200, "42\n"));
        let r = parse_response(
            b"HTTP/1.1 503 Busy\r\nTransfer-Encoding: chunked\r\n\r\n4\r\nwelc\r\n3;x=1\r\nome\r\n0\r\n\r\n",
        )
        .unwrap();
        assert_eq!((r.status, r.body.as_str()), (503, "welcome"));
        assert!(parse_response(b"SSH-2.0-OpenSSH\r\n\r\n").is_err());
        assert!(parse_response(b"HTTP/1.1 200 OK\r\n").is_err());
    }

    #[tokio::test]
    async fn gets_from_a_server_and_times_out_on_a_silent_one() {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        tokio::spawn(async move {
            let (mut s, _) = l.accept().await.unwrap();
            let mut buf = [0u8; 1024];
            let _ = s.read(&mut buf).await;
            s.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n17")
                .await
                .unwrap();
            // Hold the connection open: the client must not wait for EOF.
            let (_s2, _) = l.accept().await.unwrap();
            tokio::time::sleep(Duration::from_secs(5)).await;
        });
        let r = PlainHttp
            .get(
                &format!("http://{addr}/queue/length"),
                Duration::from_secs(2),
            )
            .await
            .unwrap();
        assert_eq!((r.status, r.body.as_str()), (200, "17"));
        let e = PlainHttp
            .get(&format!("http://{addr}/"), Duration::from_millis(100))
            .await
            .unwrap_err();
        assert!(matches!(e, HttpError::Timeout(_)), "{e}");
    }
}
