//! A real Kafka-compatible broker (`tansu`) for one test.

use crate::{free_port, poll_until, try_find_binary};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;
use tokio::process::{Child, Command};

/// A running broker; killed on drop.
pub struct Broker {
    /// `host:port` to bootstrap from.
    bootstrap: String,
    /// Its storage engine URL (`memory://...` or `sqlite://FILE`), and the directory it runs in
    /// (tansu reads a SQLite file name relative to it).
    storage: (String, PathBuf),
    /// The broker process.
    child: Child,
}

impl Broker {
    /// Starts a broker with in-memory storage on a free loopback port and waits until it accepts
    /// connections. The advertised address is an IPv4 literal: librdkafka may resolve `localhost`
    /// to `::1`, where the broker does not listen. Panics if it cannot (for tests).
    pub async fn start() -> Self {
        Self::try_start().await.unwrap_or_else(|e| panic!("{e}"))
    }

    /// Starts a broker like [`Broker::start`], or says why it could not (for programs).
    pub async fn try_start() -> Result<Self, String> {
        let bootstrap = format!("127.0.0.1:{}", free_port());
        let storage = ("memory://tansu/".to_owned(), std::env::temp_dir());
        let child = spawn(&bootstrap, &storage).await?;
        Ok(Self {
            bootstrap,
            storage,
            child,
        })
    }

    /// Starts a broker that keeps its topics, messages and offsets in the SQLite file `db`, so
    /// that it can be restarted ([`Broker::restart`]) with what it had (for fault tests).
    pub async fn start_persistent(db: &Path) -> Self {
        let bootstrap = format!("127.0.0.1:{}", free_port());
        let file = db
            .file_name()
            .and_then(|f| f.to_str())
            .unwrap_or("tansu.db");
        let dir = db.parent().map_or_else(std::env::temp_dir, Path::to_owned);
        let storage = (format!("sqlite://{file}"), dir);
        let child = spawn(&bootstrap, &storage)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        Self {
            bootstrap,
            storage,
            child,
        }
    }

    /// Kills the broker (SIGKILL) and starts it again on the same address and storage.
    pub async fn restart(&mut self) {
        self.kill().await;
        let _ = self.child.wait().await;
        self.child = spawn(&self.bootstrap, &self.storage)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
    }

    /// `host:port` of the broker.
    pub fn bootstrap(&self) -> &str {
        &self.bootstrap
    }

    /// The broker's process id while it runs (for resource figures, e.g. its resident memory).
    pub fn pid(&self) -> Option<u32> {
        self.child.id()
    }

    /// Kills the broker (for outage tests).
    pub async fn kill(&mut self) {
        let _ = self.child.kill().await;
    }
}

/// Starts `tansu` listening on `bootstrap` with `storage`, and waits until it accepts.
async fn spawn(bootstrap: &str, (storage, dir): &(String, PathBuf)) -> Result<Child, String> {
    let tansu = try_find_binary("tansu", "TANSU_BIN")?;
    let url = format!("tcp://{bootstrap}");
    let child = Command::new(&tansu)
        .arg("broker")
        .args(["--listener-url", &url, "--advertised-listener-url", &url])
        .args(["--storage-engine", storage])
        .current_dir(dir)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| format!("cannot start {}: {e}", tansu.display()))?;
    let timeout = Duration::from_secs(20);
    poll_until(timeout, || async move {
        tokio::net::TcpStream::connect(bootstrap)
            .await
            .ok()
            .map(|_| ())
    })
    .await
    .ok_or_else(|| format!("tansu did not listen on {bootstrap} within {timeout:?}"))?;
    Ok(child)
}
