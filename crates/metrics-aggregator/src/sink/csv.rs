//! Development mode: rows appended to the development CSV for retraining.
//!
//! The header is written once, when the file is new or empty; later runs append below it. A file
//! whose header differs (written by another version of the schema) is refused at start rather
//! than mixed with rows of another layout.

use contract::{FeatureVector, csv_header};
use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

/// Appends feature vectors to a CSV file.
#[derive(Clone)]
pub struct CsvSink {
    /// The file, for messages.
    path: PathBuf,
    /// The open writer, shared with the blocking pool that does the writes.
    writer: Arc<Mutex<csv::Writer<File>>>,
}

impl CsvSink {
    /// Opens `path` for appending, creating it (and its directory) with the header if needed.
    pub fn open(path: &Path) -> anyhow::Result<Self> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| {
                anyhow::anyhow!("cannot create {} for DEV_CSV_PATH: {e}", dir.display())
            })?;
        }
        let expected = csv_header().join(",");
        let existing = match File::open(path) {
            Ok(file) => BufReader::new(file).lines().next().transpose()?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(e) => anyhow::bail!("cannot read {} (DEV_CSV_PATH): {e}", path.display()),
        };
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .map_err(|e| {
                anyhow::anyhow!(
                    "cannot open {} (DEV_CSV_PATH) for appending: {e}",
                    path.display()
                )
            })?;
        let mut writer = csv::WriterBuilder::new()
            .has_headers(false)
            .from_writer(file);
        match existing.as_deref().map(str::trim_end) {
            None | Some("") => {
                writer.write_record(csv_header())?;
                writer.flush()?;
            }
            Some(header) if header == expected => {}
            Some(_) => anyhow::bail!(
                "{} has other columns than this version writes; move it aside or set DEV_CSV_PATH to a new file",
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

    /// Appends one row per vector and flushes, on the blocking pool.
    pub async fn append(&self, vectors: Vec<FeatureVector>) -> anyhow::Result<()> {
        let writer = self.writer.clone();
        tokio::task::spawn_blocking(move || -> anyhow::Result<()> {
            let mut writer = writer
                .lock()
                .map_err(|_| anyhow::anyhow!("CSV writer poisoned"))?;
            for vector in &vectors {
                writer.write_record(vector.csv_row())?;
            }
            writer.flush()?;
            Ok(())
        })
        .await?
    }
}
