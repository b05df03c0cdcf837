//! Where requests go: every replica behind the targets, balanced round-robin on the client side.
//!
//! A target URL's host is resolved to all of its addresses (Docker's DNS answers a compose
//! service name with every replica's address), and a targets file in Prometheus' file-based
//! service discovery format lists replicas directly (the local stack writes one). Both are
//! re-read every couple of seconds, so replicas the scaler adds get load as they appear: that is
//! what a load balancer in front of the service would do.

use anyhow::{Context, bail};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::RwLock;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// One replica to send to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    pub addr: SocketAddr,
    /// The Host header to send (the name the user gave), if any.
    pub host: Option<String>,
}

/// A source of endpoints.
#[derive(Debug, Clone)]
enum Source {
    /// `host:port` resolved through DNS.
    Dns { host: String, port: u16 },
    /// A Prometheus file_sd JSON file.
    File(PathBuf),
}

/// The live set of endpoints.
pub struct Targets {
    /// Where endpoints come from.
    sources: Vec<Source>,
    /// The endpoints found at the last refresh.
    endpoints: RwLock<Vec<Endpoint>>,
    /// Round-robin position.
    next: AtomicUsize,
}

/// How often sources are re-read.
const REFRESH: Duration = Duration::from_secs(2);

impl Targets {
    /// Builds the sources from `http://host:port` URLs and targets files, and resolves them once.
    pub async fn new(urls: &[String], files: &[PathBuf]) -> anyhow::Result<Self> {
        let mut sources = Vec::new();
        for url in urls {
            let parsed = reqwest::Url::parse(url)
                .with_context(|| format!("--target {url:?} is not a URL"))?;
            if parsed.scheme() != "http" {
                bail!(
                    "--target {url:?}: only http:// targets are balanced (TLS needs the host name)"
                );
            }
            let host = parsed
                .host_str()
                .context("target URL without host")?
                .to_owned();
            let port = parsed.port_or_known_default().unwrap_or(80);
            sources.push(Source::Dns { host, port });
        }
        sources.extend(files.iter().cloned().map(Source::File));
        if sources.is_empty() {
            bail!("no target: give --target URL or --targets-file FILE");
        }
        let targets = Self {
            sources,
            endpoints: RwLock::new(Vec::new()),
            next: AtomicUsize::new(0),
        };
        targets.refresh().await;
        if targets.is_empty() {
            bail!("no target answers to its name yet (DNS) and the targets files list none");
        }
        Ok(targets)
    }

    /// Endpoints currently known.
    pub fn len(&self) -> usize {
        self.endpoints.read().map_or(0, |e| e.len())
    }

    /// Whether no endpoint is known.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The next endpoint, round-robin; `None` while none is known.
    pub fn pick(&self) -> Option<Endpoint> {
        let endpoints = self.endpoints.read().ok()?;
        if endpoints.is_empty() {
            return None;
        }
        let i = self.next.fetch_add(1, Ordering::Relaxed) % endpoints.len();
        Some(endpoints[i].clone())
    }

    /// Re-reads every source; keeps the old set when every source fails.
    pub async fn refresh(&self) {
        let mut found = Vec::new();
        for source in &self.sources {
            match source {
                Source::Dns { host, port } => {
                    if let Ok(addrs) = tokio::net::lookup_host((host.as_str(), *port)).await {
                        let mut addrs: Vec<SocketAddr> = addrs.collect();
                        addrs.sort();
                        addrs.dedup();
                        found.extend(addrs.into_iter().map(|addr| Endpoint {
                            addr,
                            host: Some(format!("{host}:{port}")),
                        }));
                    }
                }
                Source::File(path) => found.extend(read_file_sd(path).unwrap_or_default()),
            }
        }
        if !found.is_empty()
            && let Ok(mut endpoints) = self.endpoints.write()
        {
            *endpoints = found;
        }
    }

    /// Refreshes every `REFRESH` until `shutdown`.
    pub async fn keep_fresh(&self, shutdown: CancellationToken) {
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tokio::time::sleep(REFRESH) => self.refresh().await,
            }
        }
    }
}

/// Reads `[{"targets": ["host:port", ...]}, ...]`.
fn read_file_sd(path: &PathBuf) -> anyhow::Result<Vec<Endpoint>> {
    #[derive(serde::Deserialize)]
    struct Group {
        targets: Vec<String>,
    }
    let groups: Vec<Group> = serde_json::from_slice(&std::fs::read(path)?)?;
    Ok(groups
        .into_iter()
        .flat_map(|g| g.targets)
        .filter_map(|t| t.parse().ok())
        .map(|addr| Endpoint { addr, host: None })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn balances_over_files_and_dns() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("demo.json");
        std::fs::write(
            &file,
            r#"[{"targets":["127.0.0.1:8081","127.0.0.1:8082"]}]"#,
        )
        .unwrap();
        let targets = Targets::new(
            &["http://127.0.0.1:9000".into()],
            std::slice::from_ref(&file),
        )
        .await
        .unwrap();
        assert_eq!(targets.len(), 3);
        let ports: Vec<u16> = (0..3)
            .map(|_| targets.pick().unwrap().addr.port())
            .collect();
        assert_eq!(ports, vec![9000, 8081, 8082]);

        std::fs::write(&file, r#"[{"targets":["127.0.0.1:8081"]}]"#).unwrap();
        targets.refresh().await;
        assert_eq!(targets.len(), 2, "a removed replica stops getting load");
    }

    #[tokio::test]
    async fn bad_targets_are_refused() {
        assert!(Targets::new(&["ftp://x".into()], &[]).await.is_err());
        assert!(Targets::new(&[], &[]).await.is_err());
    }
}
