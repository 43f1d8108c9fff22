//! HJ 212 data flags: the state of the instrument when a value was measured.

use std::fmt;

use serde::{Deserialize, Serialize};

/// The data flag an HJ 212 data logger attaches to each value (`-Flag` field, HJ 212-2017
/// table 8). Only [`DataFlag::N`] values count towards regulatory averages and limit checks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
pub enum DataFlag {
    /// Instrument working normally.
    #[default]
    N,
    /// Stopped (the monitored facility is not operating).
    F,
    /// Maintenance.
    M,
    /// Manually entered set value.
    S,
    /// Instrument fault.
    D,
    /// Calibration.
    C,
    /// Over the upper limit of the measuring range.
    T,
    /// Communication abnormal.
    B,
}

impl DataFlag {
    /// All flags in HJ 212 order.
    pub const ALL: [DataFlag; 8] = [
        DataFlag::N,
        DataFlag::F,
        DataFlag::M,
        DataFlag::S,
        DataFlag::D,
        DataFlag::C,
        DataFlag::T,
        DataFlag::B,
    ];

    /// Parse the one-letter wire form. Lower case is accepted: some loggers send it.
    pub fn from_char(c: char) -> Option<Self> {
        Some(match c.to_ascii_uppercase() {
            'N' => DataFlag::N,
            'F' => DataFlag::F,
            'M' => DataFlag::M,
            'S' => DataFlag::S,
            'D' => DataFlag::D,
            'C' => DataFlag::C,
            'T' => DataFlag::T,
            'B' => DataFlag::B,
            _ => return None,
        })
    }

    /// The one-letter wire form.
    pub const fn as_char(self) -> char {
        match self {
            DataFlag::N => 'N',
            DataFlag::F => 'F',
            DataFlag::M => 'M',
            DataFlag::S => 'S',
            DataFlag::D => 'D',
            DataFlag::C => 'C',
            DataFlag::T => 'T',
            DataFlag::B => 'B',
        }
    }

    /// Whether a value with this flag is valid data for averages and limit checks.
    pub const fn is_valid(self) -> bool {
        matches!(self, DataFlag::N)
    }
}

impl fmt::Display for DataFlag {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.as_char())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wire_form_round_trips_and_only_n_is_valid() {
        for flag in DataFlag::ALL {
            assert_eq!(DataFlag::from_char(flag.as_char()), Some(flag));
            assert_eq!(flag.is_valid(), flag == DataFlag::N);
        }
        assert_eq!(DataFlag::from_char('d'), Some(DataFlag::D));
        assert_eq!(DataFlag::from_char('X'), None);
    }
}
