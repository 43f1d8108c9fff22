//! The spool: batches of rows kept on local disk while ClickHouse is unreachable, so inputs can
//! still be acknowledged (the spool is durable: each batch is written to a temporary file,
//! synced, renamed into place and the directory synced), then written to ClickHouse oldest
//! first when it returns. Bounded in bytes: when full, the sink waits instead (backpressure).
//! One file per batch, named by a sequence number; a file that cannot be read back (a crash
//! half way through writing one) is moved aside with a `.bad` suffix and reported, never
//! silently dropped.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::rows::{
    AlertEventRow, AlertRow, ConflictRow, EventRow, OutboxRow, ReadingRow, RejectedRow,
    TicketEventRow, TicketRow,
};

/// The rows of one batch, for every table Argus writes.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RowBatch {
    /// `readings` rows.
    pub readings: Vec<ReadingRow>,
    /// `rejected_inputs` rows.
    pub rejected: Vec<RejectedRow>,
    /// `alert_events` rows.
    pub alert_events: Vec<AlertEventRow>,
    /// `alerts` rows.
    pub alerts: Vec<AlertRow>,
    /// `ticket_events` rows.
    pub ticket_events: Vec<TicketEventRow>,
    /// `tickets` rows.
    pub tickets: Vec<TicketRow>,
    /// `events` rows (absent from batches spooled before they were stored).
    #[serde(default)]
    pub events: Vec<EventRow>,
    /// `conflicts` rows found among its readings ([`crate::rows::first_writes`]). Written with
    /// the batch (again on a retry: they replace themselves) and left in it for the writer to
    /// hand on once the batch is in; not counted in [`RowBatch::len`].
    #[serde(default)]
    pub conflicts: Vec<ConflictRow>,
    /// `outbox` rows: the batch's ticket changes to deliver (written before them).
    #[serde(default)]
    pub outbox: Vec<OutboxRow>,
    /// Readings dropped as delivered again with the value on record (counted, not kept).
    #[serde(default)]
    pub duplicates: u64,
}

impl RowBatch {
    /// Rows in all tables.
    pub fn len(&self) -> usize {
        self.readings.len()
            + self.rejected.len()
            + self.alert_events.len()
            + self.alerts.len()
            + self.ticket_events.len()
            + self.tickets.len()
            + self.events.len()
            + self.outbox.len()
    }

    /// Whether it has no rows.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// The spool could not keep or give back a batch.
#[derive(Debug, thiserror::Error)]
pub enum SpoolError {
    /// Keeping it would exceed the configured size.
    #[error("spool {dir} is full ({bytes} of {max_bytes} bytes)")]
    Full {
        /// The spool directory.
        dir: PathBuf,
        /// Bytes in use.
        bytes: u64,
        /// The limit.
        max_bytes: u64,
    },
    /// The file system refused.
    #[error("spool {path}: {source}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
    /// A batch file could not be decoded (torn by a crash while written): it was renamed to
    /// `path` (`.bad`) for someone to look at; the batches after it go on.
    #[error("spool batch unreadable, set aside as {path}: {reason}")]
    SetAside {
        /// Where it is now.
        path: PathBuf,
        /// Why it could not be read.
        reason: String,
    },
    /// A batch could not be encoded.
    #[error("spool: cannot encode a batch: {0}")]
    Encode(serde_json::Error),
}

/// A spooled batch, oldest first by `seq`.
#[derive(Debug)]
pub struct Spooled {
    /// Its sequence number.
    pub seq: u64,
    /// Its rows.
    pub batch: RowBatch,
}

/// Batches on disk, in order.
#[derive(Debug)]
pub struct Spool {
    dir: PathBuf,
    max_bytes: u64,
    /// (seq, bytes) of the files kept, oldest first.
    files: Vec<(u64, u64)>,
    next: u64,
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> SpoolError + '_ {
    move |source| SpoolError::Io {
        path: path.to_owned(),
        source,
    }
}

impl Spool {
    /// Open (creating) the spool in `dir`, finding the batches left by an earlier run.
    pub fn open(dir: &Path, max_bytes: u64) -> Result<Self, SpoolError> {
        fs::create_dir_all(dir).map_err(io(dir))?;
        let mut files = Vec::new();
        for entry in fs::read_dir(dir).map_err(io(dir))? {
            let entry = entry.map_err(io(dir))?;
            let name = entry.file_name();
            let Some(seq) = name
                .to_str()
                .and_then(|n| n.strip_suffix(".batch"))
                .and_then(|n| n.parse::<u64>().ok())
            else {
                continue;
            };
            let bytes = entry.metadata().map_err(io(&entry.path()))?.len();
            files.push((seq, bytes));
        }
        files.sort_unstable();
        let next = files.last().map_or(1, |(seq, _)| seq + 1);
        Ok(Self {
            dir: dir.to_owned(),
            max_bytes,
            files,
            next,
        })
    }

