//! The S3 and CloudFront rules several layers share (issue 11 B): the
//! bucket-policy statement that lets one distribution read a private
//! bucket, the origin access control converge makes for it, the
//! `Content-Type` an object gets from its extension, and the paths an
//! invalidation names. Read by the manifest resolver, the planner, the
//! local cloud and the AWS backend alike.

use crate::observed::OriginAccessSettings;
use serde::Deserialize;
use serde_json::value::RawValue;
use std::collections::BTreeMap;

/// The bucket tag that records the headers converge last uploaded the
/// content with (a digest of its `Cache-Control` and of the
/// content-type table): ListObjectsV2 lists no headers, so a bucket
/// whose tag matches is taken to hold objects with the right headers.
pub const CONTENT_TAG: &str = "converge:content";
/// The largest object one PUT uploads (5 GiB); converge does no multipart
/// uploads.
pub const MAX_PUT_BYTES: u64 = 5 * 1024 * 1024 * 1024;
/// The most keys one DeleteObjects call takes.
pub const MAX_DELETE_KEYS: usize = 1000;
/// More changed paths than this are invalidated as one `/*`.
pub const MAX_INVALIDATION_PATHS: usize = 15;
/// The longest name an origin access control may have.
pub const MAX_OAC_NAME: usize = 64;
/// The Sid prefix of the statements converge writes for distributions.
pub const GRANT_SID_PREFIX: &str = "converge-cdn-";
/// The start of the description of every origin access control converge
/// makes (OACs carry no tags).
pub const OAC_DESCRIPTION_PREFIX: &str = "converge:";

/// Bumped when [`content_type`] changes, so every bucket's content is
/// uploaded again with the new types.
const CONTENT_TYPES_VERSION: &str = "1";

/// The origin access control of a stack's distribution.
pub fn oac_name(stack: &str, cdn: &str) -> String {
    format!("converge-{stack}-{cdn}")
}

/// The settings converge gives that control: SigV4, always signing, an
/// S3 origin.
pub fn oac_settings(stack: &str, cdn: &str) -> OriginAccessSettings {
    OriginAccessSettings {
        description: format!(
            "{OAC_DESCRIPTION_PREFIX} origin access of Cdn/{cdn} in stack {stack}"
        ),
        signing_protocol: "sigv4".into(),
        signing_behavior: "always".into(),
        origin_type: "s3".into(),
    }
}

/// The Sid of the statement that lets a distribution read its bucket.
pub fn grant_sid(cdn: &str) -> String {
    format!("{GRANT_SID_PREFIX}{cdn}")
}

/// The statement, exactly as converge writes it.
pub fn grant_statement(sid: &str, bucket: &str, distribution_arn: &str) -> String {
    serde_json::json!({
        "Sid": sid,
        "Effect": "Allow",
        "Principal": { "Service": "cloudfront.amazonaws.com" },
        "Action": "s3:GetObject",
        "Resource": format!("arn:aws:s3:::{bucket}/*"),
        "Condition": { "StringEquals": { "AWS:SourceArn": distribution_arn } },
    })
    .to_string()
}

/// A policy document: its statements kept as they were written.
struct Doc<'a> {
    version: Option<&'a RawValue>,
    id: Option<&'a RawValue>,
    statements: Vec<&'a RawValue>,
}

fn parse(policy: &str) -> Result<Doc<'_>, String> {
    #[derive(Deserialize)]
    struct Top<'a> {
        #[serde(rename = "Version", borrow, default)]
        version: Option<&'a RawValue>,
        #[serde(rename = "Id", borrow, default)]
        id: Option<&'a RawValue>,
        #[serde(rename = "Statement", borrow, default)]
        statement: Option<&'a RawValue>,
    }
    let top: Top<'_> =
        serde_json::from_str(policy).map_err(|e| format!("the policy is not valid JSON: {e}"))?;
    let statements = match top.statement {
        None => Vec::new(),
        Some(raw) if raw.get().trim_start().starts_with('[') => {
            serde_json::from_str::<Vec<&RawValue>>(raw.get())
                .map_err(|e| format!("the policy's Statement is not valid: {e}"))?
        }
        Some(raw) => vec![raw],
    };
    Ok(Doc {
        version: top.version,
        id: top.id,
        statements,
    })
}

