//! Detection's checkpoints on disk: one file per worker (`worker-<index>.ckpt`, the global
//! index in a cluster), written atomically (a temporary file, synced, renamed over the old one,
//! the folder synced) once the store's sink has made durable everything the checkpoint covers; read back at start and taken only by the same worker of the same
//! layout running the same rules.

use std::io::Write;
use std::path::{Path, PathBuf};

use argus_dataflow::Checkpoint;
use argus_rules::RuleSet;
use argus_telemetry::Telemetry;

use crate::ServiceError;

/// The folder of the checkpoints.
#[derive(Debug, Clone)]
pub struct CheckpointDir {
    dir: PathBuf,
}

impl CheckpointDir {
    /// Checkpoints in `dir` (created when the first is saved).
    pub fn new(dir: PathBuf) -> Self {
        Self { dir }
    }

    fn path(&self, worker: usize) -> PathBuf {
        self.dir.join(format!("worker-{worker}.ckpt"))
    }

    /// The checkpoint of `worker` (of `peers`) for `rules`, if there is one it can take back;
    /// says why not otherwise.
    pub fn load(&self, worker: usize, peers: usize, rules: &RuleSet) -> Option<Checkpoint> {
        let path = self.path(worker);
        let bytes = match std::fs::read(&path) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                tracing::info!(worker, path = %path.display(), "no checkpoint: detection starts empty");
                return None;
            }
            Err(e) => {
                tracing::error!(worker, path = %path.display(), "cannot read the checkpoint ({e}): detection starts empty");
                return None;
            }
        };
        let checked = Checkpoint::decode(&bytes).and_then(|cp| {
            cp.check(worker, peers, rules)?;
            Ok(cp)
        });
        match checked {
            Ok(cp) => {
                tracing::info!(
                    worker,
                    until = %cp.until().to_rfc3339(),
                    bytes = bytes.len(),
                    "checkpoint taken back"
                );
                Some(cp)
            }
            Err(e) => {
                tracing::warn!(worker, path = %path.display(), "checkpoint not taken back ({e}): detection starts empty");
                None
            }
        }
    }

    /// What saves checkpoints here (the folder is created now).
    pub fn writer(&self, telemetry: Telemetry) -> Result<CheckpointWriter, ServiceError> {
        std::fs::create_dir_all(&self.dir)
            .map_err(|e| ServiceError::build("checkpoint folder", e))?;
        Ok(CheckpointWriter {
            dir: self.clone(),
            telemetry,
        })
    }
}

/// Saves checkpoints (a small file per worker, once per checkpoint interval: written where the
/// sink acknowledges, synchronously, so a checkpoint is on disk when its acknowledgement ends).
#[derive(Debug, Clone)]
pub struct CheckpointWriter {
    dir: CheckpointDir,
    telemetry: Telemetry,
}

impl CheckpointWriter {
    /// Save `cp` over the worker's previous one; a failure keeps the previous one (logged).
    pub fn save(&self, cp: &Checkpoint) {
        let bytes = cp.encode();
        match write_atomically(&self.dir.dir, &self.dir.path(cp.worker), &bytes) {
            Ok(()) => {
                let detect = &self.telemetry.detect;
                detect.checkpoints.inc();
                detect
                    .checkpoint_bytes
                    .set(i64::try_from(bytes.len()).unwrap_or(i64::MAX));
                tracing::debug!(
                    worker = cp.worker,
                    until = %cp.until().to_rfc3339(),
                    bytes = bytes.len(),
                    "checkpoint saved"
                );
            }
            Err(e) => tracing::error!(
                worker = cp.worker,
                "cannot save the checkpoint ({e}); the previous one stays"
            ),
        }
    }
}

/// Replace `path` (in `dir`) with `bytes`, all or nothing, durably.
fn write_atomically(dir: &Path, path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let tmp = path.with_extension("ckpt.tmp");
    {
        let mut file = std::fs::File::create(&tmp)?;
        file.write_all(bytes)?;
        file.sync_all()?;
    }
    std::fs::rename(&tmp, path)?;
    std::fs::File::open(dir)?.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_checkpoint_file_is_replaced_whole() {
        let dir = std::env::temp_dir().join(format!("argus-ckpt-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("{e}"));
        let path = dir.join("worker-0.ckpt");
        write_atomically(&dir, &path, b"first").unwrap_or_else(|e| panic!("{e}"));
        write_atomically(&dir, &path, b"second").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(std::fs::read(&path).unwrap_or_default(), b"second");
        assert!(!path.with_extension("ckpt.tmp").exists());
        let registry = argus_model::Registry::from_toml_str(
            include_str!("../../../config/registry.toml"),
            "registry.toml",
        )
        .unwrap_or_else(|e| panic!("{e}"));
        let rules = RuleSet::compile(
            include_str!("../../../config/rules.toml"),
            "rules.toml",
            &registry,
        )
        .unwrap_or_else(|e| panic!("{e}"));
        let none = CheckpointDir::new(dir.clone()).load(0, 1, &rules);
        assert!(none.is_none(), "not a checkpoint: not taken back");
        let _ = std::fs::remove_dir_all(dir);
    }
}
