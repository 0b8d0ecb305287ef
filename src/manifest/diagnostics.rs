//! Validation errors, printed like compiler diagnostics:
//! `manifests/x/app.yaml:12:3: Fleet/app: spec.replicas: expected an integer, found "two"`.

use std::fmt;
use std::path::PathBuf;

/// One problem found in a stack's manifests.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Diagnostic {
    /// The manifest file (or, for a problem with the directory as a whole,
    /// the directory).
    pub file: PathBuf,
    /// The line, 1-based, when known.
    pub line: Option<u64>,
    /// The column, 1-based, when known.
    pub column: Option<u64>,
    /// The resource, like `Fleet/app`, when the problem belongs to one.
    pub resource: Option<String>,
    /// The field, like `spec.ingress[0].cidr`, when the problem belongs to one.
    pub field: Option<String>,
    /// What was expected and what was found, lowercase.
    pub message: String,
}

impl Diagnostic {
    /// A problem with a file or directory as a whole.
    pub fn new(file: impl Into<PathBuf>, message: impl Into<String>) -> Self {
        Self {
            file: file.into(),
            line: None,
            column: None,
            resource: None,
            field: None,
            message: message.into(),
        }
    }

    /// Sets the position.
    pub fn at(mut self, line: Option<u64>, column: Option<u64>) -> Self {
        self.line = line;
        self.column = column;
        self
    }
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file.display())?;
        if let Some(line) = self.line {
            write!(f, ":{line}")?;
            if let Some(column) = self.column {
                write!(f, ":{column}")?;
            }
        }
        f.write_str(": ")?;
        if let Some(r) = &self.resource {
            write!(f, "{r}: ")?;
        }
        if let Some(field) = &self.field {
            write!(f, "{field}: ")?;
        }
        f.write_str(&self.message)
    }
}

impl std::error::Error for Diagnostic {}

/// Every problem found in a stack's manifests (never only the first), in
/// file and line order. `Display` prints one per line and a count.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Diagnostics(pub Vec<Diagnostic>);

impl Diagnostics {
    /// How many problems there are.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The problems.
    pub fn iter(&self) -> std::slice::Iter<'_, Diagnostic> {
        self.0.iter()
    }
}

impl fmt::Display for Diagnostics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for d in &self.0 {
            writeln!(f, "{d}")?;
        }
        match self.0.len() {
            1 => f.write_str("1 error found"),
            n => write!(f, "{n} errors found"),
        }
    }
}

impl std::error::Error for Diagnostics {}

impl<'a> IntoIterator for &'a Diagnostics {
    type Item = &'a Diagnostic;
    type IntoIter = std::slice::Iter<'a, Diagnostic>;

    fn into_iter(self) -> Self::IntoIter {
        self.0.iter()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a panic is how a test fails
mod tests {
    use super::*;

    #[test]
    fn prints_like_a_compiler() {
        let d = Diagnostic {
            file: "manifests/x/app.yaml".into(),
            line: Some(12),
            column: Some(3),
            resource: Some("Fleet/app".into()),
            field: Some("spec.replicas".into()),
            message: "expected an integer, found \"two\"".into(),
        };
        assert_eq!(
            d.to_string(),
            "manifests/x/app.yaml:12:3: Fleet/app: spec.replicas: expected an integer, found \"two\""
        );
        let dir = Diagnostic::new("manifests/x", "no manifest files");
        assert_eq!(dir.to_string(), "manifests/x: no manifest files");
        let all = Diagnostics(vec![d, dir]);
        assert!(all.to_string().ends_with("\n2 errors found"));
    }
}
