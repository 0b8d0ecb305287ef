//! The one duration grammar of manifests and flags: jiff's "friendly"
//! format (<https://docs.rs/jiff/latest/jiff/fmt/friendly/index.html>),
//! so `30s`, `500ms`, `1.5s`, `5m`, `1h30m`, `1h 30m` and
//! `2 hours 30 minutes` all read as expected, plus a bare `0`. Units go
//! from largest to smallest, at most hours (a day is not always 24 hours);
//! only the last may have a fraction. Negative durations (`-5m`,
//! `5m ago`) are refused. Each field and flag keeps its own bounds on
//! top (see [`parse_within`]).

use std::fmt;
use std::time::Duration;

/// Examples shown in every error, so that a reader sees what is meant.
const EXAMPLES: &str = "a duration like \"30s\", \"500ms\", \"5m\" or \"1h30m\"";

/// Why a duration was refused; the display names what was found.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum DurationError {
    /// Not in the grammar.
    #[error("expected {EXAMPLES}, found {found:?}{}", hint(.reason))]
    Syntax {
        /// The text.
        found: String,
        /// jiff's reason, when it says more than "not a duration".
        reason: Option<String>,
    },
    /// Below zero.
    #[error("a duration must not be negative, found {0:?}")]
    Negative(String),
    /// Outside the field's or flag's bounds.
    #[error("{bound}, found {found:?}")]
    OutOfBounds {
        /// The text.
        found: String,
        /// What the bounds are ("must be at least 1s").
        bound: String,
    },
}

fn hint(reason: &Option<String>) -> String {
    reason
        .as_ref()
        .map(|r| format!(" ({r})"))
        .unwrap_or_default()
}

/// Parses a duration of the grammar above.
pub fn parse(text: &str) -> Result<Duration, DurationError> {
    if text == "0" {
        return Ok(Duration::ZERO);
    }
    let syntax = |reason: Option<String>| DurationError::Syntax {
        found: text.to_owned(),
        reason,
    };
    // ISO 8601 (`PT1H`) parses too, but is not advertised; it starts with
    // a letter, so a text that starts with neither a digit nor a sign
    // gets the short error.
    let signed: jiff::SignedDuration = text.parse().map_err(|e: jiff::Error| {
        let reason = e.to_string();
        // jiff prefixes every message with the format's name; what
        // follows is the part worth reading.
        let useful = reason
            .rsplit_once("format: ")
            .map(|(_, r)| r.to_owned())
            .filter(|r| r.contains("largest to smallest") || r.contains("calendar units"));
        syntax(useful)
    })?;
    if signed.is_negative() {
        return Err(DurationError::Negative(text.to_owned()));
    }
    Duration::try_from(signed).map_err(|_| syntax(None))
}

/// Parses a duration and checks it lies within `min..=max`.
pub fn parse_within(text: &str, min: Duration, max: Duration) -> Result<Duration, DurationError> {
    let d = parse(text)?;
    let bound = if d < min {
        format!("must be at least {}", show(min))
    } else if d > max {
        format!("must be at most {}", show(max))
    } else {
        return Ok(d);
    };
    Err(DurationError::OutOfBounds {
        found: text.to_owned(),
        bound,
    })
}

/// Shows a duration in the grammar, briefly (`1h30m`, `500ms`, `0s`).
pub fn show(d: Duration) -> String {
    Shown(d).to_string()
}

struct Shown(Duration);

impl fmt::Display for Shown {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let d = self.0;
        if d.is_zero() {
            return f.write_str("0s");
        }
        let secs = d.as_secs();
        let (h, m, s) = (secs / 3600, secs / 60 % 60, secs % 60);
        let ms = d.subsec_millis();
        let sub_ms = d.subsec_nanos() % 1_000_000;
        for (n, unit) in [(h, "h"), (m, "m"), (s, "s"), (u64::from(ms), "ms")] {
            if n > 0 {
                write!(f, "{n}{unit}")?;
            }
        }
        if sub_ms > 0 {
            write!(f, "{sub_ms}ns")?;
        }
        Ok(())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a panic is how a test fails
mod tests {
    use super::*;

    #[test]
    fn the_grammar() {
        for (text, secs_f) in [
            ("0", 0.0),
            ("0s", 0.0),
            ("30s", 30.0),
            ("500ms", 0.5),
            ("1.5s", 1.5),
            ("5m", 300.0),
            ("1h30m", 5400.0),
            ("1h 30m", 5400.0),
            ("1.5h", 5400.0),
            ("2 hours 30 minutes", 9000.0),
            ("1h30m15s500ms", 5415.5),
        ] {
            assert_eq!(parse(text).unwrap().as_secs_f64(), secs_f, "{text}");
        }
        for bad in [
            "",
            "30",
            "5mm",
            "1m1h",
            "1d",
            " 5m",
            "1h,30m",
            "five minutes",
            "99999999999999999999h",
        ] {
            assert!(
                matches!(parse(bad), Err(DurationError::Syntax { .. })),
                "{bad}: {:?}",
                parse(bad)
            );
        }
        for negative in ["-5m", "5m ago"] {
            assert_eq!(
                parse(negative),
                Err(DurationError::Negative(negative.into()))
            );
        }
    }

    #[test]
    fn errors_read_well() {
        assert_eq!(
            parse("30").unwrap_err().to_string(),
            "expected a duration like \"30s\", \"500ms\", \"5m\" or \"1h30m\", found \"30\""
        );
        let e = parse("1m1h").unwrap_err().to_string();
        assert!(e.ends_with("found \"1m1h\" (found value with unit hour after unit minute, but units must be written from largest to smallest (and they can't be repeated))"), "{e}");
        assert_eq!(
            parse_within("500ms", Duration::from_secs(1), Duration::MAX)
                .unwrap_err()
                .to_string(),
            "must be at least 1s, found \"500ms\""
        );
    }

    #[test]
    fn shown_as_parsed() {
        for d in [0, 1, 500, 1000, 90_000, 5_400_000, 5_415_500] {
            let d = Duration::from_millis(d);
            assert_eq!(parse(&show(d)).unwrap(), d, "{}", show(d));
        }
        assert_eq!(show(Duration::from_secs(5400)), "1h30m");
        assert_eq!(show(Duration::from_millis(1500)), "1s500ms");
    }
}
