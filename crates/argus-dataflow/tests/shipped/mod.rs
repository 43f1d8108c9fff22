//! The shipped registry and rules (`config/`), compiled as `argus run` and `argus replay` do.

use std::sync::Arc;

use argus_model::Registry;
use argus_rules::RuleSet;

/// The shipped rules bound to the shipped registry.
pub fn rules() -> Arc<RuleSet> {
    let registry = Registry::from_toml_str(
        include_str!("../../../../config/registry.toml"),
        "registry.toml",
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let rules = RuleSet::compile(
        include_str!("../../../../config/rules.toml"),
        "rules.toml",
        &registry,
    )
    .unwrap_or_else(|e| panic!("{e}"));
    Arc::new(rules)
}
