//! The durations and steps of the rules the scenario plans its violations around (how long a
//! gap, a flag, a zero must last), read from the rules file's text. The rules themselves (ids,
//! limits, which point has which check) come from the compiled `RuleSet`.

/// Rule parameters the scenario needs. [`RuleParams::default`] is `config/rules.toml`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RuleParams {
    /// `missing_data.max_gap_secs`, in ms.
    pub missing_gap_ms: i64,
    /// `flag_duration.max_flag_secs`, in ms.
    pub flag_max_ms: i64,
    /// `zero_while_operating.min_duration_secs`, in ms.
    pub zero_min_ms: i64,
    /// `constant_value.min_readings`.
    pub constant_min_readings: i64,
    /// `constant_value.min_duration_secs`, in ms.
    pub constant_min_ms: i64,
    /// `sudden_jump.max_step` (of O2).
    pub jump_max_step: f64,
    /// `treatment_stopped.min_duration_secs`, in ms.
    pub treatment_min_ms: i64,
    /// `treatment_stopped.max_staleness_secs`, in ms.
    pub treatment_staleness_ms: i64,
    /// `power_cut_failure.max_feedback_delay_secs`, in ms.
    pub feedback_delay_ms: i64,
    /// `out_of_range.range_max` of the oxygen rule (a19001).
    pub o2_range_max: f64,
}

impl Default for RuleParams {
    fn default() -> Self {
        Self {
            missing_gap_ms: 1_800_000,
            flag_max_ms: 14_400_000,
            zero_min_ms: 1_800_000,
            constant_min_readings: 60,
            constant_min_ms: 3_600_000,
            jump_max_step: 8.0,
            treatment_min_ms: 600_000,
            treatment_staleness_ms: 300_000,
            feedback_delay_ms: 30_000,
            o2_range_max: 25.0,
        }
    }
}

impl RuleParams {
    /// The parameters of a rules file (`config/rules.toml` syntax), the defaults for what it
    /// does not say. Only `key = number` lines of `[[rules]]` tables are read; the file is
    /// validated by `RuleSet::compile`, not here.
    pub fn from_rules_toml(text: &str) -> Self {
        let mut params = Self::default();
        let text: String = text
            .lines()
            .map(|line| line.split('#').next().unwrap_or(""))
            .collect::<Vec<_>>()
            .join("\n");
        let body = text.split("[[overrides]]").next().unwrap_or(&text);
        for block in body.split("[[rules]]").skip(1) {
            let mut kind = "";
            let mut numbers: Vec<(&str, f64)> = Vec::new();
            let mut oxygen = false;
            for line in block.lines() {
                let line = line.trim();
                let Some((key, value)) = line.split_once('=') else {
                    continue;
                };
                let (key, value) = (key.trim(), value.trim());
                if key == "kind" {
                    kind = value.trim_matches('"');
                } else if key == "metrics" {
                    oxygen = value.contains("\"a19001\"");
                } else if let Ok(number) = value.parse::<f64>() {
                    numbers.push((key, number));
                }
            }
            let ms = |secs: f64| (secs * 1000.0).round() as i64;
            for (key, value) in numbers {
                match (kind, key) {
                    ("missing_data", "max_gap_secs") => params.missing_gap_ms = ms(value),
                    ("flag_duration", "max_flag_secs") => params.flag_max_ms = ms(value),
                    ("zero_while_operating", "min_duration_secs") => {
                        params.zero_min_ms = ms(value);
                    }
                    ("constant_value", "min_readings") => {
                        params.constant_min_readings = value as i64;
                    }
                    ("constant_value", "min_duration_secs") => params.constant_min_ms = ms(value),
                    ("sudden_jump", "max_step") if oxygen => params.jump_max_step = value,
                    ("treatment_stopped", "min_duration_secs") => {
                        params.treatment_min_ms = ms(value);
                    }
                    ("treatment_stopped", "max_staleness_secs") => {
                        params.treatment_staleness_ms = ms(value);
                    }
                    ("power_cut_failure", "max_feedback_delay_secs") => {
                        params.feedback_delay_ms = ms(value);
                    }
                    ("out_of_range", "range_max") if oxygen => params.o2_range_max = value,
                    _ => {}
                }
            }
        }
        params
    }
}

#[cfg(test)]
mod tests {
    use super::RuleParams;

    #[test]
    fn the_shipped_rules_are_the_defaults() {
        let text = include_str!("../../../config/rules.toml");
        assert_eq!(RuleParams::from_rules_toml(text), RuleParams::default());
        let changed = text.replace("max_gap_secs = 1800", "max_gap_secs = 900");
        assert_eq!(
            RuleParams::from_rules_toml(&changed).missing_gap_ms,
            900_000
        );
    }
}
