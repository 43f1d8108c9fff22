//! The registry's error: which file, which line, which field, and why.

use std::fmt;

/// A registry that cannot be loaded. Names the file, the line (where known), the field path
/// (`enterprises[E001].points[MN01].limits[0].max`) and the reason.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct RegistryError {
    /// The file (or other origin) the text came from.
    pub origin: String,
    /// 1-based line, where known.
    pub line: Option<usize>,
    /// Path of the offending field, empty for a syntax error.
    pub field: String,
    /// What is wrong.
    pub reason: String,
}

impl fmt::Display for RegistryError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "invalid registry {}", self.origin)?;
        if let Some(line) = self.line {
            write!(f, " line {line}")?;
        }
        if !self.field.is_empty() {
            write!(f, " at {}", self.field)?;
        }
        write!(f, ": {}", self.reason)
    }
}

/// 1-based line of a byte offset in `text`.
pub(crate) fn line_of(text: &str, offset: usize) -> usize {
    let end = offset.min(text.len());
    text.as_bytes()[..end]
        .iter()
        .filter(|&&b| b == b'\n')
        .count()
        + 1
}
