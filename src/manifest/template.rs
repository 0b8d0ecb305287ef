//! Templates such as user data: literal text with `${Kind/name.attr}`
//! references to other resources and `${env:NAME}` references to the
//! environment. `$${` is a literal `${`.

use converge_core::desired::Attr;
use converge_core::ids::Kind;

/// A piece of a parsed template, before references are checked against the
/// stack.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Piece {
    Text(String),
    Ref {
        kind: Kind,
        name: String,
        attr: Attr,
    },
    Env(String),
}

/// Parses a template. Every malformed reference is reported (not only the
/// first); the pieces that did parse are returned alongside.
pub(crate) fn parse(s: &str) -> (Vec<Piece>, Vec<String>) {
    let mut pieces = Vec::new();
    let mut errors = Vec::new();
    let mut text = String::new();
    let mut rest = s;
    while let Some(i) = rest.find('$') {
        text.push_str(&rest[..i]);
        let after = &rest[i..];
        if let Some(tail) = after.strip_prefix("$${") {
            text.push_str("${");
            rest = tail;
        } else if let Some(tail) = after.strip_prefix("${") {
            let Some(end) = tail.find('}') else {
                errors.push(format!(
                    "unterminated reference {:?}: close it with `}}`, or write `$${{` for a literal `${{`",
                    preview(after)
                ));
                text.push_str(after);
                rest = "";
                break;
            };
            let inner = &tail[..end];
            match reference(inner) {
                Ok(p) => {
                    if !text.is_empty() {
                        pieces.push(Piece::Text(std::mem::take(&mut text)));
                    }
                    pieces.push(p);
                }
                Err(e) => errors.push(e),
            }
            rest = &tail[end + 1..];
        } else {
            text.push('$');
            rest = &after[1..];
        }
    }
    text.push_str(rest);
    if !text.is_empty() {
        pieces.push(Piece::Text(text));
    }
    (pieces, errors)
}

fn preview(s: &str) -> String {
    let mut p: String = s.chars().take(40).collect();
    if p.len() < s.len() {
        p.push('…');
    }
    p
}

fn kinds_with_attributes() -> String {
    Kind::ALL
        .into_iter()
        .filter(|k| !Attr::of_kind(*k).is_empty())
        .map(Kind::as_str)
        .collect::<Vec<_>>()
        .join(", ")
}

fn attr_list(kind: Kind) -> String {
    Attr::of_kind(kind)
        .iter()
        .map(|a| a.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

fn reference(inner: &str) -> Result<Piece, String> {
    let shown = format!("${{{}}}", preview(inner));
    if let Some(name) = inner.strip_prefix("env:") {
        if super::check::env_name(name) {
            return Ok(Piece::Env(name.to_owned()));
        }
        return Err(format!(
            "bad reference {shown:?}: expected ${{env:NAME}} with a variable name of letters, digits and _"
        ));
    }
    let expected = "expected ${Kind/name.attribute} (like ${Fleet/db.privateIp}) or ${env:NAME}";
    let Some((kind_text, target)) = inner.split_once('/') else {
        return Err(format!("bad reference {shown:?}: {expected}"));
    };
    let Some((name, attr_text)) = target.split_once('.') else {
        return Err(format!("bad reference {shown:?}: {expected}"));
    };
    let Some(kind) = Kind::parse(kind_text) else {
        return Err(format!(
            "bad reference {shown:?}: unknown kind {kind_text:?}; references can name {}",
            kinds_with_attributes()
        ));
    };
    if Attr::of_kind(kind).is_empty() {
        return Err(format!(
            "bad reference {shown:?}: a {kind} has no attributes to refer to; references can name {}",
            kinds_with_attributes()
        ));
    }
    let Some(attr) = Attr::parse(kind, attr_text) else {
        return Err(format!(
            "bad reference {shown:?}: a {kind} has no attribute {attr_text:?}; expected one of {}",
            attr_list(kind)
        ));
    };
    if name.is_empty() {
        return Err(format!("bad reference {shown:?}: {expected}"));
    }
    Ok(Piece::Ref {
        kind,
        name: name.to_owned(),
        attr,
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a panic is how a test fails
mod tests {
    use super::*;

    #[test]
    fn text_references_and_escapes() {
        let (p, e) = parse("role=app;db=${Fleet/db.privateIp};k=${env:API_KEY};lit=$${x} $5 $$");
        assert!(e.is_empty(), "{e:?}");
        assert_eq!(
            p,
            vec![
                Piece::Text("role=app;db=".into()),
                Piece::Ref {
                    kind: Kind::Fleet,
                    name: "db".into(),
                    attr: Attr::PrivateIp
                },
                Piece::Text(";k=".into()),
                Piece::Env("API_KEY".into()),
                Piece::Text(";lit=${x} $5 $$".into()),
            ]
        );
    }

    #[test]
    fn every_bad_reference_is_reported() {
        let (_, e) =
            parse("${Fleet/db.ip} ${Bucket/b.arn} ${Thing/x.y} ${oops} ${env:1X} ${Fleet/db");
        assert_eq!(e.len(), 6, "{e:?}");
        assert!(e[0].contains("privateIp, privateIps"), "{}", e[0]);
        assert!(e[1].contains("no attributes"), "{}", e[1]);
        assert!(e[2].contains("Fleet, Volume, Balancer, Cdn"), "{}", e[2]);
        assert!(e[5].contains("unterminated"), "{}", e[5]);
    }

    #[test]
    fn unicode_is_kept() {
        let (p, e) = parse("é${Volume/v.id}ü$");
        assert!(e.is_empty());
        assert_eq!(p.len(), 3);
        assert_eq!(p[2], Piece::Text("ü$".into()));
    }
}
