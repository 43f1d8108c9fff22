//! The county simulator: realistic feeds for a registry, violations injected at known times,
//! and the ground truth to check detection against.
