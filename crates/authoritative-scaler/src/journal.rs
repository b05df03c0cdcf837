//! `output/decisions.csv`: every decision, appended; and what a restarted scaler reads back
//! from it: the next decision number, the windows already decided (their replayed votes are
//! refused), and when each service last scaled (cooldowns hold across restarts).
//!
//! The journal stays small: past [`MAX_BYTES`] it is compacted ([`compact`]) to the rows a
//! restart needs (each service's last scale-up and scale-down, for its cooldowns; the windows
//! decided within the vote age, whose votes could still come again; the newest row, for the
//! numbering), and the full file is kept as `decisions.csv.1`, one generation.
//!
//! Beside it, `decisions.intent.json` holds the one replica change in flight: written and
//! synced to disk before the engine is called, removed once the decision's row is on disk. A
//! scaler killed between the two finds it at start and reconciles it against what the engine
//! has ([`Intent`]), so a change is never made twice nor forgotten.

use chrono::{DateTime, Utc};
use contract::{DecisionOutcome, DecisionRecord};
use serde::{Deserialize, Serialize};
use std::collections::{HashMap, HashSet};
use std::io::{Read as _, Seek as _, Write as _};
use std::path::{Path, PathBuf};

pub use formats::journal::{COLUMNS, row};

/// What a restart needs from earlier decisions.
#[derive(Debug, Default, PartialEq)]
pub struct Restored {
    pub next_decision_id: u64,
    /// (service, window id, when) of every decided window, oldest first.
    pub decided: Vec<(String, u64, DateTime<Utc>)>,
    pub last_scale_up: HashMap<String, DateTime<Utc>>,
    pub last_scale_down: HashMap<String, DateTime<Utc>>,
}

/// Reads the decisions CSV; a missing file restores nothing. Unreadable rows are skipped.
pub fn restore(path: &Path) -> anyhow::Result<Restored> {
    let mut restored = Restored {
        next_decision_id: 1,
        ..Restored::default()
    };
    let mut reader = match csv::Reader::from_path(path) {
        Ok(reader) => reader,
        Err(e) if matches!(e.kind(), csv::ErrorKind::Io(io) if io.kind() == std::io::ErrorKind::NotFound) =>
        {
            return Ok(restored);
        }
        Err(e) => {
            return Err(anyhow::anyhow!(
                "cannot read {} (DECISIONS_CSV): {e}",
                path.display()
            ));
        }
    };
    let rows = reader.records().filter_map(Result::ok);
    for r in rows.filter_map(|row| formats::journal::parse(&row).ok()) {
        restored.next_decision_id = restored.next_decision_id.max(r.decision_id + 1);
        match scaled(&r) {
            Some(true) => {
                _ = restored
                    .last_scale_up
                    .insert(r.service.clone(), r.decided_at)
            }
            Some(false) => {
                _ = restored
                    .last_scale_down
                    .insert(r.service.clone(), r.decided_at)
            }
            None => {}
        }
        restored
            .decided
            .push((r.service, r.window_id, r.decided_at));
    }
    Ok(restored)
}

/// Whether the decision changed the count: up (`true`) or down (`false`).
fn scaled(r: &DecisionRecord) -> Option<bool> {
    (r.outcome == DecisionOutcome::Applied && r.current_replicas != r.target_replicas)
        .then_some(r.target_replicas > r.current_replicas)
}

/// A replica change about to be made, durable before the engine is called: the decision as
/// made, its `current_replicas` the count before and its `target_replicas` the count asked for.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Intent {
    pub decision: DecisionRecord,
}

impl Intent {
    /// Where the intent of the journal at `decisions_csv` is kept.
    pub fn path_beside(decisions_csv: &Path) -> PathBuf {
        decisions_csv.with_extension("intent.json")
    }

