//! The four-level warning scale used by Chinese emergency and supervision practice.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// Severity of an alert: blue (level IV, lowest) to red (level I, highest). Ordered, so
/// `Severity::Red > Severity::Blue`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// Level IV: general; watch.
    Blue,
    /// Level III: relatively serious.
    Yellow,
    /// Level II: serious.
    Orange,
    /// Level I: especially serious.
    Red,
}

impl Severity {
    /// All levels, lowest first.
    pub const ALL: [Severity; 4] = [
        Severity::Blue,
        Severity::Yellow,
        Severity::Orange,
        Severity::Red,
    ];

    /// The lowercase name used in configuration, storage and metrics labels.
    pub const fn as_str(self) -> &'static str {
        match self {
            Severity::Blue => "blue",
            Severity::Yellow => "yellow",
            Severity::Orange => "orange",
            Severity::Red => "red",
        }
    }
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Severity {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Severity::ALL
            .into_iter()
            .find(|level| level.as_str() == s)
            .ok_or_else(|| format!("unknown severity {s:?} (expected blue, yellow, orange or red)"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ordered_lowest_to_highest_and_parsed_by_name() {
        assert!(Severity::Blue < Severity::Yellow && Severity::Orange < Severity::Red);
        for level in Severity::ALL {
            assert_eq!(level.as_str().parse::<Severity>(), Ok(level));
        }
        assert!("purple".parse::<Severity>().is_err());
    }
}