    /// Batches kept.
    pub fn len(&self) -> usize {
        self.files.len()
    }

    /// Whether no batch is kept.
    pub fn is_empty(&self) -> bool {
        self.files.is_empty()
    }

    /// Bytes kept.
    pub fn bytes(&self) -> u64 {
        self.files.iter().map(|(_, b)| b).sum()
    }

    fn path(&self, seq: u64) -> PathBuf {
        self.dir.join(format!("{seq:020}.batch"))
    }

    /// Write batch file `seq` durably: a temporary file, synced, renamed into place, and the
    /// directory synced.
    fn write(&self, seq: u64, bytes: &[u8]) -> Result<(), SpoolError> {
        let path = self.path(seq);
        let tmp = self.dir.join(format!("{seq:020}.tmp"));
        let mut file = fs::File::create(&tmp).map_err(io(&tmp))?;
        file.write_all(bytes).map_err(io(&tmp))?;
        file.sync_all().map_err(io(&tmp))?;
        fs::rename(&tmp, &path).map_err(io(&path))?;
        fs::File::open(&self.dir)
            .and_then(|d| d.sync_all())
            .map_err(io(&self.dir))
    }

    /// Keep a batch, durably: on return it survives a crash.
    pub fn push(&mut self, batch: &RowBatch) -> Result<(), SpoolError> {
        let bytes = serde_json::to_vec(batch).map_err(SpoolError::Encode)?;
        let used = self.bytes();
        if used + bytes.len() as u64 > self.max_bytes {
            return Err(SpoolError::Full {
                dir: self.dir.clone(),
                bytes: used,
                max_bytes: self.max_bytes,
            });
        }
        let seq = self.next;
        self.write(seq, &bytes)?;
        self.files.push((seq, bytes.len() as u64));
        self.next = seq + 1;
        Ok(())
    }

    /// The oldest batch, if any. One that cannot be read back is moved aside (`.bad`) and
    /// reported in the error; the next call gives the one after it.
    pub fn oldest(&mut self) -> Result<Option<Spooled>, SpoolError> {
        let Some(&(seq, _)) = self.files.first() else {
            return Ok(None);
        };
        let path = self.path(seq);
        let bytes = fs::read(&path).map_err(io(&path))?;
        match serde_json::from_slice(&bytes) {
            Ok(batch) => Ok(Some(Spooled { seq, batch })),
            Err(e) => {
                self.files.remove(0);
                let bad = path.with_extension("bad");
                fs::rename(&path, &bad).map_err(io(&bad))?;
                Err(SpoolError::SetAside {
                    path: bad,
                    reason: e.to_string(),
                })
            }
        }
    }