    /// Writes the intent to `path` and waits for the disk: a temporary file, synced, renamed
    /// over the old one, and the directory synced, so a crash leaves the old or the new intent.
    pub fn store(&self, path: &Path) -> std::io::Result<()> {
        let tmp = path.with_extension("json.tmp");
        let mut file = std::fs::File::create(&tmp)?;
        file.write_all(&serde_json::to_vec(self).map_err(std::io::Error::other)?)?;
        file.sync_all()?;
        std::fs::rename(&tmp, path)?;
        sync_dir(path)
    }

    /// The intent left at `path` by a scaler that stopped mid-change, if any. A file that is not
    /// an intent is an error: the scaler must not guess what it was doing.
    pub fn load(path: &Path) -> anyhow::Result<Option<Intent>> {
        match std::fs::read(path) {
            Ok(bytes) => serde_json::from_slice(&bytes).map(Some).map_err(|e| {
                anyhow::anyhow!(
                    "{} is not a replica change in flight ({e}); compare it with the engine, then move it aside",
                    path.display()
                )
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(anyhow::anyhow!("cannot read {}: {e}", path.display())),
        }
    }

    /// Removes the intent at `path` once the decision's row is on disk.
    pub fn clear(path: &Path) -> std::io::Result<()> {
        match std::fs::remove_file(path) {
            Ok(()) => sync_dir(path),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(e),
        }
    }
}

/// Syncs the directory holding `path`, so a rename or removal in it survives a crash.
fn sync_dir(path: &Path) -> std::io::Result<()> {
    match path.parent().filter(|d| !d.as_os_str().is_empty()) {
        Some(dir) => std::fs::File::open(dir)?.sync_all(),
        None => std::fs::File::open(".")?.sync_all(),
    }
}

/// Size past which the journal is compacted.
pub const MAX_BYTES: u64 = 8 << 20;

/// Rewrites the journal at `path` to the rows a restart needs: each service's last applied
/// scale-up and scale-down, every row decided at `keep_since` or later, and the newest row. The
/// full file stays as `<path>.1` (replacing an older one); the compacted one replaces it in one
/// rename, so a crash leaves one or the other. The rows kept.
pub fn compact(path: &Path, keep_since: DateTime<Utc>) -> anyhow::Result<usize> {
    let prepared = prepare_compaction(path, std::fs::metadata(path)?.len(), keep_since)?;
    finish_compaction(path, prepared)
}

/// A compaction written beside the journal and synced, for the rows of its first `upto` bytes;
/// [`finish_compaction`] adds the rows appended since and swaps it in.
#[derive(Debug)]
pub struct Prepared {
    tmp: PathBuf,
    upto: u64,
    kept: usize,
}

/// The long part of a compaction, which the scaler runs while it goes on deciding: the rows a
/// restart needs among those in the journal now, streamed twice (the file is never held in
/// memory: at 8 MiB that was most of the scaler's peak) into a file beside it, synced (the
/// sync of megabytes took seconds, during which no decision was made). `upto` is the journal's
/// length read between two appends, where a row ends: appends may go on while this runs.
pub fn prepare_compaction(
    path: &Path,
    upto: u64,
    keep_since: DateTime<Utc>,
) -> anyhow::Result<Prepared> {
    let rows = || -> anyhow::Result<csv::StringRecordsIntoIter<std::io::Take<std::fs::File>>> {
        let file = std::fs::File::open(path)
            .map_err(|e| anyhow::anyhow!("cannot read {} to compact it: {e}", path.display()))?;
        Ok(csv::Reader::from_reader(file.take(upto)).into_records())
    };
    // First pass: where each service last scaled up and down, and how many rows there are.
    let mut last_change: HashMap<(String, bool), usize> = HashMap::new();
    let mut count = 0;
    for (i, row) in rows()?.filter_map(Result::ok).enumerate() {
        count = i + 1;
        if let Some(up) = formats::journal::parse(&row).ok().as_ref().and_then(scaled) {
            last_change.insert((row.get(2).unwrap_or("").to_owned(), up), i);
        }
    }
    let changes: HashSet<usize> = last_change.into_values().collect();
    let tmp = path.with_extension("csv.compact");
    let mut writer = csv::Writer::from_path(&tmp)?;
    writer.write_record(COLUMNS)?;
    let mut kept = 0;
    for (i, row) in rows()?.filter_map(Result::ok).enumerate() {
        let recent = row
            .get(1)
            .and_then(|t| t.parse::<DateTime<Utc>>().ok())
            .is_some_and(|at| at >= keep_since);
        if recent || i + 1 == count || changes.contains(&i) {
            writer.write_record(&row)?;
            kept += 1;
        }
    }
    writer.flush()?;
    writer.get_ref().sync_all()?;
    Ok(Prepared { tmp, upto, kept })
}

/// The short part, run between two appends: the rows appended since the compaction was
/// prepared are copied after it, and it replaces the journal (the full one kept as `.1`). The
/// rows kept.
pub fn finish_compaction(path: &Path, prepared: Prepared) -> anyhow::Result<usize> {
    let Prepared { tmp, upto, kept } = prepared;
    let mut live = std::fs::File::open(path)?;
    live.seek(std::io::SeekFrom::Start(upto))?;
    // Appended between two syncs of a few rows each: small.
    let mut appended = Vec::new();
    live.read_to_end(&mut appended)?;
    let appended_rows = csv::ReaderBuilder::new()
        .has_headers(false)
        .from_reader(appended.as_slice())
        .records()
        .count();
    let mut out = std::fs::OpenOptions::new().append(true).open(&tmp)?;
    out.write_all(&appended)?;
    out.sync_all()?;
    let previous = path.with_extension("csv.1");
    match std::fs::remove_file(&previous) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e.into()),
        _ => {}
    }
    std::fs::hard_link(path, &previous)?;
    std::fs::rename(&tmp, path)?;
    sync_dir(path)?;
    Ok(kept + appended_rows)
}

