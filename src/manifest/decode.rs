//! Typed decoding of a document's `spec`, with serde's messages rewritten
//! as "expected …, found …" and the path of the field that failed.

use super::node::{FieldPath, Seg};
use serde::de::DeserializeOwned;

/// Why a spec did not decode: where, whether the position is a key's (an
/// unknown field) rather than a value's, and what was wrong.
#[derive(Debug)]
pub(crate) struct DecodeError {
    pub path: FieldPath,
    pub at_key: bool,
    pub message: String,
    /// For a missing field: its name.
    pub missing: Option<String>,
}

/// The most decoding errors reported for one document.
const MAX_ERRORS: usize = 20;

/// Decodes `value` (found at `base`) into `T`, reporting every field that
/// does not fit rather than only the first: after each error the offending
/// field is removed and decoding tried again. A required field removed that
/// way is not reported again as missing.
pub(crate) fn decode_all<T: DeserializeOwned>(
    mut value: serde_json::Value,
    base: &FieldPath,
) -> Result<T, Vec<DecodeError>> {
    let mut errors: Vec<DecodeError> = Vec::new();
    let mut removed: Vec<FieldPath> = Vec::new();
    // Every attempt removes a key, so this ends; the bound keeps a
    // pathological document cheap.
    for _ in 0..MAX_ERRORS * 4 {
        if errors.len() >= MAX_ERRORS {
            break;
        }
        let e = match decode::<T>(value.clone(), base) {
            Ok(t) if errors.is_empty() => return Ok(t),
            Ok(_) => break,
            Err(e) => e,
        };
        // Remove the deepest mapping key on the path (for a missing field,
        // the mapping that lacks it): list indices stay valid, and the value
        // cannot fail again.
        let target = match &e.missing {
            // A required field that was removed above: not reported again.
            Some(field) if removed.contains(&e.path.key(field)) => deepest_key(&e.path),
            _ => {
                let t = deepest_key(&e.path);
                errors.push(e);
                t
            }
        };
        let Some(target) = target.filter(|t| t.0.len() > base.0.len()) else {
            break;
        };
        if !remove(&mut value, &target.0[base.0.len()..]) {
            break;
        }
        removed.push(target);
    }
    Err(errors)
}

/// The path up to and including its last mapping key.
fn deepest_key(path: &FieldPath) -> Option<FieldPath> {
    let i = path.0.iter().rposition(|s| matches!(s, Seg::Key(_)))?;
    Some(FieldPath(path.0[..=i].to_vec()))
}

/// Removes the value at `path` (ending with a key) from `value`.
fn remove(value: &mut serde_json::Value, path: &[Seg]) -> bool {
    let Some((last, parents)) = path.split_last() else {
        return false;
    };
    let mut cur = value;
    for seg in parents {
        let next = match (seg, cur) {
            (Seg::Key(k), serde_json::Value::Object(m)) => m.get_mut(k),
            (Seg::Index(i), serde_json::Value::Array(a)) => a.get_mut(*i),
            _ => None,
        };
        match next {
            Some(n) => cur = n,
            None => return false,
        }
    }
    match (last, cur) {
        (Seg::Key(k), serde_json::Value::Object(m)) => m.remove(k).is_some(),
        _ => false,
    }
}

/// Decodes `value` (found at `base`) into `T`.
pub(crate) fn decode<T: DeserializeOwned>(
    value: serde_json::Value,
    base: &FieldPath,
) -> Result<T, DecodeError> {
    serde_path_to_error::deserialize::<_, T>(value).map_err(|e| {
        let mut path = base.clone();
        for seg in e.path().iter() {
            match seg {
                serde_path_to_error::Segment::Seq { index } => path.0.push(Seg::Index(*index)),
                serde_path_to_error::Segment::Map { key } => path.0.push(Seg::Key(key.clone())),
                serde_path_to_error::Segment::Enum { variant } => {
                    path.0.push(Seg::Key(variant.clone()))
                }
                serde_path_to_error::Segment::Unknown => {}
            }
        }
        let raw = e.inner().to_string();
        let at_key = raw.starts_with("unknown field");
        let missing = raw
            .strip_prefix("missing field `")
            .and_then(|r| r.strip_suffix('`'))
            .map(str::to_owned);
        DecodeError {
            path,
            at_key,
            message: translate(&raw),
            missing,
        }
    })
}

