//! How inputs become rows: readings labelled with their enterprise, alert transitions with
//! their enterprise's town, both from the registry (pure: no I/O).

use std::collections::HashMap;
use std::sync::Arc;

use argus_model::{Reading, Registry, Timestamp};
use argus_rules::AlertTransition;

use crate::rows::{alert_rows, AlertEventRow, AlertRow, ReadingRow};

/// The registry's enterprise of each point and town of each enterprise.
#[derive(Debug, Clone, Default)]
pub struct Labels {
    enterprise_of: Arc<HashMap<String, String>>,
    town_of: Arc<HashMap<String, String>>,
}

impl Labels {
    /// The labels of a registry.
    pub fn new(registry: &Registry) -> Self {
        let enterprise_of = registry
            .points()
            .map(|p| (p.mn.as_str().to_owned(), p.enterprise_id.clone()))
            .collect();
        let town_of = registry
            .enterprises()
            .map(|e| (e.id.clone(), e.town.clone()))
            .collect();
        Self {
            enterprise_of: Arc::new(enterprise_of),
            town_of: Arc::new(town_of),
        }
    }

    /// The rows of readings (labelled with their enterprise; empty when unregistered).
    pub fn reading_rows(&self, readings: &[Reading]) -> Vec<ReadingRow> {
        readings
            .iter()
            .map(|r| {
                let enterprise = self
                    .enterprise_of
                    .get(r.source.as_str())
                    .map_or("", String::as_str);
                ReadingRow::new(r, enterprise)
            })
            .collect()
    }

    /// The rows of alert transitions: their events and the alerts' current rows (labelled
    /// with the enterprise's town), recorded at `recorded`.
    pub fn transition_rows(
        &self,
        transitions: &[AlertTransition],
        recorded: Timestamp,
    ) -> (Vec<AlertEventRow>, Vec<AlertRow>) {
        transitions
            .iter()
            .map(|t| {
                let town = self
                    .town_of
                    .get(&*t.instance.enterprise_id)
                    .map_or("", String::as_str);
                alert_rows(t, town, recorded)
            })
            .unzip()
    }
}
