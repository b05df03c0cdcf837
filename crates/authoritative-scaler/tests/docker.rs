//! The backends on this machine's real Docker engine, with an image built locally.

use authoritative_scaler::backend::{BackendError, ComposeBackend, Engine, SwarmBackend};
use testkit::docker::{ComposeProject, Swarm, busybox_image, run};

const SOCKET: &str = "unix:///var/run/docker.sock";

/// One Docker test at a time: a Swarm joined and left by one test disturbs the networks of
/// another's Compose project.
static ENGINE: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

fn project_yaml(image: &str) -> String {
    format!(
        "version: '2.4'\nservices:\n  web:\n    image: {image}\n    command: [\"sleep\", \"3600\"]\n    \
         labels:\n      autoscaler.max_replicas: \"4\"\n    networks: [default, backend]\n\
         networks:\n  backend: {{}}\n"
    )
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
        (state.replicas, state.max),
        (1, Some(4)),
        "bounds come from the service's labels"
    );

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
        assert_eq!(attached.split_whitespace().count(), 3, "{net}: {attached}");
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
    let _swarm = Swarm::join();
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
    run(&["service", "rm", &name]);
}

#[tokio::test]
async fn an_unreachable_engine_is_a_clear_error() {
    let host = "unix:///tmp/no-docker-here.sock";
    let compose = ComposeBackend::new(Engine::new(host), None, None);
    let err = compose.inspect("web").await.unwrap_err();
    assert_eq!(err.kind(), "unreachable", "{err}");
    assert!(err.to_string().contains("DOCKER_HOST"), "{err}");
}
