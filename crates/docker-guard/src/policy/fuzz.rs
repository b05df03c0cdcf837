//! Property tests: the rules answer every input, however made up, without panicking, and a
//! create that differs from the reference in a host setting is never let through.

use super::{list, replica, route, service};
use hyper::Method;
use proptest::prelude::*;
use serde_json::{Map, Value, json};

/// Any JSON value, with the member names the engine reads among the random ones.
fn any_json() -> impl Strategy<Value = Value> {
    let name = prop_oneof![
        Just("HostConfig".to_owned()),
        Just("Privileged".to_owned()),
        Just("privileged".to_owned()),
        Just("Labels".to_owned()),
        Just("Image".to_owned()),
        Just("Binds".to_owned()),
        Just("Mode".to_owned()),
        Just("Replicated".to_owned()),
        Just("Replicas".to_owned()),
        Just("NetworkingConfig".to_owned()),
        Just("EndpointsConfig".to_owned()),
        ".{0,8}",
    ];
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<f64>().prop_map(|f| json!(f)),
        ".{0,12}".prop_map(Value::String),
    ];
    leaf.prop_recursive(4, 48, 6, move |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::vec((name.clone(), inner), 0..6)
                .prop_map(|members| Value::Object(members.into_iter().collect::<Map<_, _>>())),
        ]
    })
}

proptest! {
    #[test]
    fn paths_and_queries_never_panic(path in "(/v[0-9.]{0,5})?(/[a-z_%.0-9]{0,10}){0,4}", query in ".{0,40}") {
        for method in [Method::GET, Method::POST, Method::DELETE, Method::HEAD] {
            if let Ok(target) = route::classify(&method, &path) {
                let _ = route::parameters(&target.route, Some(&query));
            }
        }
        let _ = list::with_opt_in(Some(&query));
    }

    #[test]
    fn bodies_never_panic(body in any_json(), reference in any_json()) {
        let _ = replica::claimed_service(&body);
        let _ = replica::check(&body, &reference);
        let _ = replica::endpoint_aliases_only(&body);
        let _ = service::check_update(&body, &reference);
    }

    #[test]
    fn a_changed_host_setting_never_passes(value in any_json().prop_filter("a setting", |v| !super::json::is_default(Some(v)))) {
        let reference = json!({
            "Name": "/shop_web_1",
            "Config": {"Image": "busybox:1", "Labels": {
                "com.docker.compose.project": "shop", "com.docker.compose.service": "web",
                "autoscaler.enable": "true"}},
            "HostConfig": {"NetworkMode": "shop_default"}
        });
        for key in ["Privileged", "Binds", "Mounts", "CapAdd", "Devices", "SecurityOpt", "PidMode", "VolumesFrom"] {
            let body = json!({
                "Image": "busybox:1",
                "Labels": reference["Config"]["Labels"],
                "HostConfig": {"NetworkMode": "shop_default", key: value},
            });
            prop_assert!(replica::check(&body, &reference).is_err(), "{key}: {value}");
        }
    }
}
