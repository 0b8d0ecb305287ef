//! For the tests against a moto server: its endpoint, and a guard that
//! skips a test when no server is configured (or fails it when
//! `CONVERGE_REQUIRE_MOTO` says one must be). Declared with
//! `#[macro_use]` in `support/mod.rs`, so every test module has the macro.

/// The moto server's endpoint (`source scripts/moto.sh start` sets it).
pub fn endpoint() -> Option<String> {
    std::env::var("CONVERGE_TEST_AWS_ENDPOINT")
        .ok()
        .filter(|e| !e.is_empty())
}

/// The endpoint, or returns from the test, saying why, when no moto
/// server is configured; fails instead under `CONVERGE_REQUIRE_MOTO`.
macro_rules! moto_or_skip {
    () => {
        match $crate::support::moto::endpoint() {
            Some(e) => e,
            None => {
                assert!(
                    std::env::var_os("CONVERGE_REQUIRE_MOTO").is_none(),
                    "CONVERGE_REQUIRE_MOTO is set but CONVERGE_TEST_AWS_ENDPOINT is not: the moto server did not start"
                );
                eprintln!(
                    "skipped: CONVERGE_TEST_AWS_ENDPOINT is not set; run `source scripts/moto.sh start` (scripts/test.sh does)"
                );
                return;
            }
        }
    };
}

/// Sends one request straight to the moto server, in `account`, for what
/// a test sets up outside converge (converge has no IAM client, and never
/// writes SSM parameters) or reads back beyond what converge observes.
/// `service` names the SigV4 scope moto routes by (`iam`, `ssm`, `ec2`);
/// moto checks no signature. Answers the response body; a status other
/// than 200 fails the test.
#[allow(dead_code)] // not every test binary that includes this uses it
pub fn call(
    endpoint: &str,
    account: &str,
    service: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> String {
    use std::io::{Read, Write};
    let host = endpoint
        .strip_prefix("http://")
        .expect("moto listens on plain http")
        .trim_end_matches('/');
    let mut s = std::net::TcpStream::connect(host).expect("moto answers");
    let mut req = format!(
        "POST / HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\nContent-Length: {}\r\nx-moto-account-id: {account}\r\nAuthorization: AWS4-HMAC-SHA256 Credential=testing/20260101/us-east-1/{service}/aws4_request, SignedHeaders=host, Signature=0\r\n",
        body.len()
    );
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    req.push_str(body);
    s.write_all(req.as_bytes()).expect("request sent");
    let mut out = String::new();
    s.read_to_string(&mut out).expect("response read");
    let (head, body) = out.split_once("\r\n\r\n").unwrap_or((&out, ""));
    assert!(
        head.starts_with("HTTP/1.1 200") || head.starts_with("HTTP/1.0 200"),
        "moto refused {service} {body:?}:\n{out}"
    );
    body.to_owned()
}

/// Form-encodes query-protocol parameters (IAM, EC2).
#[allow(dead_code)]
pub fn form(params: &[(&str, &str)]) -> String {
    params
        .iter()
        .map(|(k, v)| format!("{k}={}", encode(v)))
        .collect::<Vec<_>>()
        .join("&")
}

fn encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// A backend for moto in an account of its own (a random ID), so tests
/// running side by side never see each other's resources.
pub async fn cloud(endpoint: &str) -> std::sync::Arc<converge::cloud::aws::AwsCloud> {
    use converge::cloud::aws::{AwsCloud, AwsOptions};
    let account = format!("{:012}", fastrand::u64(100_000_000_000..999_999_999_999));
    std::sync::Arc::new(
        AwsCloud::connect(
            AwsOptions {
                endpoint_url: Some(endpoint.to_owned()),
                moto_account: Some(account),
                initial_backoff: Some(std::time::Duration::from_millis(5)),
                ..AwsOptions::default()
            },
            "us-east-1",
        )
        .await
        .unwrap(),
    )
}

/// The stack of this one manifest file's `text`, written into `dir`.
pub fn load(dir: &std::path::Path, text: &str) -> converge::core::desired::Desired {
    std::fs::write(dir.join("stack.yaml"), text).unwrap();
    converge::manifest::load(dir, &|_| None).unwrap().desired
}
