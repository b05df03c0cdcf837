//! A real DNS server (Debian's dnsmasq) answering names from hosts files that a test rewrites
//! while it runs, as Docker's DNS answers a compose service's name with the address of every
//! replica, the ones added later included.

use crate::{find_binary, free_port, wait_for};
use std::net::Ipv4Addr;
use std::os::unix::fs::PermissionsExt;
use std::process::Stdio;
use std::time::Duration;
use tempfile::TempDir;
use tokio::net::UdpSocket;
use tokio::process::{Child, Command};

/// A running dnsmasq on 127.0.0.1; killed on drop.
pub struct Dns {
    /// `127.0.0.1:port` it answers on.
    addr: String,
    /// The hosts directory dnsmasq watches (re-read on every change), removed on drop.
    dir: TempDir,
    /// The process, killed on drop.
    _child: Child,
}

impl Dns {
    /// Starts dnsmasq answering only from its hosts directory, and waits until it answers.
    pub async fn start() -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        // dnsmasq may read it as another user after dropping privileges.
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755))
            .expect("hosts directory permissions");
        let port = free_port();
        let child = Command::new(find_binary("dnsmasq", "DNSMASQ_BIN"))
            .args([
                "--keep-in-foreground",
                "--conf-file=/dev/null",
                "--no-resolv",
                "--no-hosts",
                "--bind-interfaces",
                "--listen-address=127.0.0.1",
                "--user=root",
                "--log-facility=-",
            ])
            .arg(format!("--port={port}"))
            .arg(format!("--hostsdir={}", dir.path().display()))
            .arg(format!("--pid-file={}", dir.path().join("pid").display()))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("cannot start dnsmasq");
        let dns = Self {
            addr: format!("127.0.0.1:{port}"),
            dir,
            _child: child,
        };
        wait_for(Duration::from_secs(10), "dnsmasq to answer", || async {
            dns.resolve("ready.invalid").await.map(|_| ())
        })
        .await;
        dns
    }

    /// `127.0.0.1:port`, for a client's nameserver setting.
    pub fn addr(&self) -> &str {
        &self.addr
    }

    /// Makes `name` answer with `addrs` (all of them, in one answer), and waits until it does.
    pub async fn set(&self, name: &str, addrs: &[Ipv4Addr]) {
        let body: String = addrs.iter().map(|a| format!("{a} {name}\n")).collect();
        // Written beside the directory and moved in whole, so dnsmasq never reads half a file.
        let tmp = self.dir.path().with_extension(format!("{name}.tmp"));
        std::fs::write(&tmp, body).expect("write hosts");
        std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o644))
            .expect("hosts permissions");
        std::fs::rename(&tmp, self.dir.path().join(name)).expect("replace hosts");
        let mut want = addrs.to_vec();
        want.sort();
        wait_for(
            Duration::from_secs(10),
            "dnsmasq to answer the new addresses",
            || async {
                let mut got = self.resolve(name).await?;
                got.sort();
                (got == want).then_some(())
            },
        )
        .await;
    }

    /// The A records of `name`; `None` without an answer within a second.
    pub async fn resolve(&self, name: &str) -> Option<Vec<Ipv4Addr>> {
        let socket = UdpSocket::bind("127.0.0.1:0").await.ok()?;
        socket.connect(&self.addr).await.ok()?;
        socket.send(&query(name)).await.ok()?;
        let mut buf = [0u8; 1500];
        let n = tokio::time::timeout(Duration::from_secs(1), socket.recv(&mut buf))
            .await
            .ok()?
            .ok()?;
        Some(a_records(&buf[..n]))
    }
}

/// A recursive-desired query for the A records of `name` (RFC 1035 section 4).
fn query(name: &str) -> Vec<u8> {
    let mut q = vec![0x12, 0x34, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0];
    for label in name.split('.') {
        q.push(label.len() as u8);
        q.extend_from_slice(label.as_bytes());
    }
    q.extend_from_slice(&[0, 0, 1, 0, 1]);
    q
}

/// The addresses of the A records in an answer (an NXDOMAIN or empty answer has none).
fn a_records(msg: &[u8]) -> Vec<Ipv4Addr> {
    let count = |i: usize| {
        msg.get(i..i + 2)
            .map_or(0, |b| u16::from_be_bytes([b[0], b[1]]))
    };
    let skip_name = |mut i: usize| {
        while let Some(&len) = msg.get(i) {
            if len & 0xc0 == 0xc0 {
                return i + 2;
            }
            i += 1 + usize::from(len);
            if len == 0 {
                return i;
            }
        }
        i
    };
    let mut i = 12;
    for _ in 0..count(4) {
        i = skip_name(i) + 4;
    }
    let mut addrs = Vec::new();
    for _ in 0..count(6) {
        i = skip_name(i);
        let (kind, len) = (count(i), usize::from(count(i + 8)));
        if kind == 1
            && len == 4
            && let Some(b) = msg.get(i + 10..i + 14)
        {
            addrs.push(Ipv4Addr::new(b[0], b[1], b[2], b[3]));
        }
        i += 10 + len;
    }
    addrs
}
