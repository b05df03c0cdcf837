//! The backends on this machine's real Docker engine, with an image built locally: straight on
//! the socket, and through the Docker guard as docker-compose.yml runs them.

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

use authoritative_scaler::backend::{BackendError, ComposeBackend, Engine, SwarmBackend};
use docker_guard::{Application as Guard, GuardConfig};
use testkit::docker::{ComposeProject, Swarm, busybox_image, run};
use tokio_util::sync::CancellationToken;

const SOCKET: &str = "unix:///var/run/docker.sock";

/// One Docker test at a time: a Swarm joined and left by one test disturbs the networks of
/// another's Compose project.
static ENGINE: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// `web`, opted in, on two networks; `db`, not opted in.
fn project_yaml(image: &str) -> String {
    format!(
        "version: '2.4'\nservices:\n  web:\n    image: {image}\n    command: [\"sleep\", \"3600\"]\n    \
         cap_drop: [ALL]\n    read_only: true\n    \
         labels:\n      autoscaler.enable: \"true\"\n      autoscaler.max_replicas: \"4\"\n    \
         networks: [default, backend]\n  \
         db:\n    image: {image}\n    command: [\"sleep\", \"3600\"]\n\
         networks:\n  backend: {{}}\n"
    )
}

/// A Docker guard on a free port in this process, stopped when the token is dropped.
struct GuardProcess {
    host: String,
    stop: CancellationToken,
}

impl GuardProcess {
    async fn start() -> Self {
        let guard = Guard::build(GuardConfig::local("/var/run/docker.sock"))
            .await
            .unwrap();
        let host = format!("tcp://{}", guard.addr());
        let stop = CancellationToken::new();
        tokio::spawn(guard.run(stop.clone()));
        Self { host, stop }
    }
}