#[cfg(test)]
mod tests {
    use super::*;
    use contract::{Action, VoteSummary};

    fn record(
        id: u64,
        window_id: u64,
        from: u32,
        to: u32,
        outcome: DecisionOutcome,
    ) -> DecisionRecord {
        DecisionRecord {
            decision_id: id,
            service: "orders".into(),
            window_id,
            strategy: "majority".into(),
            votes: vec![VoteSummary {
                model: "xgboost".into(),
                action: Action::ScaleUp,
                confidence: 0.9,
                safe_replicas: 3,
            }],
            action: Action::ScaleUp,
            average_confidence: 0.9,
            current_replicas: from,
            target_replicas: to,
            outcome,
            reason: "a, with a comma".into(),
            features_produced_at: DateTime::from_timestamp(window_id as i64, 0).unwrap(),
            decided_at: DateTime::from_timestamp(window_id as i64 + 2, 0).unwrap(),
        }
    }

    #[tokio::test]
    async fn restores_ids_windows_and_last_changes() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("decisions.csv");
        assert_eq!(restore(&path).unwrap().next_decision_id, 1);
        let log = service_runtime::csv_log::CsvLog::open(&path, &COLUMNS, "DECISIONS_CSV").unwrap();
        log.append(vec![
            row(&record(7, 100, 2, 4, DecisionOutcome::Applied)),
            row(&record(8, 110, 4, 4, DecisionOutcome::Held)),
            row(&record(9, 120, 4, 3, DecisionOutcome::Applied)),
        ])
        .await
        .unwrap();
        let restored = restore(&path).unwrap();
        assert_eq!(restored.next_decision_id, 10);
        assert_eq!(restored.decided.len(), 3);
        assert_eq!(
            restored.last_scale_up["orders"],
            DateTime::from_timestamp(102, 0).unwrap()
        );
        assert_eq!(
            restored.last_scale_down["orders"],
            DateTime::from_timestamp(122, 0).unwrap()
        );
    }

    #[test]
    fn an_intent_survives_until_cleared_and_a_foreign_file_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = Intent::path_beside(&dir.path().join("decisions.csv"));
        assert_eq!(path, dir.path().join("decisions.intent.json"));
        assert_eq!(Intent::load(&path).unwrap(), None);
        let intent = Intent {
            decision: record(7, 100, 2, 4, DecisionOutcome::Applied),
        };
        intent.store(&path).unwrap();
        assert_eq!(Intent::load(&path).unwrap(), Some(intent.clone()));
        Intent::clear(&path).unwrap();
        Intent::clear(&path).unwrap();
        assert_eq!(Intent::load(&path).unwrap(), None);
        std::fs::write(&path, "{\"decision_id\":").unwrap();
        let err = Intent::load(&path).unwrap_err().to_string();
        assert!(err.contains("move it aside"), "{err}");
    }

    /// The scaler prepares a compaction while it goes on appending: the rows appended meanwhile
    /// are in the compacted journal too.
    #[tokio::test]
    async fn rows_appended_while_a_compaction_is_prepared_are_kept() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("decisions.csv");
        let log = service_runtime::csv_log::CsvLog::open(&path, &COLUMNS, "DECISIONS_CSV").unwrap();
        let rows = (1..100).map(|id| row(&record(id, 100 + id * 10, 3, 3, DecisionOutcome::Held)));
        log.append(rows.collect()).await.unwrap();
        let prepared = prepare_compaction(
            &path,
            std::fs::metadata(&path).unwrap().len(),
            DateTime::from_timestamp(1_002, 0).unwrap(),
        )
        .unwrap();
        log.append(vec![
            row(&record(100, 2_000, 3, 5, DecisionOutcome::Applied)),
            row(&record(101, 2_010, 5, 5, DecisionOutcome::Held)),
        ])
        .await
        .unwrap();
        // Ids 90-99 are recent (decided from 1,002 s on), then the two appended.
        assert_eq!(finish_compaction(&path, prepared).unwrap(), 10 + 2);
        let after = restore(&path).unwrap();
        assert_eq!(after.next_decision_id, 102);
        assert_eq!(
            after.last_scale_up["orders"],
            DateTime::from_timestamp(2_002, 0).unwrap()
        );
        assert_eq!(
            restore(&dir.path().join("decisions.csv.1"))
                .unwrap()
                .decided
                .len(),
            101
        );
    }

    #[tokio::test]
    async fn compaction_keeps_what_a_restart_needs() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("decisions.csv");
        let log = service_runtime::csv_log::CsvLog::open(&path, &COLUMNS, "DECISIONS_CSV").unwrap();
        let mut rows = vec![
            row(&record(1, 100, 2, 4, DecisionOutcome::Applied)),
            row(&record(2, 110, 4, 3, DecisionOutcome::Applied)),
        ];
        rows.extend(
            (3..500).map(|id| row(&record(id, 100 + id * 10, 3, 3, DecisionOutcome::Held))),
        );
        log.append(rows).await.unwrap();
        let before = restore(&path).unwrap();
        // Rows decided from window 5,000 on (decided_at = window + 2 s) are recent: ids 490-499.
        let kept = compact(&path, DateTime::from_timestamp(5_002, 0).unwrap()).unwrap();
        let after = restore(&path).unwrap();
        assert_eq!(kept, 2 + 10, "two last changes and ten recent rows");
        assert_eq!(after.next_decision_id, before.next_decision_id);
        assert_eq!(after.last_scale_up, before.last_scale_up);
        assert_eq!(after.last_scale_down, before.last_scale_down);
        assert_eq!(after.decided.last(), before.decided.last());
        assert_eq!(
            restore(&dir.path().join("decisions.csv.1")).unwrap(),
            before
        );
        // The journal goes on below its compacted rows.
        let log = service_runtime::csv_log::CsvLog::open(&path, &COLUMNS, "DECISIONS_CSV").unwrap();
        log.append(vec![row(&record(500, 9_000, 3, 3, DecisionOutcome::Held))])
            .await
            .unwrap();
        assert_eq!(restore(&path).unwrap().next_decision_id, 501);
    }
}
