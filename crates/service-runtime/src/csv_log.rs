//! Append-only CSV files that survive restarts: `output/sockshop_metrics.csv`,
//! `output/predictions_<model>.csv`, `output/decisions.csv`.
//!
//! The header is written once, when the file is new or empty; later runs append below it. A file
//! whose header differs (written by another version) is refused at start rather than mixed with
//! rows of another layout. Writes go to the blocking pool and are flushed per batch, so a crash
//! loses at most the batch being written; `append_durable` also waits for the disk.

use anyhow::Context;
use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

/// An open append-only CSV file.
#[derive(Clone)]
pub struct CsvLog {
    /// The file, for messages.
    path: PathBuf,
    /// The writer, shared with the blocking pool that does the writes.
    writer: Arc<Mutex<csv::Writer<File>>>,
}

impl CsvLog {
    /// Opens `path` for appending, creating it (and its directory) with `header` if needed.
    /// `setting` names the option that chose the path, for error messages.
    pub fn open(path: &Path, header: &[&str], setting: &str) -> anyhow::Result<Self> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)
                .with_context(|| format!("cannot create {} for {setting}", dir.display()))?;
        }
        let existing = match File::open(path) {
            Ok(file) => BufReader::new(file).lines().next().transpose()?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(e) => anyhow::bail!("cannot read {} ({setting}): {e}", path.display()),
        };
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .with_context(|| format!("cannot open {} ({setting}) for appending", path.display()))?;
        let mut writer = csv::WriterBuilder::new()
            .has_headers(false)
            .from_writer(file);
        match existing.as_deref().map(str::trim_end) {
            None | Some("") => {
                writer.write_record(header)?;
                writer.flush()?;
            }
            Some(found) if found == header.join(",") => {}
            Some(_) => anyhow::bail!(
                "{} has other columns than this version writes; move it aside or set {setting} to a new file",
                path.display()
            ),
        }
        Ok(Self {
            path: path.to_owned(),
            writer: Arc::new(Mutex::new(writer)),
        })
    }

    /// The file appended to.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Appends the rows and flushes, on the blocking pool.
    pub async fn append(&self, rows: Vec<Vec<String>>) -> anyhow::Result<()> {
        self.write(rows, false).await
    }

    /// Appends the rows, flushes and waits until they are on disk (`fdatasync`): for records a
    /// crash must not lose, such as a decision that changed replicas.
    pub async fn append_durable(&self, rows: Vec<Vec<String>>) -> anyhow::Result<()> {
        self.write(rows, true).await
    }

    async fn write(&self, rows: Vec<Vec<String>>, durable: bool) -> anyhow::Result<()> {
        let writer = self.writer.clone();
        tokio::task::spawn_blocking(move || -> anyhow::Result<()> {
            let mut writer = writer
                .lock()
                .map_err(|_| anyhow::anyhow!("CSV writer poisoned"))?;
            for row in &rows {
                writer.write_record(row)?;
            }
            writer.flush()?;
            if durable {
                writer.get_ref().sync_data()?;
            }
            Ok(())
        })
        .await?
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn header_once_appends_across_reopens_and_refuses_other_layouts() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("out/log.csv");
        let log = CsvLog::open(&path, &["a", "b"], "TEST_PATH").unwrap();
        log.append(vec![vec!["1".into(), "2".into()]])
            .await
            .unwrap();
        let log = CsvLog::open(&path, &["a", "b"], "TEST_PATH").unwrap();
        log.append_durable(vec![vec!["3".into(), "4".into()]])
            .await
            .unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "a,b\n1,2\n3,4\n");
        let err = CsvLog::open(&path, &["a", "c"], "TEST_PATH")
            .err()
            .unwrap()
            .to_string();
        assert!(
            err.contains("other columns") && err.contains("TEST_PATH"),
            "{err}"
        );
    }
}
