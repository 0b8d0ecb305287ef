//! Parsing one manifest file's text into documents, with budgets that
//! refuse hostile YAML (alias bombs, deep nesting, huge documents) quickly.

use super::node::Node;
use serde_saphyr::budget::BudgetBreach;
use serde_saphyr::{Location, MessageFormatter, Spanned, UserMessageFormatter};

/// The deepest nesting accepted. Manifests need about 6 levels.
pub(crate) const MAX_DEPTH: usize = 32;
/// The most YAML nodes (scalars, lists, mappings) in one file: about
/// 500 KiB of dense YAML, 1,000 fleets. Larger stacks split into files.
pub(crate) const MAX_NODES: usize = 50_000;
/// The most documents in one file.
pub(crate) const MAX_DOCUMENTS: usize = 10_000;
/// The most aliases (`*name`) in one file.
pub(crate) const MAX_ALIASES: usize = 1_000;
/// The most events replayed by aliases in one file: an alias bomb stops here.
pub(crate) const MAX_REPLAYED_EVENTS: usize = 20_000;

fn options() -> serde_saphyr::Options {
    let mut budget = serde_saphyr::Budget::default();
    budget.max_depth = MAX_DEPTH;
    budget.max_nodes = MAX_NODES;
    budget.max_documents = MAX_DOCUMENTS;
    budget.max_aliases = MAX_ALIASES;
    budget.max_anchors = MAX_ALIASES;
    budget.max_total_scalar_bytes = 4 * super::MAX_FILE_BYTES as usize;
    budget.max_merge_keys = MAX_ALIASES;
    let mut o = serde_saphyr::Options::default();
    o.budget = Some(budget);
    o.alias_limits.max_total_replayed_events = MAX_REPLAYED_EVENTS;
    o.alias_limits.max_replay_stack_depth = MAX_DEPTH;
    // Only `true` and `false` are booleans: `no` (Norway) stays a string.
    o.strict_booleans = true;
    // `0755` stays a string instead of turning into a number.
    o.leading_zero_numbers_as_strings = true;
    o.reject_unsupported_tags = true;
    o.with_snippet = false;
    o
}

/// A YAML syntax error or a refused input.
#[derive(Debug)]
pub(crate) struct YamlError {
    pub message: String,
    pub location: Option<Location>,
}

/// Parses every document of a file. Empty documents are skipped.
pub(crate) fn parse_documents(text: &str) -> Result<Vec<Spanned<Node>>, YamlError> {
    serde_saphyr::from_multiple_with_options::<Spanned<Node>>(text, options()).map_err(|e| {
        YamlError {
            message: message(&e),
            location: e.location().filter(|l| l.line() > 0),
        }
    })
}

fn message(e: &serde_saphyr::Error) -> String {
    let mut inner = e;
    while let serde_saphyr::Error::AliasError { error, .. }
    | serde_saphyr::Error::WithSnippet { error, .. } = inner
    {
        inner = error;
    }
    match inner {
        serde_saphyr::Error::Budget { breach, .. } => budget_message(breach),
        serde_saphyr::Error::AliasReplayLimitExceeded { .. }
        | serde_saphyr::Error::AliasReplayCounterOverflow { .. }
        | serde_saphyr::Error::AliasReplayStackDepthExceeded { .. } => format!(
            "refused: aliases expand to more than {MAX_REPLAYED_EVENTS} YAML events (an alias bomb?)"
        ),
        other => {
            let text = UserMessageFormatter.format_message(other).into_owned();
            let text = text
                .split(", set DuplicateKeyPolicy")
                .next()
                .unwrap_or_default()
                .to_owned();
            if text.contains("recursion limit") {
                format!("refused: nesting deeper than the parser allows ({text})")
            } else if text.contains("reference to unknown value") {
                format!(
                    "invalid YAML: {text} (an alias *name needs an anchor &name earlier in the same document)"
                )
            } else {
                format!("invalid YAML: {text}")
            }
        }
    }
}

fn budget_message(b: &BudgetBreach) -> String {
    match b {
        BudgetBreach::Depth { .. } => {
            format!("refused: nesting deeper than {MAX_DEPTH} levels")
        }
        BudgetBreach::Nodes { .. } => {
            format!("refused: more than {MAX_NODES} YAML nodes in one file")
        }
        BudgetBreach::Documents { .. } => {
            format!("refused: more than {MAX_DOCUMENTS} documents in one file")
        }
        BudgetBreach::Aliases { .. } | BudgetBreach::Anchors { .. } => {
            format!("refused: more than {MAX_ALIASES} aliases or anchors in one file")
        }
        BudgetBreach::AliasAnchorRatio { aliases, anchors } => {
            format!("refused: {aliases} aliases for {anchors} anchors looks like an alias bomb")
        }
        other => format!("refused: the YAML exceeds a parser limit ({other:?})"),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a panic is how a test fails
mod tests {
    use super::*;

    #[test]
    fn many_documents_with_positions() {
        let docs = parse_documents("kind: A\n---\n---\nkind: B\nname: x\n").unwrap();
        assert_eq!(docs.len(), 2);
        assert_eq!(docs[1].referenced.line(), 4);
        let (_, name) = docs[1].value.get("name").unwrap();
        assert_eq!((name.referenced.line(), name.referenced.column()), (5, 7));
    }

    #[test]
    fn syntax_errors_have_a_line() {
        let e = parse_documents("a: [1, 2\nb: 3\n").unwrap_err();
        assert!(e.message.starts_with("invalid YAML"), "{}", e.message);
        assert_eq!(e.location.map(|l| l.line()), Some(2));
    }

    #[test]
    fn duplicate_keys_are_errors() {
        let e = parse_documents("a: 1\na: 2\n").unwrap_err();
        assert!(e.message.contains("duplicate"), "{}", e.message);
        assert!(!e.message.contains("DuplicateKeyPolicy"), "{}", e.message);
    }

    #[test]
    fn norway_stays_a_string() {
        let docs = parse_documents("a: no\nb: 0755\nc: true\n").unwrap();
        assert!(matches!(
            docs[0].value.get("a").unwrap().1.value,
            Node::Str(_)
        ));
        assert!(matches!(
            docs[0].value.get("b").unwrap().1.value,
            Node::Str(_)
        ));
        assert!(matches!(
            docs[0].value.get("c").unwrap().1.value,
            Node::Bool(true)
        ));
    }
}
