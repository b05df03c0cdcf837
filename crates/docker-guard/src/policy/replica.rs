//! A container create passes only as a replica of an existing container of an opted-in
//! service: what the scaler's Compose backend sends (`replica_spec`, a copy of the newest
//! replica's inspect data with its own name, number and network aliases).
//!
//! Compared with the existing container (the reference, read from the engine, never from the
//! caller):
//! - the image and the user are the same;
//! - every other container setting (command, entrypoint, environment, volumes, ...) is the
//!   same or left to the default;
//! - the host configuration is the same, setting by setting: binds, mounts, capabilities
//!   added and dropped, devices, security options, namespaces, read-only root, resources.
//!   Only published ports may differ, and only by leaving the host port to the engine;
//! - never privileged, never the host's PID, IPC, UTS, user or network namespace, even where
//!   the reference has one;
//! - its labels opt in and name the same compose project and service;
//! - it joins only networks the reference is on, with aliases only.

use super::json::{Fields, ascii_names, fields, is_default, normalized, same, text};
use super::{OPT_IN_LABEL, Refusal, Rule, label, opted_in};
use serde_json::Value;

pub const PROJECT_LABEL: &str = "com.docker.compose.project";
pub const SERVICE_LABEL: &str = "com.docker.compose.service";
pub const NUMBER_LABEL: &str = "com.docker.compose.container-number";

/// Container settings (members of the create body besides the host and networking
/// configuration) the engine reads; any other member is refused.
const CONFIG_MEMBERS: [&str; 27] = [
    "hostname",
    "domainname",
    "user",
    "attachstdin",
    "attachstdout",
    "attachstderr",
    "exposedports",
    "tty",
    "openstdin",
    "stdinonce",
    "env",
    "cmd",
    "healthcheck",
    "argsescaped",
    "image",
    "volumes",
    "workingdir",
    "entrypoint",
    "networkdisabled",
    "macaddress",
    "onbuild",
    "labels",
    "stopsignal",
    "stoptimeout",
    "shell",
    "hostconfig",
    "networkingconfig",
];

/// Namespace settings that may never be the host's.
const NAMESPACES: [&str; 5] = ["pidmode", "ipcmode", "utsmode", "usernsmode", "networkmode"];

/// A member's value by lowercased name.
fn value<'a>(fields: &Fields<'a>, key: &str) -> Option<&'a Value> {
    fields.get(key).map(|(_, v)| *v)
}

fn refuse(reason: String) -> Refusal {
    Refusal::new(Rule::NotAReplica, reason)
}

/// The compose project and service a create body claims, when its labels opt in.
pub fn claimed_service(body: &Value) -> Result<(String, String), Refusal> {
    let top = fields(Some(body), "the body").map_err(|e| Refusal::new(Rule::Malformed, e))?;
    let labels = top.get("labels").map(|(_, v)| *v);
    if !opted_in(labels) {
        return Err(Refusal::new(
            Rule::NotOptedIn,
            format!("the container's labels do not opt in ({OPT_IN_LABEL}=true)"),
        ));
    }
    let (project, service) = (label(labels, PROJECT_LABEL), label(labels, SERVICE_LABEL));
    if project.is_empty() || service.is_empty() {
        return Err(refuse(format!(
            "the container has no {PROJECT_LABEL} and {SERVICE_LABEL} labels: only replicas of compose services are created"
        )));
    }
    Ok((project.to_owned(), service.to_owned()))
}