impl Drop for GuardProcess {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

#[tokio::test]
async fn compose_replicas_are_created_and_removed_as_compose_does() {
    let _engine = ENGINE.lock().await;
    let image = busybox_image();
    let project = ComposeProject::up(
        &testkit::unique("mlscale").replace('-', ""),
        &project_yaml(image),
    );
    let compose = ComposeBackend::new(Engine::new(SOCKET), Some(project.name.clone()), Some(1));

    let state = compose.inspect("web").await.unwrap();
    assert_eq!(
        (state.replicas, state.max, state.opted_in),
        (1, Some(4), true),
        "bounds and the opt-in come from the service's labels"
    );
    assert!(!compose.inspect("db").await.unwrap().opted_in);
    assert!(matches!(
        compose.scale("db", 1, 2).await,
        Err(BackendError::NotOptedIn(_))
    ));
    assert_eq!(project.containers("db").len(), 1, "db is untouched");

    assert_eq!(compose.scale("web", 1, 3).await.unwrap(), 3);
    assert_eq!(
        project.ps("web").len(),
        3,
        "docker-compose ps lists the new replicas"
    );
    let names: Vec<(String, u32, bool)> = project.containers("web");
    let expected: Vec<(String, u32, bool)> = (1..=3)
        .map(|n| (format!("{}_web_{n}", project.name), n, true))
        .collect();
    assert_eq!(
        names, expected,
        "named and numbered as this Compose (v1) names them"
    );
    let labels = run(&[
        "inspect",
        "--format",
        "{{json .Config.Labels}}",
        &names[2].0,
    ]);
    assert!(
        labels.contains("\"autoscaler.scaled-by\":\"authoritative-scaler\""),
        "{labels}"
    );
    assert!(
        labels.contains("com.docker.compose.config-hash"),
        "{labels}"
    );

    // The service name resolves to every replica on both networks.
    for network in ["default", "backend"] {
        let net = format!("{}_{network}", project.name);
        let format = "{{range $k, $v := .Containers}}{{$v.Name}} {{end}}";
        let attached = run(&["network", "inspect", &net, "--format", format]);
        let web = attached.split_whitespace().filter(|n| n.contains("_web_"));
        assert_eq!(web.count(), 3, "{net}: {attached}");
    }
    for (name, _, _) in &names {
        let aliases = run(&[
            "inspect",
            "--format",
            "{{range .NetworkSettings.Networks}}{{json .Aliases}}{{end}}",
            name,
        ]);
        assert_eq!(
            aliases.matches("\"web\"").count(),
            2,
            "{name}: `web` on both networks: {aliases}"
        );
    }
    let lookup = run(&["exec", &names[0].0, "/bin/busybox", "nslookup", "web"]);
    let answers = lookup
        .lines()
        .filter(|l| l.starts_with("Address:") && !l.contains("127.0.0.11"))
        .count();
    assert_eq!(answers, 3, "every replica answers to `web`:\n{lookup}");

    // Scaling down removes the highest numbers first.
    assert_eq!(compose.scale("web", 3, 1).await.unwrap(), 1);
    let left: Vec<String> = project.containers("web").into_iter().map(|c| c.0).collect();
    assert_eq!(left, vec![format!("{}_web_1", project.name)]);

    assert!(matches!(
        compose.inspect("nosuch").await,
        Err(BackendError::UnknownService(_))
    ));
    compose.scale("web", 1, 2).await.unwrap();
    assert!(
        project.down(),
        "docker-compose down removes the replicas the scaler made too"
    );
}

#[tokio::test]
async fn swarm_services_are_scaled_with_their_version() {
    let _engine = ENGINE.lock().await;
    let image = busybox_image();
    let swarm_joined = Swarm::join();
    let name = testkit::unique("mlscale-svc");
    run(&[
        "service",
        "create",
        "--detach",
        "--name",
        &name,
        "--replicas",
        "1",
        "--label",
        "autoscaler.min_replicas=1",
        "--label",
        "autoscaler.enable=true",
        image,
        "sleep",
        "3600",
    ]);
    let swarm = SwarmBackend::new(Engine::new(SOCKET));
    let state = swarm.inspect(&name).await.unwrap();
    assert_eq!((state.replicas, state.min), (1, Some(1)));
    assert_eq!(swarm.scale(&name, 3).await.unwrap(), 3);
    let replicas = run(&[
        "service",
        "inspect",
        &name,
        "--format",
        "{{.Spec.Mode.Replicated.Replicas}}",
    ]);
    assert_eq!(replicas.trim(), "3");
    assert_eq!(swarm.inspect(&name).await.unwrap().replicas, 3);
    assert!(matches!(
        swarm.inspect("nosuch-service").await,
        Err(BackendError::UnknownService(_))
    ));

    // Through the guard: the count changes, an unlabelled service is not even read.
    let guard = GuardProcess::start().await;
    let guarded = SwarmBackend::new(Engine::new(&guard.host));
    assert_eq!(guarded.inspect(&name).await.unwrap().replicas, 3);
    assert_eq!(guarded.scale(&name, 2).await.unwrap(), 2);
    let unlabelled = testkit::unique("mlscale-db");
    run(&[
        "service",
        "create",
        "--detach",
        "--name",
        &unlabelled,
        "--replicas",
        "1",
        image,
        "sleep",
        "3600",
    ]);
    let refused = guarded.inspect(&unlabelled).await.unwrap_err();
    assert_eq!(refused.kind(), "permission_denied", "{refused}");
    assert!(refused.to_string().contains("not opted in"), "{refused}");
    let spec = |n: &str| {
        run(&[
            "service",
            "inspect",
            n,
            "--format",
            "{{.Spec.Mode.Replicated.Replicas}}",
        ])
    };
    assert_eq!(spec(&name).trim(), "2");
    assert_eq!(spec(&unlabelled).trim(), "1");
    run(&["service", "rm", &name, &unlabelled]);
    // A task's container may still be in the making when its service goes, and then outlive
    // the swarm: wait for the services' containers to go, leave, and remove any left over.
    let leftovers = || -> Vec<String> {
        [&name, &unlabelled]
            .iter()
            .flat_map(|service| {
                let filter = format!("label=com.docker.swarm.service.name={service}");
                run(&["ps", "-aq", "--filter", &filter])
                    .split_whitespace()
                    .map(str::to_owned)
                    .collect::<Vec<String>>()
            })
            .collect()
    };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while !leftovers().is_empty() && std::time::Instant::now() < deadline {
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    }
    drop(swarm_joined);
    tokio::time::sleep(std::time::Duration::from_secs(2)).await;
    for id in leftovers() {
        let _ = std::process::Command::new("docker")
            .args(["rm", "-f", &id])
            .output();
    }
    assert!(
        leftovers().is_empty(),
        "no container of the test's services is left"
    );
}

#[tokio::test]
async fn compose_replicas_are_made_through_the_docker_guard() {
    let _engine = ENGINE.lock().await;
    let image = busybox_image();
    let project = ComposeProject::up(
        &testkit::unique("mlguarded").replace('-', ""),
        &project_yaml(image),
    );
    let guard = GuardProcess::start().await;
    let compose = ComposeBackend::new(
        Engine::new(&guard.host),
        Some(project.name.clone()),
        Some(1),
    );

    // Create, network connect and start of two replicas; stop and remove of them again.
    assert_eq!(compose.scale("web", 1, 3).await.unwrap(), 3);
    let names: Vec<String> = project.containers("web").into_iter().map(|c| c.0).collect();
    assert_eq!(names.len(), 3);
    let networks = run(&[
        "inspect",
        "--format",
        "{{len .NetworkSettings.Networks}} {{.HostConfig.ReadonlyRootfs}} {{.HostConfig.CapDrop}}",
        &names[2],
    ]);
    assert_eq!(
        networks.trim(),
        "2 true [ALL]",
        "a replica as its service is"
    );
    assert_eq!(compose.scale("web", 3, 1).await.unwrap(), 1);
    assert_eq!(project.containers("web").len(), 1);

    // The unlabelled service does not exist as far as the scaler can see through the guard.
    let unseen = compose.inspect("db").await.unwrap_err();
    assert_eq!(unseen.kind(), "unknown_service", "{unseen}");
    assert!(compose.scale("db", 1, 2).await.is_err());
    assert_eq!(project.containers("db").len(), 1, "db is untouched");
    assert!(project.down());
}

/// Issue 12's controller counts starting and restarting replicas: a crash-looping replica is one
/// the service has (its restart policy brings it back), so scaling to two adds one container,
/// not two; a replica whose health check has not passed yet is counted and reported starting.
#[tokio::test]
async fn restarting_and_starting_replicas_are_counted() {
    let _engine = ENGINE.lock().await;
    let image = busybox_image();
    let yaml = format!(
        "version: '2.4'\nservices:\n  flaky:\n    image: {image}\n    command: [\"sh\", \"-c\", \"exit 3\"]\n    \
         restart: always\n    labels:\n      autoscaler.enable: \"true\"\n  \
         slow:\n    image: {image}\n    command: [\"sleep\", \"3600\"]\n    \
         healthcheck:\n      test: [\"CMD\", \"/bin/busybox\", \"true\"]\n      interval: 1h\n    \
         labels:\n      autoscaler.enable: \"true\"\n"
    );
    let project = ComposeProject::up(&testkit::unique("mlrestart").replace('-', ""), &yaml);
    let compose = ComposeBackend::new(Engine::new(SOCKET), Some(project.name.clone()), Some(1));

    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let flaky = loop {
        let state = compose.inspect("flaky").await.unwrap();
        if state.restarting == 1 || std::time::Instant::now() > deadline {
            break state;
        }
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    };
    assert_eq!(
        (flaky.replicas, flaky.restarting),
        (1, 1),
        "a crash-looping replica is counted and reported restarting"
    );
    assert_eq!(compose.scale("flaky", 1, 2).await.unwrap(), 2);
    assert_eq!(
        project.containers("flaky").len(),
        2,
        "one replica added for the one missing, none for the restarting one"
    );

    let slow = compose.inspect("slow").await.unwrap();
    assert_eq!(
        (slow.replicas, slow.starting, slow.restarting),
        (1, 1, 0),
        "a replica whose health check has not passed is counted and reported starting"
    );
    assert!(project.down());
}

#[tokio::test]
async fn an_unreachable_engine_is_a_clear_error() {
    let host = "unix:///tmp/no-docker-here.sock";
    let compose = ComposeBackend::new(Engine::new(host), None, None);
    let err = compose.inspect("web").await.unwrap_err();
    assert_eq!(err.kind(), "unreachable", "{err}");
    assert!(err.to_string().contains("DOCKER_HOST"), "{err}");
}

/// Issue 12's hanging engine: it accepts connections and never answers. Each request fails after
/// the configured timeout with an error that can be retried, instead of holding the decisions.
#[tokio::test]
async fn a_hanging_engine_fails_within_its_timeout() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let host = format!("tcp://{}", listener.local_addr().unwrap());
    let held = std::thread::spawn(move || {
        // Keep the accepted connections open, unanswered.
        let mut open = Vec::new();
        for stream in listener.incoming().take(2) {
            open.push(stream);
        }
        std::thread::sleep(std::time::Duration::from_secs(10));
    });
    let compose = ComposeBackend::new(Engine::with_timeout(&host, 2), None, None);
    let started = std::time::Instant::now();
    let err = compose.inspect("web").await.unwrap_err();
    let waited = started.elapsed();
    assert!(err.retryable(), "{err}");
    assert!(
        waited < std::time::Duration::from_secs(6),
        "failed after {waited:?}, not the 2 s timeout: {err}"
    );
    eprintln!("a hanging engine failed after {waited:?}: {err}");
    drop(held);
}
