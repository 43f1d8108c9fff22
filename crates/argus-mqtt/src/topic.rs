//! MQTT topic filter matching (`+` and `#` wildcards), to tell which subscription a message of a
//! shared subscription belongs to.

/// Whether `topic` matches `filter` (MQTT 3.1.1 §4.7: `+` one level, `#` the rest).
pub fn matches(filter: &str, topic: &str) -> bool {
    let mut levels = topic.split('/');
    for part in filter.split('/') {
        match (part, levels.next()) {
            ("#", _) => return true,
            ("+", Some(_)) => {}
            (exact, Some(level)) if exact == level => {}
            _ => return false,
        }
    }
    levels.next().is_none()
}

/// The levels of `topic` that stand where `filter` has `+`, in order (`topic` must match).
pub fn wildcard_levels<'a>(filter: &str, topic: &'a str) -> Vec<&'a str> {
    filter
        .split('/')
        .zip(topic.split('/'))
        .filter(|(f, _)| *f == "+")
        .map(|(_, t)| t)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::{matches, wildcard_levels};

    #[test]
    fn wildcard_levels_are_the_names_in_the_topic() {
        assert_eq!(
            wildcard_levels("argus/v1/readings/+/+", "argus/v1/readings/E001/MN1"),
            ["E001", "MN1"]
        );
        assert_eq!(
            wildcard_levels("argus/v1/hj212/+", "argus/v1/hj212/MN1"),
            ["MN1"]
        );
        assert!(wildcard_levels("plant/readings", "plant/readings").is_empty());
    }

    #[test]
    fn wildcards_match_levels() {
        assert!(matches(
            "argus/v1/readings/+/+",
            "argus/v1/readings/E001/MN1"
        ));
        assert!(!matches("argus/v1/readings/+/+", "argus/v1/readings/E001"));
        assert!(!matches(
            "argus/v1/readings/+/+",
            "argus/v1/readings/E001/MN1/x"
        ));
        assert!(matches("argus/v1/hj212/+", "argus/v1/hj212/MN1"));
        assert!(!matches("argus/v1/hj212/+", "argus/v1/readings/MN1"));
        assert!(matches("argus/#", "argus/v1/anything/at/all"));
    }
}