/// Checks a create `body` against `reference`, the inspect data of an existing container of
/// the service (opted in).
pub fn check(body: &Value, reference: &Value) -> Result<(), Refusal> {
    let name = text(reference.get("Name")).trim_start_matches('/');
    if !ascii_names(body) {
        return Err(Refusal::new(
            Rule::Malformed,
            "the body has a member name that is not ASCII".into(),
        ));
    }
    let malformed = |e: String| Refusal::new(Rule::Malformed, e);
    let top = fields(Some(body), "the body").map_err(malformed)?;
    let config = fields(reference.get("Config"), "the reference's Config").map_err(malformed)?;
    for (key, (sent, _)) in &top {
        if !CONFIG_MEMBERS.contains(&key.as_str()) {
            return Err(Refusal::new(
                Rule::Malformed,
                format!("{sent:?} is not a container setting the scaler sends"),
            ));
        }
    }

    let (image, reference_image) = (text(value(&top, "image")), text(value(&config, "image")));
    if image != reference_image {
        return Err(refuse(format!(
            "image {image:?} is not the service's image {reference_image:?} (container {name})"
        )));
    }
    if !same(value(&top, "user"), value(&config, "user")) {
        return Err(refuse(format!(
            "user {:?} is not the service's user {:?}",
            text(value(&top, "user")),
            text(value(&config, "user"))
        )));
    }
    for (key, (sent, setting)) in &top {
        let own = matches!(
            key.as_str(),
            "hostname"
                | "domainname"
                | "labels"
                | "hostconfig"
                | "networkingconfig"
                | "user"
                | "image"
        );
        if !own && !is_default(Some(setting)) && !same(Some(setting), value(&config, key)) {
            return Err(refuse(format!(
                "{sent} differs from the service's container {name}: a replica runs as its service does"
            )));
        }
    }
    check_labels(value(&top, "labels"), value(&config, "labels"), name)?;
    check_host_config(value(&top, "hostconfig"), reference.get("HostConfig"), name)?;
    check_networks(value(&top, "networkingconfig"), reference, name)
}

fn check_labels(
    labels: Option<&Value>,
    reference: Option<&Value>,
    name: &str,
) -> Result<(), Refusal> {
    if !opted_in(labels) {
        return Err(Refusal::new(
            Rule::NotOptedIn,
            format!("the container's labels do not opt in ({OPT_IN_LABEL}=true)"),
        ));
    }
    for key in [PROJECT_LABEL, SERVICE_LABEL] {
        if label(labels, key) != label(reference, key) {
            return Err(refuse(format!(
                "label {key}={:?} is not the service's {:?} (container {name})",
                label(labels, key),
                label(reference, key)
            )));
        }
    }
    Ok(())
}

/// Why a host setting must be the reference's, for the refusal.
fn why(key: &str) -> &'static str {
    match key {
        "binds" | "mounts" | "volumesfrom" => {
            "a replica mounts exactly what its service's containers mount"
        }
        "capadd" | "capdrop" | "privileged" => "a replica has exactly its service's capabilities",
        "devices" | "devicerequests" | "devicecgrouprules" => {
            "a replica gets no device its service's containers lack"
        }
        "securityopt" | "readonlyrootfs" | "maskedpaths" | "readonlypaths" => {
            "a replica keeps its service's security options"
        }
        _ => "a replica is configured as its service's containers are",
    }
}

fn check_host_config(
    sent: Option<&Value>,
    reference: Option<&Value>,
    name: &str,
) -> Result<(), Refusal> {
    let malformed = |e: String| Refusal::new(Rule::Malformed, e);
    let host = fields(sent, "HostConfig").map_err(malformed)?;
    let reference = fields(reference, "the reference's HostConfig").map_err(malformed)?;
    if host
        .get("privileged")
        .is_some_and(|(_, v)| !is_default(Some(v)))
    {
        return Err(refuse(
            "HostConfig.Privileged is set: a replica is never privileged".into(),
        ));
    }
    for key in NAMESPACES {
        if let Some((sent, mode)) = host.get(key) {
            let mode = text(Some(mode));
            if mode == "host" || (mode.starts_with("container:") && key != "networkmode") {
                return Err(refuse(format!(
                    "HostConfig.{sent} is {mode:?}: a replica never shares the host's or another container's namespace"
                )));
            }
        }
    }
    let mut keys: Vec<&String> = host.keys().chain(reference.keys()).collect();
    keys.sort();
    keys.dedup();
    for key in keys {
        let shown = host
            .get(key)
            .or(reference.get(key))
            .map(|(s, _)| *s)
            .unwrap_or(key.as_str());
        let (mine, theirs) = (
            host.get(key).map(|(_, v)| *v),
            reference.get(key).map(|(_, v)| *v),
        );
        if key == "portbindings" {
            check_ports(mine, theirs, name)?;
        } else if !same(mine, theirs) {
            return Err(refuse(format!(
                "HostConfig.{shown} differs from the service's container {name}: {}",
                why(key)
            )));
        }
    }
    Ok(())
}

