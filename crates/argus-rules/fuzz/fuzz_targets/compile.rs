//! Fuzz target: arbitrary text as a rules file, compiled against the example registry (the
//! file staff edit by hand). Nothing may panic; a refusal names a line inside the text.

#![no_main]

use std::sync::OnceLock;

use argus_model::Registry;
use argus_rules::RuleSet;
use libfuzzer_sys::fuzz_target;

fn registry() -> &'static Registry {
    static REGISTRY: OnceLock<Registry> = OnceLock::new();
    REGISTRY.get_or_init(|| {
        let text = include_str!("../../../../config/registry.toml");
        Registry::from_toml_str(text, "registry.toml")
            .unwrap_or_else(|e| panic!("the example registry: {e}"))
    })
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match RuleSet::compile(text, "rules.toml", registry()) {
        Ok(rules) => {
            for point in registry().points() {
                let _ = rules.for_point(point.mn.as_str()).count();
            }
        }
        Err(e) => {
            let lines = text.matches('\n').count() + 1;
            assert!(e.line.is_none_or(|l| l >= 1 && l <= lines), "{e}");
            let _ = e.to_string();
        }
    }
});