fn sid_of(statement: &RawValue) -> Option<String> {
    #[derive(Deserialize)]
    struct Sid {
        #[serde(rename = "Sid", default)]
        sid: Option<String>,
    }
    serde_json::from_str::<Sid>(statement.get()).ok()?.sid
}

/// The statements of `policy` that converge wrote for distributions, by
/// Sid: the distribution ARN, or `None` when the statement is not
/// exactly what converge writes (it is written again). An error when
/// the policy is not JSON.
pub fn read_grants(policy: &str, bucket: &str) -> Result<BTreeMap<String, Option<String>>, String> {
    let doc = parse(policy)?;
    let mut out = BTreeMap::new();
    for s in doc.statements {
        let Some(sid) = sid_of(s).filter(|sid| sid.starts_with(GRANT_SID_PREFIX)) else {
            continue;
        };
        let value: serde_json::Value = serde_json::from_str(s.get()).unwrap_or_default();
        let arn = value
            .pointer("/Condition/StringEquals/AWS:SourceArn")
            .and_then(|v| v.as_str())
            .map(str::to_owned);
        let exact = arn.as_ref().filter(|arn| {
            serde_json::from_str::<serde_json::Value>(&grant_statement(&sid, bucket, arn)).ok()
                == Some(value.clone())
        });
        out.insert(sid, exact.cloned());
    }
    Ok(out)
}

/// `policy` with the statement of `sid` replaced by `statement` (or
/// removed when `None`), every other statement kept byte for byte;
/// `None` when no statement is left (the policy is deleted). A missing
/// policy is an empty one.
pub fn with_statement(
    policy: Option<&str>,
    sid: &str,
    statement: Option<&str>,
) -> Result<Option<String>, String> {
    let doc = match policy {
        Some(p) => parse(p)?,
        None => Doc {
            version: None,
            id: None,
            statements: Vec::new(),
        },
    };
    let mut kept: Vec<&str> = doc
        .statements
        .iter()
        .filter(|s| sid_of(s).as_deref() != Some(sid))
        .map(|s| s.get())
        .collect();
    if let Some(s) = statement {
        kept.push(s);
    }
    if kept.is_empty() {
        return Ok(None);
    }
    let version = doc.version.map_or("\"2012-10-17\"", RawValue::get);
    let id = doc
        .id
        .map(|i| format!(",\"Id\":{}", i.get()))
        .unwrap_or_default();
    Ok(Some(format!(
        "{{\"Version\":{version}{id},\"Statement\":[{}]}}",
        kept.join(",")
    )))
}

/// The `Content-Type` of a key, from its extension.
pub fn content_type(key: &str) -> &'static str {
    let ext = key
        .rsplit('/')
        .next()
        .and_then(|name| name.rsplit_once('.'))
        .map(|(_, ext)| ext.to_ascii_lowercase())
        .unwrap_or_default();
    match ext.as_str() {
        "html" | "htm" => "text/html; charset=utf-8",
        "css" => "text/css; charset=utf-8",
        "js" | "mjs" => "text/javascript; charset=utf-8",
        "json" => "application/json",
        "map" => "application/json",
        "txt" => "text/plain; charset=utf-8",
        "xml" => "application/xml",
        "csv" => "text/csv; charset=utf-8",
        "svg" => "image/svg+xml",
        "png" => "image/png",
        "jpg" | "jpeg" => "image/jpeg",
        "gif" => "image/gif",
        "webp" => "image/webp",
        "avif" => "image/avif",
        "ico" => "image/x-icon",
        "woff" => "font/woff",
        "woff2" => "font/woff2",
        "ttf" => "font/ttf",
        "otf" => "font/otf",
        "pdf" => "application/pdf",
        "wasm" => "application/wasm",
        "mp4" => "video/mp4",
        "webm" => "video/webm",
        "zip" => "application/zip",
        _ => "application/octet-stream",
    }
}