/// Published ports: the reference's, with the host port left to the engine or the same.
fn check_ports(sent: Option<&Value>, reference: Option<&Value>, name: &str) -> Result<(), Refusal> {
    let sent = normalized(sent.unwrap_or(&Value::Null));
    let reference = normalized(reference.unwrap_or(&Value::Null));
    let Some(ports) = sent.as_object() else {
        return Ok(());
    };
    for (port, bindings) in ports {
        let theirs = reference.get(port).and_then(Value::as_array);
        let ok = match (bindings.as_array(), theirs) {
            (Some(mine), Some(theirs)) => {
                mine.len() <= theirs.len()
                    && mine.iter().zip(theirs).all(|(m, t)| {
                        m.get("HostIp") == t.get("HostIp")
                            && (m.get("HostPort").is_none()
                                || m.get("HostPort") == t.get("HostPort"))
                            && (m.is_null()
                                || m.as_object().is_some_and(|o| {
                                    o.keys().all(|k| k == "HostIp" || k == "HostPort")
                                }))
                    })
            }
            _ => false,
        };
        if !ok {
            return Err(refuse(format!(
                "HostConfig.PortBindings {port} is not published as the service's container {name} publishes it"
            )));
        }
    }
    Ok(())
}

/// Networks at create: only the reference's, with aliases only.
fn check_networks(sent: Option<&Value>, reference: &Value, name: &str) -> Result<(), Refusal> {
    let malformed = |e: String| Refusal::new(Rule::Malformed, e);
    let networking = fields(sent, "NetworkingConfig").map_err(malformed)?;
    for (key, (shown, _)) in &networking {
        if key != "endpointsconfig" {
            return Err(Refusal::new(
                Rule::Malformed,
                format!("NetworkingConfig.{shown} is not a setting the scaler sends"),
            ));
        }
    }
    let endpoints = fields(
        networking.get("endpointsconfig").map(|(_, v)| *v),
        "EndpointsConfig",
    )
    .map_err(malformed)?;
    let networks = reference.pointer("/NetworkSettings/Networks");
    for (_, (network, endpoint)) in endpoints {
        if networks.and_then(|n| n.get(network)).is_none() {
            return Err(refuse(format!(
                "network {network:?} is not one the service's container {name} is on"
            )));
        }
        endpoint_aliases_only(endpoint)?;
    }
    Ok(())
}

/// An endpoint setting of a create or a network connect: aliases, nothing else.
pub fn endpoint_aliases_only(endpoint: &Value) -> Result<(), Refusal> {
    let settings = fields(Some(endpoint), "the endpoint settings")
        .map_err(|e| Refusal::new(Rule::Malformed, e))?;
    for (key, (shown, value)) in settings {
        if key != "aliases" && !is_default(Some(value)) {
            return Err(refuse(format!(
                "the endpoint setting {shown} is set: a replica joins a network with aliases only"
            )));
        }
    }
    Ok(())
}

