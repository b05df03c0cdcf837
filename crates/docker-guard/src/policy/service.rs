//! A Swarm service update passes only when the service is opted in (its spec's labels) and the
//! new spec is the current one with another replica count: what the scaler's Swarm backend
//! sends. The image, the mounts, the capabilities and every other setting stay as the operator
//! deployed them.

use super::json::{ascii_names, normalized};
use super::{Refusal, Rule};
use serde_json::Value;

/// Checks an update `body` (a ServiceSpec) against the service's `current` spec.
pub fn check_update(body: &Value, current: &Value) -> Result<(), Refusal> {
    if !ascii_names(body) {
        return Err(Refusal::new(
            Rule::Malformed,
            "the spec has a member name that is not ASCII".into(),
        ));
    }
    let replicas = body.pointer("/Mode/Replicated/Replicas");
    if replicas.is_none_or(|r| r.as_u64().is_none()) {
        return Err(Refusal::new(
            Rule::SpecChanged,
            "Mode.Replicated.Replicas is not a replica count: only a replicated service's count may change".into(),
        ));
    }
    let without_count = |spec: &Value| {
        let mut spec = spec.clone();
        if let Some(replicated) = spec
            .pointer_mut("/Mode/Replicated")
            .and_then(Value::as_object_mut)
        {
            replicated.remove("Replicas");
        }
        normalized(&spec)
    };
    let (new, old) = (without_count(body), without_count(current));
    if new == old {
        return Ok(());
    }
    let changed = differing_member(&new, &old).unwrap_or_else(|| "the spec".into());
    Err(Refusal::new(
        Rule::SpecChanged,
        format!(
            "{changed} differs from the service's spec: an update may change the replica count only"
        ),
    ))
}

/// The path of the first member that differs, for the refusal.
fn differing_member(new: &Value, old: &Value) -> Option<String> {
    let (Value::Object(a), Value::Object(b)) = (new, old) else {
        return None;
    };
    let mut keys: Vec<&String> = a.keys().chain(b.keys()).collect();
    keys.sort();
    keys.dedup();
    let key = keys.into_iter().find(|k| a.get(*k) != b.get(*k))?;
    let deeper = match (a.get(key), b.get(key)) {
        (Some(x), Some(y)) => differing_member(x, y),
        _ => None,
    };
    Some(match deeper {
        Some(rest) => format!("{key}.{rest}"),
        None => key.clone(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn spec(replicas: u64) -> Value {
        json!({
            "Name": "web",
            "Labels": {"autoscaler.enable": "true"},
            "TaskTemplate": {
                "ContainerSpec": {"Image": "busybox:1", "Args": ["sleep", "3600"], "Init": false},
                "Resources": {"Limits": {}, "Reservations": {}},
                "ForceUpdate": 0
            },
            "Mode": {"Replicated": {"Replicas": replicas}}
        })
    }

    #[test]
    fn only_the_count_may_change() {
        assert_eq!(check_update(&spec(3), &spec(1)), Ok(()));
        let mut body = spec(3);
        body["TaskTemplate"]["ContainerSpec"]["Image"] = json!("debian:bookworm");
        let r = check_update(&body, &spec(1)).unwrap_err();
        assert_eq!(r.rule, Rule::SpecChanged);
        assert!(
            r.reason.contains("TaskTemplate.ContainerSpec.Image"),
            "{r:?}"
        );
        let mut body = spec(3);
        body["TaskTemplate"]["ContainerSpec"]["Mounts"] =
            json!([{"Type": "bind", "Source": "/", "Target": "/host"}]);
        assert!(check_update(&body, &spec(1)).is_err());
        let mut body = spec(3);
        body["TaskTemplate"]["ContainerSpec"]["capabilityAdd"] = json!(["SYS_ADMIN"]);
        assert!(check_update(&body, &spec(1)).is_err());
        let mut body = spec(3);
        body["Mode"] = json!({"Global": {}});
        assert!(check_update(&body, &spec(1)).is_err());
        let mut body = spec(3);
        body["Mode"]["Replicated"]["Replicas"] = json!(-1);
        assert!(check_update(&body, &spec(1)).is_err());
    }
}
