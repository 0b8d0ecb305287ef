//! The real binary with `--cloud aws`, as a user's environment sets it
//! up. Every AWS call goes through the proxy the environment names
//! (`HTTP_PROXY` for an `http://` endpoint such as moto, `HTTPS_PROXY` for
//! AWS itself), except for the hosts `NO_PROXY` lists, and a proxy
//! variable that is not a URL is refused before any call (against a moto
//! server, through a recording proxy that forwards to it). Without
//! credentials the error reads like the AWS CLI's and says what to try.

#![allow(clippy::unwrap_used)] // a panic is how a test fails

use crate::support::example;

use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::sync::{Arc, Mutex};

/// A forwarding HTTP proxy that records the request line of each
/// connection it is sent, then pipes bytes both ways to `upstream`.
struct RecordingProxy {
    url: String,
    seen: Arc<Mutex<Vec<String>>>,
}

impl RecordingProxy {
    fn start(upstream: String) -> RecordingProxy {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let seen = Arc::new(Mutex::new(Vec::new()));
        let record = seen.clone();
        std::thread::spawn(move || {
            for client in listener.incoming().flatten() {
                let record = record.clone();
                let upstream = upstream.clone();
                std::thread::spawn(move || forward(client, &upstream, &record));
            }
        });
        RecordingProxy { url, seen }
    }

    fn request_lines(&self) -> Vec<String> {
        self.seen.lock().unwrap().clone()
    }
}

fn forward(client: TcpStream, upstream: &str, record: &Mutex<Vec<String>>) {
    let mut reader = BufReader::new(client.try_clone().unwrap());
    let mut first = String::new();
    if reader.read_line(&mut first).unwrap_or(0) == 0 {
        return;
    }
    record.lock().unwrap().push(first.trim_end().to_owned());
    let Ok(mut server) = TcpStream::connect(upstream) else {
        return;
    };
    // What the reader buffered past the first line goes on too.
    let buffered = reader.buffer().to_vec();
    server.write_all(first.as_bytes()).unwrap();
    server.write_all(&buffered).unwrap();
    let mut to_server = server.try_clone().unwrap();
    let mut from_client = client.try_clone().unwrap();
    std::thread::spawn(move || {
        let _ = std::io::copy(&mut from_client, &mut to_server);
        let _ = to_server.shutdown(std::net::Shutdown::Write);
    });
    let mut to_client = client;
    let _ = std::io::copy(&mut server, &mut to_client);
    let _ = to_client.shutdown(std::net::Shutdown::Write);
}

/// A copy of the example stack under its own name, in a fresh directory.
fn example_stack(dir: &Path) {
    example::copy_into(dir, Some("proxy"));
}

/// `converge --cloud aws plan stack` with only the given proxy variables.
fn plan(dir: &Path, endpoint: &str, vars: &[(&str, &str)]) -> (Option<i32>, String) {
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_converge"));
    cmd.current_dir(dir)
        .args([
            "--cloud",
            "aws",
            "--endpoint-url",
            endpoint,
            "plan",
            "stack",
        ])
        .env("AWS_ACCESS_KEY_ID", "testing")
        .env("AWS_SECRET_ACCESS_KEY", "testing")
        .env_remove("AWS_PROFILE")
        .env("NO_COLOR", "1");
    for name in [
        "HTTPS_PROXY",
        "https_proxy",
        "HTTP_PROXY",
        "http_proxy",
        "ALL_PROXY",
        "all_proxy",
        "NO_PROXY",
        "no_proxy",
    ] {
        cmd.env_remove(name);
    }
    for (name, value) in vars {
        cmd.env(name, value);
    }
    let out = cmd.output().unwrap();
    let text = format!(
        "--- stdout\n{}\n--- stderr\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.code(), text)
}

#[test]
fn aws_calls_go_through_http_proxy_unless_no_proxy_says_otherwise() {
    let endpoint = moto_or_skip!();
    let upstream = endpoint
        .trim_start_matches("http://")
        .trim_end_matches('/')
        .to_owned();
    let proxy = RecordingProxy::start(upstream.clone());
    let dir = tempfile::tempdir().unwrap();
    example_stack(dir.path());

    let (code, out) = plan(dir.path(), &endpoint, &[("HTTP_PROXY", &proxy.url)]);
    assert_eq!(code, Some(0), "{out}");
    let lines = proxy.request_lines();
    assert!(
        !lines.is_empty(),
        "no request went through the proxy:\n{out}"
    );
    // A proxied request names the whole URL (absolute form, RFC 9112 3.2.2).
    for line in &lines {
        assert!(
            line.contains(&format!("http://{upstream}/")),
            "not a proxied request line: {line}"
        );
    }

    let before = lines.len();
    let (code, out) = plan(
        dir.path(),
        &endpoint,
        &[
            ("http_proxy", &proxy.url),
            ("NO_PROXY", "localhost,127.0.0.1"),
        ],
    );
    assert_eq!(code, Some(0), "{out}");
    assert_eq!(
        proxy.request_lines().len(),
        before,
        "NO_PROXY lists the endpoint, yet the proxy was used:\n{out}"
    );
}

#[test]
fn a_proxy_variable_that_is_not_a_url_is_refused_before_any_call() {
    let endpoint = moto_or_skip!();
    let dir = tempfile::tempdir().unwrap();
    example_stack(dir.path());
    let (code, out) = plan(dir.path(), &endpoint, &[("HTTPS_PROXY", "ftp://proxy:21")]);
    assert_eq!(code, Some(1), "{out}");
    assert!(
        out.contains("HTTPS_PROXY=\"ftp://proxy:21\" is not a proxy URL"),
        "{out}"
    );
}

#[test]
fn without_credentials_the_error_says_what_to_try_and_dumps_nothing() {
    let dir = tempfile::tempdir().unwrap();
    example_stack(dir.path());
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_converge"));
    cmd.current_dir(dir.path())
        .args(["--cloud", "aws", "plan", "stack"])
        // No profile files, no instance metadata: nothing to find.
        .env("HOME", dir.path())
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env("NO_COLOR", "1");
    for name in [
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "AWS_SESSION_TOKEN",
        "AWS_PROFILE",
        "AWS_CONFIG_FILE",
        "AWS_SHARED_CREDENTIALS_FILE",
        "AWS_WEB_IDENTITY_TOKEN_FILE",
        "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
        "AWS_CONTAINER_CREDENTIALS_FULL_URI",
        "CONVERGE_LOG",
    ] {
        cmd.env_remove(name);
    }
    let out = cmd.output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.starts_with("error: connecting to AWS: LoadCredentials failed: NoCredentials: Unable to locate credentials."),
        "{stderr}"
    );
    assert!(
        stderr.contains("\nhint: configure credentials: `aws configure`"),
        "{stderr}"
    );
    // No SDK warning lines, no Debug dumps of the SDK's errors.
    for noise in ["WARN", "ProviderError(", "Headers {", "SdkBody"] {
        assert!(!stderr.contains(noise), "{noise:?} in:\n{stderr}");
    }
    assert_eq!(stderr.lines().count(), 2, "{stderr}");
}