/// The container number of a listed container, for trying the newest replicas first.
pub fn number(summary: &Value) -> u64 {
    label(summary.get("Labels"), NUMBER_LABEL)
        .parse()
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn reference() -> Value {
        json!({
            "Id": "0123456789abcdef",
            "Name": "/shop_web_1",
            "Config": {
                "Hostname": "0123456789ab",
                "User": "65534:65534",
                "Env": ["A=1"],
                "Cmd": ["sleep", "3600"],
                "Image": "busybox:1",
                "Labels": {
                    "com.docker.compose.project": "shop",
                    "com.docker.compose.service": "web",
                    "com.docker.compose.container-number": "1",
                    "autoscaler.enable": "true"
                }
            },
            "HostConfig": {
                "Binds": ["/srv/web:/data:ro"],
                "NetworkMode": "shop_default",
                "CapAdd": ["NET_BIND_SERVICE"],
                "CapDrop": ["ALL"],
                "Privileged": false,
                "PortBindings": {"80/tcp": [{"HostIp": "127.0.0.1", "HostPort": "8080"}]},
                "ReadonlyRootfs": true,
                "SecurityOpt": null,
                "Memory": 0
            },
            "NetworkSettings": {"Networks": {"shop_default": {"Aliases": ["web"]}, "shop_backend": {}}}
        })
    }

    /// What the scaler's `replica_spec` sends for it.
    fn replica() -> Value {
        json!({
            "User": "65534:65534",
            "Env": ["A=1"],
            "Cmd": ["sleep", "3600"],
            "Image": "busybox:1",
            "Labels": {
                "com.docker.compose.project": "shop",
                "com.docker.compose.service": "web",
                "com.docker.compose.container-number": "2",
                "autoscaler.enable": "true",
                "autoscaler.scaled-by": "authoritative-scaler"
            },
            "HostConfig": {
                "Binds": ["/srv/web:/data:ro"],
                "NetworkMode": "shop_default",
                "CapAdd": ["NET_BIND_SERVICE"],
                "CapDrop": ["ALL"],
                "PortBindings": {"80/tcp": [{"HostIp": "127.0.0.1"}]},
                "ReadonlyRootfs": true
            },
            "NetworkingConfig": {"EndpointsConfig": {"shop_default": {"Aliases": ["web", "shop-web-2"]}}}
        })
    }

    fn refused(change: impl FnOnce(&mut Value)) -> Refusal {
        let mut body = replica();
        change(&mut body);
        check(&body, &reference()).unwrap_err()
    }

    #[test]
    fn a_replica_passes() {
        assert_eq!(check(&replica(), &reference()), Ok(()));
        assert_eq!(
            claimed_service(&replica()),
            Ok(("shop".to_owned(), "web".to_owned()))
        );
    }

    #[test]
    fn escapes_to_the_host_are_refused() {
        let r = refused(|b| b["HostConfig"]["Privileged"] = json!(true));
        assert!(r.reason.contains("Privileged"), "{r:?}");
        let r = refused(|b| b["HostConfig"]["privileged"] = json!(true));
        assert!(r.reason.contains("Privileged"), "{r:?}");
        for mode in ["PidMode", "IpcMode", "UTSMode", "UsernsMode", "NetworkMode"] {
            let r = refused(|b| b["HostConfig"][mode] = json!("host"));
            assert!(
                r.reason.contains(mode) && r.reason.contains("host"),
                "{r:?}"
            );
        }
        let r = refused(|b| b["HostConfig"]["Binds"] = json!(["/:/host"]));
        assert!(r.reason.contains("Binds"), "{r:?}");
        let r = refused(|b| {
            b["HostConfig"]["Binds"]
                .as_array_mut()
                .unwrap()
                .push(json!("/var/run/docker.sock:/var/run/docker.sock"))
        });
        assert!(r.reason.contains("Binds"), "{r:?}");
        let r = refused(|b| {
            b["HostConfig"]["Mounts"] = json!([{"Type": "bind", "Source": "/", "Target": "/host"}])
        });
        assert!(r.reason.contains("Mounts"), "{r:?}");
        let r = refused(|b| b["HostConfig"]["CapAdd"] = json!(["NET_BIND_SERVICE", "SYS_ADMIN"]));
        assert!(r.reason.contains("CapAdd"), "{r:?}");
        let r = refused(|b| b["HostConfig"]["CapDrop"] = json!([]));
        assert!(r.reason.contains("CapDrop"), "{r:?}");
        let r = refused(
            |b| b["HostConfig"]["Devices"] = json!([{"PathOnHost": "/dev/sda", "PathInContainer": "/dev/sda", "CgroupPermissions": "rwm"}]),
        );
        assert!(r.reason.contains("Devices"), "{r:?}");
        let r = refused(|b| b["HostConfig"]["SecurityOpt"] = json!(["seccomp=unconfined"]));
        assert!(r.reason.contains("SecurityOpt"), "{r:?}");
        let r = refused(|b| b["HostConfig"]["ReadonlyRootfs"] = json!(false));
        assert!(r.reason.contains("ReadonlyRootfs"), "{r:?}");
        let r = refused(|b| b["HostConfig"]["VolumesFrom"] = json!(["other"]));
        assert!(r.reason.contains("VolumesFrom"), "{r:?}");
        let r = refused(|b| {
            b["HostConfig"]["Privileged"] = json!(false);
            b["HostConfig"]["PRIVILEGED"] = json!(true);
        });
        assert_eq!(r.rule, Rule::Malformed, "{r:?}");
    }

    #[test]
    fn another_image_user_or_command_is_refused() {
        let r = refused(|b| b["Image"] = json!("debian:bookworm"));
        assert!(r.reason.contains("image"), "{r:?}");
        let r = refused(|b| b["User"] = json!("0"));
        assert!(r.reason.contains("user"), "{r:?}");
        let r = refused(|b| {
            b.as_object_mut()
                .unwrap()
                .remove("User")
                .map(|_| ())
                .unwrap()
        });
        assert!(r.reason.contains("user"), "{r:?}");
        let r = refused(|b| b["Cmd"] = json!(["sh", "-c", "cat /etc/shadow"]));
        assert!(r.reason.contains("Cmd"), "{r:?}");
        let r = refused(|b| b["Entrypoint"] = json!(["/bin/sh"]));
        assert!(r.reason.contains("Entrypoint"), "{r:?}");
        let r = refused(|b| b["Unknown"] = json!(1));
        assert_eq!(r.rule, Rule::Malformed);
        // The engine still reads host settings at the top level (its deprecated wrapper).
        for key in ["Privileged", "Binds", "CapAdd", "Cpuset"] {
            let r = refused(|b| b[key] = json!(true));
            assert_eq!(r.rule, Rule::Malformed, "{key}: {r:?}");
        }
    }

    #[test]
    fn labels_ports_and_networks_are_the_services() {
        let r = refused(|b| b["Labels"]["autoscaler.enable"] = json!("false"));
        assert_eq!(r.rule, Rule::NotOptedIn);
        let r = refused(|b| b["Labels"]["com.docker.compose.service"] = json!("db"));
        assert!(r.reason.contains("com.docker.compose.service"), "{r:?}");
        let r =
            refused(|b| b["HostConfig"]["PortBindings"] = json!({"22/tcp": [{"HostPort": "22"}]}));
        assert!(r.reason.contains("22/tcp"), "{r:?}");
        let r = refused(|b| {
            b["HostConfig"]["PortBindings"] = json!({"80/tcp": [{"HostIp": "0.0.0.0"}]})
        });
        assert!(r.reason.contains("80/tcp"), "{r:?}");
        let r = refused(|b| {
            b["NetworkingConfig"]["EndpointsConfig"] = json!({"host": {"Aliases": ["web"]}})
        });
        assert!(r.reason.contains("\"host\""), "{r:?}");
        let r = refused(|b| {
            b["NetworkingConfig"]["EndpointsConfig"]["shop_default"]["IPAddress"] =
                json!("10.0.0.9")
        });
        assert!(r.reason.contains("IPAddress"), "{r:?}");
        let mut unlabelled = replica();
        unlabelled["Labels"]
            .as_object_mut()
            .unwrap()
            .remove(OPT_IN_LABEL);
        assert_eq!(
            claimed_service(&unlabelled).unwrap_err().rule,
            Rule::NotOptedIn
        );
    }
}