/// Rewrites serde's messages in the manifest's words.
pub(crate) fn translate(msg: &str) -> String {
    if let Some(rest) = msg.strip_prefix("unknown field ") {
        // unknown field `x`, expected one of `a`, `b`  |  expected `a`  |  there are no fields
        if let Some((field, tail)) = rest.split_once(", ") {
            let tail = tail.strip_prefix("expected ").unwrap_or(tail);
            let tail = tail.strip_prefix("one of ").unwrap_or(tail);
            if tail == "there are no fields" {
                return format!("unknown field {field}; this mapping takes no fields");
            }
            return format!(
                "unknown field {field}; expected one of: {}",
                unquote_list(tail)
            );
        }
        return format!("unknown field {rest}");
    }
    if let Some(rest) = msg.strip_prefix("missing field ") {
        return format!("missing required field {rest}");
    }
    if let Some(rest) = msg.strip_prefix("unknown variant ")
        && let Some((found, tail)) = rest.split_once(", expected ")
    {
        let tail = tail.strip_prefix("one of ").unwrap_or(tail);
        let found = found.trim_matches('`');
        return format!("expected one of {}, found {found:?}", unquote_list(tail));
    }
    for prefix in ["invalid type: ", "invalid value: "] {
        if let Some(rest) = msg.strip_prefix(prefix)
            && let Some((found, expected)) = rest.split_once(", expected ")
        {
            return format!(
                "expected {}, found {}",
                expected_text(expected),
                found_text(found)
            );
        }
    }
    if let Some(rest) = msg.strip_prefix("invalid length ")
        && let Some((n, expected)) = rest.split_once(", expected ")
    {
        return format!("expected {}, found {n} items", expected_text(expected));
    }
    msg.to_owned()
}

fn unquote_list(s: &str) -> String {
    s.replace('`', "").replace(" or ", ", ")
}

fn expected_text(e: &str) -> String {
    match e {
        "i64" | "i32" | "isize" => "an integer".into(),
        "u64" | "u32" | "usize" => "a non-negative integer".into(),
        "u16" => "an integer from 0 to 65535".into(),
        "u8" => "an integer from 0 to 255".into(),
        "f64" | "f32" => "a number".into(),
        "a sequence" => "a list".into(),
        "a map" => "a mapping".into(),
        "a boolean" | "a string" => e.into(),
        _ if e.starts_with("struct ") => "a mapping".into(),
        "enum Protocol" => "one of tcp, udp, icmp, all".into(),
        "enum VolumeType" => "one of gp2, gp3, io1, io2, st1, sc1, standard".into(),
        "enum DeletionPolicy" => "one of retain, delete, snapshot".into(),
        "enum ListenerProtocol" => "one of HTTP, HTTPS, TCP, SSL".into(),
        _ => e.replace('`', ""),
    }
}

fn found_text(f: &str) -> String {
    if let Some(s) = f.strip_prefix("string ") {
        return s.to_owned();
    }
    for prefix in ["integer ", "floating point ", "boolean "] {
        if let Some(v) = f.strip_prefix(prefix) {
            return v.trim_matches('`').to_owned();
        }
    }
    match f {
        "map" => "a mapping".into(),
        "sequence" => "a list".into(),
        "unit value" | "null" => "null".into(),
        _ => f.to_owned(),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a panic is how a test fails
mod tests {
    use super::*;

    #[derive(Debug, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Rule {
        port: Option<i64>,
        cidr: String,
    }

    #[derive(Debug, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Spec {
        zones: Vec<String>,
        replicas: Option<i64>,
        #[serde(default)]
        rules: Vec<Rule>,
    }

    #[test]
    fn every_field_that_does_not_fit_is_reported() {
        let v = serde_json::json!({
            "zones": [1],
            "replicas": "two",
            "extra": true,
            "rules": [{"port": "x", "cidr": "c"}, {"cidr": 5, "oops": 1}],
        });
        let errors = decode_all::<Spec>(v, &FieldPath::spec()).unwrap_err();
        let paths: Vec<String> = errors.iter().map(|e| e.path.to_string()).collect();
        // Removed required fields (`rules[1].cidr`, `zones`) are not
        // reported again as missing.
        assert_eq!(
            paths,
            [
                "spec.extra",
                "spec.replicas",
                "spec.rules[0].port",
                "spec.rules[1].cidr",
                "spec.rules[1].oops",
                "spec.zones[0]",
            ],
            "{errors:?}"
        );
        let missing = decode_all::<Spec>(serde_json::json!({}), &FieldPath::spec()).unwrap_err();
        assert_eq!(missing.len(), 1);
        assert_eq!(missing[0].message, "missing required field `zones`");
    }

    #[test]
    fn messages_say_expected_and_found() {
        assert_eq!(
            translate("invalid type: string \"two\", expected i64"),
            "expected an integer, found \"two\""
        );
        assert_eq!(
            translate("invalid type: map, expected a string"),
            "expected a string, found a mapping"
        );
        assert_eq!(
            translate("unknown field `replica`, expected one of `image`, `zones`"),
            "unknown field `replica`; expected one of: image, zones"
        );
        assert_eq!(
            translate("unknown variant `gp4`, expected one of `gp2`, `gp3`"),
            "expected one of gp2, gp3, found \"gp4\""
        );
        assert_eq!(
            translate("unknown variant `x`, expected `a` or `b`"),
            "expected one of a, b, found \"x\""
        );
        assert_eq!(
            translate("missing field `image`"),
            "missing required field `image`"
        );
        assert_eq!(
            translate("invalid type: floating point `1.5`, expected i64"),
            "expected an integer, found 1.5"
        );
    }
}
