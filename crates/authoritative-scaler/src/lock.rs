//! One active scaler per journal: an exclusive lock on `decisions.lock` beside
//! `output/decisions.csv`, held for the process's life.
//!
//! A second scaler on the same journal (started by mistake, `--scale authoritative-scaler=2`,
//! or the new one of a rolling restart) finds the lock taken and stands by: it serves `/metrics`
//! (`scaler_active` 0) and `/healthz`, and reads no vote until the active one stops. The lock is
//! the kernel's (`flock`), released when its holder exits in any way, `kill -9` included, so a
//! crash cannot leave it held; the standby then takes it, reads the journal the other wrote (and
//! settles its change in flight), and goes on. It holds for scalers that share the journal's
//! directory (one host, one `output` volume); scalers on other hosts share the vote topic's
//! consumer group instead, which gives each service's votes to one of them.

use anyhow::Context;
use std::fs::{File, OpenOptions, TryLockError};
use std::io::{Read, Seek, Write};
use std::path::{Path, PathBuf};
use tokio_util::sync::CancellationToken;

/// The lock file of a journal, open.
pub struct ActiveLock {
    pub path: PathBuf,
    file: File,
}

impl ActiveLock {
    /// Opens (or creates) the lock beside `decisions_csv`, without taking it.
    pub fn open(decisions_csv: &Path) -> anyhow::Result<Self> {
        let path = decisions_csv.with_extension("lock");
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)
                .with_context(|| format!("cannot create {} for DECISIONS_CSV", dir.display()))?;
        }
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .with_context(|| format!("cannot open {} (beside DECISIONS_CSV)", path.display()))?;
        Ok(Self { path, file })
    }

    /// Takes the lock if it is free; `false` if another process holds it.
    pub fn try_take(&self) -> anyhow::Result<bool> {
        match self.file.try_lock() {
            Ok(()) => {
                self.sign()?;
                Ok(true)
            }
            Err(TryLockError::WouldBlock) => Ok(false),
            Err(TryLockError::Error(e)) => {
                Err(e).with_context(|| format!("cannot lock {}", self.path.display()))
            }
        }
    }

    /// Waits until the lock is free and takes it; `false` if `stop` came first.
    pub async fn wait(&self, stop: &CancellationToken) -> anyhow::Result<bool> {
        let mut poll = tokio::time::interval(std::time::Duration::from_millis(200));
        loop {
            tokio::select! {
                _ = stop.cancelled() => return Ok(false),
                _ = poll.tick() => {}
            }
            if self.try_take()? {
                return Ok(true);
            }
        }
    }

    /// Who holds the lock, as the holder wrote it.
    pub fn holder(&self) -> String {
        let mut text = String::new();
        let read = File::open(&self.path).and_then(|mut f| f.read_to_string(&mut text));
        match read {
            Ok(_) if !text.trim().is_empty() => format!("held by {}", text.trim()),
            _ => format!("{} is held", self.path.display()),
        }
    }

    /// Writes this process into the lock file, for the standby's log line.
    fn sign(&self) -> anyhow::Result<()> {
        let host = std::fs::read_to_string("/etc/hostname").unwrap_or_default();
        let mut file = &self.file;
        file.set_len(0)?;
        file.rewind()?;
        writeln!(file, "pid {} on {}", std::process::id(), host.trim())
            .with_context(|| format!("cannot write {}", self.path.display()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn one_holder_at_a_time_and_the_next_takes_over_when_it_goes() {
        let dir = tempfile::tempdir().unwrap();
        let csv = dir.path().join("decisions.csv");
        let first = ActiveLock::open(&csv).unwrap();
        assert!(first.try_take().unwrap());
        let second = ActiveLock::open(&csv).unwrap();
        assert!(!second.try_take().unwrap(), "held by the first");
        assert!(
            second
                .holder()
                .contains(&format!("pid {}", std::process::id())),
            "{}",
            second.holder()
        );
        let stop = CancellationToken::new();
        let waiting = tokio::spawn(async move { second.wait(&stop).await.unwrap() });
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
        assert!(!waiting.is_finished(), "the second waits");
        drop(first);
        let took = tokio::time::timeout(std::time::Duration::from_secs(5), waiting)
            .await
            .unwrap()
            .unwrap();
        assert!(took, "the second takes over once the first is gone");
    }
}