/// The value of [`CONTENT_TAG`] for content uploaded with this
/// `Cache-Control`.
pub fn content_digest(cache_control: Option<&str>) -> String {
    crate::spec_hash::short_digest(&[CONTENT_TYPES_VERSION, cache_control.unwrap_or("")])
}

/// The paths an invalidation of these keys names: `/KEY` each, sorted, or
/// one `/*` when there are more than [`MAX_INVALIDATION_PATHS`]. A key
/// that is the distribution's default root object also invalidates `/`,
/// which CloudFront caches separately. Characters outside RFC 3986's
/// unreserved set (and `/`) are percent-encoded, as CloudFront asks of
/// paths with non-ASCII or unsafe characters
/// (<https://docs.aws.amazon.com/AmazonCloudFront/latest/DeveloperGuide/invalidation-specifying-objects.html>);
/// a `*` in a key is a literal there, not a wildcard.
pub fn invalidation_paths<'k>(
    keys: impl IntoIterator<Item = &'k str>,
    root_object: Option<&str>,
) -> Vec<String> {
    let mut paths = Vec::new();
    for k in keys {
        if root_object == Some(k) {
            paths.push("/".to_owned());
        }
        paths.push(format!("/{}", percent_encode_path(k)));
    }
    paths.sort();
    paths.dedup();
    if paths.len() > MAX_INVALIDATION_PATHS {
        vec!["/*".to_owned()]
    } else {
        paths
    }
}