    /// Put a batch back in front of the others (what is left of the oldest after part of it was
    /// written), under a sequence number before theirs.
    pub fn push_front(&mut self, batch: &RowBatch) -> Result<(), SpoolError> {
        let seq = self
            .files
            .first()
            .map_or(self.next, |(s, _)| *s)
            .saturating_sub(1);
        let bytes = serde_json::to_vec(batch).map_err(SpoolError::Encode)?;
        self.write(seq, &bytes)?;
        self.files.insert(0, (seq, bytes.len() as u64));
        Ok(())
    }

    /// Forget the oldest batch, once written to ClickHouse.
    pub fn pop(&mut self, seq: u64) -> Result<(), SpoolError> {
        if self.files.first().map(|(s, _)| *s) != Some(seq) {
            return Ok(());
        }
        let path = self.path(seq);
        fs::remove_file(&path).map_err(io(&path))?;
        self.files.remove(0);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn batch(n: usize) -> RowBatch {
        RowBatch {
            readings: (0..n)
                .map(|i| ReadingRow {
                    source: format!("MN{i}"),
                    metric: "a21026".to_owned(),
                    event_ms: i as i64,
                    event_time: 0,
                    value: i as f64,
                    flag: "N".to_owned(),
                    enterprise_id: "E001".to_owned(),
                    receive_ms: 0,
                    data_interval: "real_time".to_owned(),
                    corrected: None,
                })
                .collect(),
            ..RowBatch::default()
        }
    }

    fn dir(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("argus-spool-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        dir
    }

    #[test]
    fn batches_come_back_in_order_and_survive_a_reopen() {
        let dir = dir("order");
        let mut spool = Spool::open(&dir, 1 << 20).unwrap_or_else(|e| panic!("{e}"));
        for n in 1..=3 {
            spool.push(&batch(n)).unwrap_or_else(|e| panic!("{e}"));
        }
        let first = spool
            .oldest()
            .unwrap_or_else(|e| panic!("{e}"))
            .unwrap_or_else(|| panic!("empty"));
        assert_eq!(first.batch, batch(1));
        spool.pop(first.seq).unwrap_or_else(|e| panic!("{e}"));
        // A new process finds the rest, in order, and numbers new batches after them.
        let mut spool = Spool::open(&dir, 1 << 20).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(spool.len(), 2);
        spool.push(&batch(4)).unwrap_or_else(|e| panic!("{e}"));
        let mut sizes = Vec::new();
        while let Some(s) = spool.oldest().unwrap_or_else(|e| panic!("{e}")) {
            sizes.push(s.batch.readings.len());
            spool.pop(s.seq).unwrap_or_else(|e| panic!("{e}"));
        }
        assert_eq!(sizes, [2, 3, 4]);
        assert!(spool.is_empty());
        let _ = fs::remove_dir_all(dir);
    }

    #[test]
    fn a_full_spool_refuses_and_a_torn_file_is_set_aside() {
        let dir = dir("full");
        let one = serde_json::to_vec(&batch(10))
            .map(|v| v.len() as u64)
            .unwrap_or(0);
        let mut spool = Spool::open(&dir, one * 2).unwrap_or_else(|e| panic!("{e}"));
        spool.push(&batch(10)).unwrap_or_else(|e| panic!("{e}"));
        spool.push(&batch(10)).unwrap_or_else(|e| panic!("{e}"));
        let full = spool
            .push(&batch(10))
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(full.contains("is full"), "{full}");
        // The first file is torn (a crash while it was written by hand, say).
        fs::write(dir.join(format!("{:020}.batch", 1)), b"{\"readings\":[")
            .unwrap_or_else(|e| panic!("{e}"));
        let bad = spool
            .oldest()
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(bad.contains(".bad"), "{bad}");
        assert!(dir.join(format!("{:020}.bad", 1)).exists());
        let next = spool
            .oldest()
            .unwrap_or_else(|e| panic!("{e}"))
            .unwrap_or_else(|| panic!("empty"));
        assert_eq!(next.batch, batch(10));
        let _ = fs::remove_dir_all(dir);
    }
}
