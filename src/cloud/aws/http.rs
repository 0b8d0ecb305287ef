//! The HTTPS client every AWS call goes through: rustls with the ring
//! provider, and the proxies the environment names, as the AWS CLI reads
//! them.
//!
//! `HTTPS_PROXY` is used for `https://` endpoints, `HTTP_PROXY` for
//! `http://` ones (a moto server, LocalStack), `ALL_PROXY` for both when
//! the specific one is unset, each also in lower case; `NO_PROXY` lists
//! hosts, domains (`.example.com`), addresses and CIDR blocks reached
//! directly, `*` for all. An HTTPS endpoint is reached through an HTTP
//! proxy with `CONNECT`, so the proxy never sees the request. The AWS CLI
//! documents the same variables:
//! <https://docs.aws.amazon.com/cli/latest/userguide/cli-configure-proxy.html>.
//!
//! The SDK's own default client reads no proxy variable, which is why
//! converge builds this one.

use crate::cloud::{CloudError, ErrorKind};
use aws_smithy_http_client::proxy::ProxyConfig;
use aws_smithy_http_client::tls::{Provider, rustls_provider::CryptoMode};
use aws_smithy_http_client::{Builder, Connector};
use aws_smithy_runtime_api::client::http::SharedHttpClient;

/// The proxy variables converge reads, upper case first as the AWS CLI
/// does.
pub const PROXY_VARIABLES: [&str; 6] = [
    "HTTPS_PROXY",
    "https_proxy",
    "HTTP_PROXY",
    "http_proxy",
    "ALL_PROXY",
    "all_proxy",
];

/// The client for every AWS service and for the credential providers.
///
/// Fails when a proxy variable is set to something that is not a URL: a
/// typo there would otherwise send every call past the proxy, where a
/// network that needs one refuses them with a timeout that names nothing.
pub fn https_client() -> Result<SharedHttpClient, CloudError> {
    check_proxy_variables(|name| std::env::var(name).ok())?;
    // `build_with_connector_fn` keeps the SDK's cache of one connector
    // (and so one connection pool) per timeout setting; the connector is
    // the same the SDK's builder makes, with the proxy added.
    Ok(
        Builder::new().build_with_connector_fn(|settings, components| {
            let mut connector = Connector::builder().proxy_config(ProxyConfig::from_env());
            connector.set_connector_settings(settings.cloned());
            if let Some(components) = components {
                connector.set_sleep_impl(components.sleep_impl());
            }
            connector
                .tls_provider(Provider::Rustls(CryptoMode::Ring))
                .build()
        }),
    )
}

/// Refuses a proxy variable whose value is not a proxy URL (`host:port`
/// alone is taken as `http://host:port`, as curl and the AWS CLI do).
fn check_proxy_variables(read: impl Fn(&str) -> Option<String>) -> Result<(), CloudError> {
    for name in PROXY_VARIABLES {
        let Some(value) = read(name).filter(|v| !v.trim().is_empty()) else {
            continue;
        };
        let url = if value.contains("://") {
            value.clone()
        } else {
            format!("http://{value}")
        };
        // The SDK's connector speaks HTTP proxies only (no SOCKS).
        let scheme_ok = url.starts_with("http://") || url.starts_with("https://");
        if !scheme_ok || !port_ok(&url) || ProxyConfig::all(url.as_str()).is_err() {
            return Err(CloudError::new(
                ErrorKind::Invalid,
                "ConfigureProxy",
                "InvalidProxyUrl",
                format!(
                    "{name}={value:?} is not a proxy URL (expected http://HOST:PORT, \
                     with optional user:password@)"
                ),
            ));
        }
    }
    Ok(())
}

/// Whether the URL's port, if it names one, is a TCP port (the URI
/// parser accepts any digits there).
fn port_ok(url: &str) -> bool {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let authority = rest.split('/').next().unwrap_or_default();
    let host_port = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    let port = match host_port.strip_prefix('[') {
        // An IPv6 address: the port, if any, follows the bracket.
        Some(v6) => v6.split_once(']').and_then(|(_, r)| r.strip_prefix(':')),
        None => host_port.rsplit_once(':').map(|(_, p)| p),
    };
    port.is_none_or(|p| p.parse::<u16>().is_ok_and(|p| p > 0))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a panic is how a test fails
mod tests {
    use super::*;

    fn env(pairs: &'static [(&'static str, &'static str)]) -> impl Fn(&str) -> Option<String> {
        move |name| {
            pairs
                .iter()
                .find(|(n, _)| *n == name)
                .map(|(_, v)| (*v).to_owned())
        }
    }

    #[test]
    fn proxy_urls_are_accepted() {
        for value in [
            "http://proxy.internal:3128",
            "proxy.internal:3128",
            "http://user:secret@10.0.0.1:8080",
            "https://proxy.internal",
        ] {
            let pairs: &'static [(&str, &str)] = Box::leak(Box::new([("HTTPS_PROXY", value)]));
            assert!(check_proxy_variables(env(pairs)).is_ok(), "{value}");
        }
        assert!(check_proxy_variables(env(&[])).is_ok());
        assert!(check_proxy_variables(env(&[("HTTP_PROXY", "  ")])).is_ok());
    }

    #[test]
    fn a_proxy_variable_that_is_not_a_url_is_named() {
        let e = check_proxy_variables(env(&[("https_proxy", "ftp://proxy:21")])).unwrap_err();
        assert_eq!(e.code, "InvalidProxyUrl");
        assert!(e.message.contains("https_proxy=\"ftp://proxy:21\""), "{e}");
        let e = check_proxy_variables(env(&[("HTTP_PROXY", "http://pro xy:80")])).unwrap_err();
        assert!(e.message.starts_with("HTTP_PROXY="), "{e}");
        for bad in ["proxy:99999", "http://proxy:0", "http://u:p@proxy:x1/"] {
            let pairs: &'static [(&str, &str)] = Box::leak(Box::new([("ALL_PROXY", bad)]));
            assert!(check_proxy_variables(env(pairs)).is_err(), "{bad}");
        }
        assert!(port_ok("http://[::1]:3128"));
        assert!(port_ok("http://[::1]"));
    }
}
