//! The real Docker engine for tests: an image built locally (no registry is reachable), Compose
//! projects and Swarm services that are removed when the test ends.

use std::path::Path;
use std::process::Command;
use tempfile::TempDir;

/// The test image: a static busybox on `scratch`, built once per machine.
pub const BUSYBOX_IMAGE: &str = "ml-autoscaler-test/busybox:1";

fn docker(args: &[&str]) -> std::process::Output {
    Command::new("docker")
        .args(args)
        .output()
        .expect("the docker CLI runs")
}

fn succeed(what: &str, output: std::process::Output) -> String {
    assert!(
        output.status.success(),
        "{what} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// Builds [`BUSYBOX_IMAGE`] from Debian's busybox-static unless it exists.
pub fn busybox_image() -> &'static str {
    if docker(&["image", "inspect", BUSYBOX_IMAGE])
        .status
        .success()
    {
        return BUSYBOX_IMAGE;
    }
    let busybox = Path::new("/bin/busybox");
    assert!(
        busybox.is_file(),
        "/bin/busybox missing: run scripts/install-deps.sh (busybox-static)"
    );
    let dir = tempfile::tempdir().expect("temp dir");
    std::fs::copy(busybox, dir.path().join("busybox")).expect("copy busybox");
    std::fs::write(
        dir.path().join("Dockerfile"),
        "FROM scratch\nCOPY busybox /bin/busybox\nENTRYPOINT [\"/bin/busybox\"]\nCMD [\"sleep\", \"3600\"]\n",
    )
    .expect("write Dockerfile");
    let path = dir.path().to_string_lossy().into_owned();
    succeed(
        "docker build",
        docker(&["build", "-q", "-t", BUSYBOX_IMAGE, &path]),
    );
    BUSYBOX_IMAGE
}

/// A Compose project, brought down (volumes and orphans too) on drop.
pub struct ComposeProject {
    pub name: String,
    dir: TempDir,
}

impl ComposeProject {
    /// Writes `compose_yaml` and runs `docker-compose -p NAME up -d`.
    pub fn up(name: &str, compose_yaml: &str) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        std::fs::write(dir.path().join("docker-compose.yml"), compose_yaml)
            .expect("write compose file");
        let project = Self {
            name: name.to_owned(),
            dir,
        };
        succeed("docker-compose up", project.compose(&["up", "-d"]));
        project
    }

    /// Runs `docker-compose -p NAME ARGS...` in the project's directory.
    pub fn compose(&self, args: &[&str]) -> std::process::Output {
        Command::new("docker-compose")
            .arg("-p")
            .arg(&self.name)
            .args(args)
            .current_dir(self.dir.path())
            .output()
            .expect("docker-compose runs")
    }

    /// Container ids `docker-compose ps -q SERVICE` lists.
    pub fn ps(&self, service: &str) -> Vec<String> {
        let out = succeed("docker-compose ps", self.compose(&["ps", "-q", service]));
        out.lines()
            .map(str::to_owned)
            .filter(|l| !l.is_empty())
            .collect()
    }

    /// `(name, container number, running)` of the service's containers, from the engine.
    pub fn containers(&self, service: &str) -> Vec<(String, u32, bool)> {
        let filter_project = format!("label=com.docker.compose.project={}", self.name);
        let filter_service = format!("label=com.docker.compose.service={service}");
        let format = "{{.Names}} {{.Label \"com.docker.compose.container-number\"}} {{.State}}";
        let out = succeed(
            "docker ps",
            docker(&[
                "ps",
                "-a",
                "--filter",
                &filter_project,
                "--filter",
                &filter_service,
                "--format",
                format,
            ]),
        );
        let mut containers: Vec<(String, u32, bool)> = out
            .lines()
            .filter_map(|l| {
                let mut parts = l.split_whitespace();
                Some((
                    parts.next()?.to_owned(),
                    parts.next()?.parse().ok()?,
                    parts.next()? == "running",
                ))
            })
            .collect();
        containers.sort_by_key(|c| c.1);
        containers
    }

    /// Runs `docker-compose down` now; `true` when no container of the project is left.
    pub fn down(&self) -> bool {
        let _ = self.compose(&["down", "-v", "--remove-orphans", "-t", "1"]);
        let filter = format!("label=com.docker.compose.project={}", self.name);
        succeed("docker ps", docker(&["ps", "-aq", "--filter", &filter]))
            .trim()
            .is_empty()
    }
}

impl Drop for ComposeProject {
    fn drop(&mut self) {
        self.down();
    }
}

/// Runs `docker ARGS...` and returns its stdout; panics with its stderr on failure.
pub fn run(args: &[&str]) -> String {
    succeed(&format!("docker {}", args.join(" ")), docker(args))
}

/// A Swarm for the test: initialized if the engine is not in one, and left again on drop.
pub struct Swarm {
    initialized_here: bool,
}

impl Swarm {
    pub fn join() -> Self {
        let state = run(&["info", "--format", "{{.Swarm.LocalNodeState}}"]);
        let initialized_here = state.trim() != "active";
        if initialized_here {
            succeed(
                "docker swarm init",
                docker(&["swarm", "init", "--advertise-addr", "127.0.0.1"]),
            );
        }
        Self { initialized_here }
    }
}

impl Drop for Swarm {
    fn drop(&mut self) {
        if self.initialized_here {
            let _ = docker(&["swarm", "leave", "--force"]);
        }
    }
}