/// `key` with every byte outside `A-Z a-z 0-9 - . _ ~ /` as `%XX`.
fn percent_encode_path(key: &str) -> String {
    let mut out = String::with_capacity(key.len());
    for b in key.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~' | b'/') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Whether a path (relative, with `/`) matches a glob of
/// `Bucket.content.exclude`: `*` matches within one path segment, `**`
/// across segments, `?` one character; a glob without `/` is matched
/// against each file's name, wherever it is (`*.map`).
pub fn glob_match(glob: &str, path: &str) -> bool {
    if !glob.contains('/') {
        let name = path.rsplit('/').next().unwrap_or(path);
        return matches(glob.as_bytes(), name.as_bytes());
    }
    matches(glob.trim_start_matches('/').as_bytes(), path.as_bytes())
}

fn matches(g: &[u8], p: &[u8]) -> bool {
    match g {
        [] => p.is_empty(),
        [b'*', b'*'] => true,
        [b'*', b'*', rest @ ..] => {
            let rest = rest.strip_prefix(b"/").unwrap_or(rest);
            (0..=p.len()).any(|i| (i == 0 || p[i - 1] == b'/') && matches(rest, &p[i..]))
        }
        [b'*', rest @ ..] => (0..=p.len())
            .take_while(|&i| i == 0 || p[i - 1] != b'/')
            .any(|i| matches(rest, &p[i..])),
        [b'?', rest @ ..] => p.first().is_some_and(|&c| c != b'/') && matches(rest, &p[1..]),
        [c, rest @ ..] => p.first() == Some(c) && matches(rest, &p[1..]),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const OTHER: &str = r#"{ "Sid" : "Logs", "Effect":"Allow","Principal":{"Service":"logging.s3.amazonaws.com"},"Action":"s3:PutObject","Resource":"arn:aws:s3:::b/*"}"#;

    #[test]
    fn a_grant_is_added_replaced_and_removed_keeping_other_statements_byte_for_byte() {
        let policy = format!(r#"{{"Version":"2012-10-17","Id":"p1","Statement":[{OTHER}]}}"#);
        let sid = grant_sid("assets");
        let arn = "arn:aws:cloudfront::123456789012:distribution/E1";
        let with = with_statement(Some(&policy), &sid, Some(&grant_statement(&sid, "b", arn)))
            .expect("valid")
            .expect("a policy");
        assert!(with.contains(OTHER), "{with}");
        assert!(with.contains(r#""Id":"p1""#));
        let grants = read_grants(&with, "b").expect("valid");
        assert_eq!(grants.get(&sid), Some(&Some(arn.to_owned())));
        // Another distribution: replaced, not added.
        let arn2 = "arn:aws:cloudfront::123456789012:distribution/E2";
        let again = with_statement(Some(&with), &sid, Some(&grant_statement(&sid, "b", arn2)))
            .expect("valid")
            .expect("a policy");
        assert_eq!(read_grants(&again, "b").expect("valid").len(), 1);
        let without = with_statement(Some(&again), &sid, None)
            .expect("valid")
            .expect("the other statement");
        assert!(without.contains(OTHER));
        assert!(read_grants(&without, "b").expect("valid").is_empty());
        let only = with_statement(None, &sid, Some(&grant_statement(&sid, "b", arn)))
            .expect("valid")
            .expect("a policy");
        assert_eq!(with_statement(Some(&only), &sid, None), Ok(None));
        assert!(with_statement(Some("not json"), &sid, None).is_err());
        assert!(read_grants("{", "b").is_err());
    }

    #[test]
    fn a_grant_not_as_converge_writes_it_reads_as_drift() {
        let sid = grant_sid("assets");
        let arn = "arn:aws:cloudfront::123456789012:distribution/E1";
        let tampered = grant_statement(&sid, "b", arn).replace("s3:GetObject", "s3:*");
        let policy = format!(r#"{{"Version":"2012-10-17","Statement":{tampered}}}"#);
        assert_eq!(
            read_grants(&policy, "b").expect("valid").get(&sid),
            Some(&None)
        );
        // The wrong bucket is drift too.
        let policy = format!(
            r#"{{"Version":"2012-10-17","Statement":[{}]}}"#,
            grant_statement(&sid, "other", arn)
        );
        assert_eq!(
            read_grants(&policy, "b").expect("valid").get(&sid),
            Some(&None)
        );
    }

    #[test]
    fn content_types_come_from_the_extension() {
        assert_eq!(content_type("index.html"), "text/html; charset=utf-8");
        assert_eq!(content_type("css/site.CSS"), "text/css; charset=utf-8");
        assert_eq!(content_type("img/logo.svg"), "image/svg+xml");
        assert_eq!(content_type("robots.txt"), "text/plain; charset=utf-8");
        assert_eq!(content_type("LICENSE"), "application/octet-stream");
        assert_eq!(content_type("a.b/noext"), "application/octet-stream");
    }

    #[test]
    fn globs_match_like_sync_excludes() {
        assert!(glob_match("*.map", "js/app.js.map"));
        assert!(glob_match("*.map", "app.map"));
        assert!(!glob_match("*.map", "app.js"));
        assert!(glob_match("drafts/*", "drafts/a.html"));
        assert!(!glob_match("drafts/*", "drafts/old/a.html"));
        assert!(glob_match("drafts/**", "drafts/old/a.html"));
        assert!(glob_match("**/x.txt", "x.txt"));
        assert!(glob_match("**/x.txt", "a/b/x.txt"));
        assert!(glob_match("a/?.txt", "a/b.txt"));
        assert!(!glob_match("a/?.txt", "a/bc.txt"));
        assert!(glob_match(".DS_Store", "img/.DS_Store"));
    }

    #[test]
    fn many_paths_are_one_wildcard() {
        assert_eq!(invalidation_paths(["b", "a", "a"], None), vec!["/a", "/b"]);
        let keys: Vec<String> = (0..16).map(|i| format!("k{i}")).collect();
        assert_eq!(
            invalidation_paths(keys.iter().map(String::as_str), None),
            vec!["/*"]
        );
        assert_eq!(
            invalidation_paths(keys[..15].iter().map(String::as_str), None).len(),
            15
        );
    }

    #[test]
    fn the_root_object_invalidates_the_root_and_odd_keys_are_encoded() {
        assert_eq!(
            invalidation_paths(["index.html", "img/a b.png"], Some("index.html")),
            vec!["/", "/img/a%20b.png", "/index.html"]
        );
        assert_eq!(
            invalidation_paths(["café*.css"], Some("index.html")),
            vec!["/caf%C3%A9%2A.css"]
        );
    }
}
