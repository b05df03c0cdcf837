//! A real Kafka-compatible broker (`tansu`) for one test.

use crate::{free_port, poll_until, try_find_binary};
use std::process::Stdio;
use std::time::Duration;
use tokio::process::{Child, Command};

/// A running broker; killed on drop.
pub struct Broker {
    /// `host:port` to bootstrap from.
    bootstrap: String,
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
        let tansu = try_find_binary("tansu", "TANSU_BIN")?;
        let port = free_port();
        let url = format!("tcp://127.0.0.1:{port}");
        let child = Command::new(&tansu)
            .arg("broker")
            .args(["--listener-url", &url, "--advertised-listener-url", &url])
            .args(["--storage-engine", "memory://tansu/"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| format!("cannot start {}: {e}", tansu.display()))?;
        let bootstrap = format!("127.0.0.1:{port}");
        let addr = bootstrap.clone();
        let timeout = Duration::from_secs(20);
        poll_until(timeout, || {
            let addr = addr.clone();
            async move { tokio::net::TcpStream::connect(addr).await.ok().map(|_| ()) }
        })
        .await
        .ok_or_else(|| format!("tansu did not listen on {bootstrap} within {timeout:?}"))?;
        Ok(Self { bootstrap, child })
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
