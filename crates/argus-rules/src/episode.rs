//! Episodes: turn a condition judged once per closed window (an hourly average over its limit,
//! an hour with too little valid data) into alert transitions. Consecutive violating windows
//! are one alert, from the start of the first to the start of the first compliant window.

use argus_model::Timestamp;

use crate::Transition;

#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
struct Open {
    since: Timestamp,
    peak: f64,
    sum: f64,
    n: u32,
    reported: f64,
}

/// The open alert (if any) of one windowed condition.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Episode {
    open: Option<Open>,
    updates: bool,
}

impl Episode {
    /// An episode that also reports [`Transition::Updated`] when a window's value is a step
    /// higher than the value last reported (regulatory averages).
    pub fn reporting_updates() -> Self {
        Self {
            open: None,
            updates: true,
        }
    }

    /// Record the verdict on the window starting at `start`: `violated` with `value` (the
    /// window's average, say).
    pub fn window(&mut self, start: Timestamp, violated: bool, value: f64) -> Option<Transition> {
        match (&mut self.open, violated) {
            (None, true) => {
                self.open = Some(Open {
                    since: start,
                    peak: value,
                    sum: value,
                    n: 1,
                    reported: value,
                });
                Some(Transition::Fired {
                    started_at: start,
                    value,
                })
            }
            (Some(open), true) => {
                open.peak = open.peak.max(value);
                open.sum += value;
                open.n += 1;
                if self.updates && crate::worse_by_a_step(open.reported, open.peak, true) {
                    open.reported = open.peak;
                    return Some(Transition::Updated {
                        started_at: open.since,
                        value: open.peak,
                    });
                }
                None
            }
            (Some(open), false) => {
                let resolved = Transition::Resolved {
                    started_at: open.since,
                    ended_at: start,
                    peak: open.peak,
                    mean: open.sum / f64::from(open.n),
                };
                self.open = None;
                Some(resolved)
            }
            (None, false) => None,
        }
    }

    /// Whether an alert is open.
    pub fn is_open(&self) -> bool {
        self.open.is_some()
    }
}
