//! Which Engine API calls exist at all behind the guard: the ones the authoritative-scaler makes
//! (`crates/authoritative-scaler/src/backend/{compose,swarm}.rs`), each with the query
//! parameters it sends. Anything else is refused before the engine is asked anything.

use super::{Refusal, Rule};
use hyper::Method;

/// An allowed call, with the object it names (a container, network or service id or name).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route {
    /// `GET|HEAD /_ping`
    Ping,
    /// `GET /version`
    Version,
    /// `GET /containers/json`: answered for opted-in containers only.
    ListContainers,
    /// `GET /containers/{id}/json`
    InspectContainer(String),
    /// `POST /containers/create`
    CreateContainer,
    /// `POST /containers/{id}/start`
    StartContainer(String),
    /// `POST /containers/{id}/stop`
    StopContainer(String),
    /// `DELETE /containers/{id}`
    RemoveContainer(String),
    /// `POST /networks/{id}/connect`
    ConnectNetwork(String),
    /// `GET /services/{id}`
    InspectService(String),
    /// `POST /services/{id}/update`
    UpdateService(String),
}

/// Every value [`Route::name`] takes, and `other` for refused endpoints: the metrics' labels.
pub const ROUTE_NAMES: [&str; 12] = [
    "ping",
    "version",
    "list_containers",
    "inspect_container",
    "create_container",
    "start_container",
    "stop_container",
    "remove_container",
    "connect_network",
    "inspect_service",
    "update_service",
    "other",
];

impl Route {
    /// A bounded name, for metrics and logs.
    pub fn name(&self) -> &'static str {
        match self {
            Route::Ping => "ping",
            Route::Version => "version",
            Route::ListContainers => "list_containers",
            Route::InspectContainer(_) => "inspect_container",
            Route::CreateContainer => "create_container",
            Route::StartContainer(_) => "start_container",
            Route::StopContainer(_) => "stop_container",
            Route::RemoveContainer(_) => "remove_container",
            Route::ConnectNetwork(_) => "connect_network",
            Route::InspectService(_) => "inspect_service",
            Route::UpdateService(_) => "update_service",
        }
    }

    /// The query parameters the scaler sends on this call; any other is refused.
    fn parameters(&self) -> &'static [&'static str] {
        match self {
            Route::ListContainers => &["all", "limit", "size", "filters"],
            Route::InspectContainer(_) => &["size"],
            Route::CreateContainer => &["name", "platform"],
            Route::StopContainer(_) => &["t", "signal"],
            Route::RemoveContainer(_) => &["v", "force", "link"],
            Route::InspectService(_) => &["insertDefaults"],
            Route::UpdateService(_) => &["version", "registryAuthFrom", "rollback"],
            Route::Ping | Route::Version | Route::StartContainer(_) | Route::ConnectNetwork(_) => {
                &[]
            }
        }
    }

    /// Whether the call carries a JSON body the guard reads.
    pub fn has_body(&self) -> bool {
        matches!(
            self,
            Route::CreateContainer | Route::ConnectNetwork(_) | Route::UpdateService(_)
        )
    }
}

/// A request's path split into the API version prefix (`/v1.41`, kept when forwarding) and the
/// allowed call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub version: String,
    pub route: Route,
}

/// The oldest API version a request may name: the scaler uses 1.41 (or none, the engine's
/// own). Older versions read some calls' bodies differently (a start before 1.24 takes a host
/// configuration), which the rules here do not follow.
const MIN_VERSION: (u32, u32) = (1, 40);

/// Classifies `method` and `path` (without the query); refuses what the scaler never calls.
pub fn classify(method: &Method, path: &str) -> Result<Target, Refusal> {
    let refuse = || {
        Refusal::new(
            Rule::Endpoint,
            "the scaler never makes this call".to_owned(),
        )
    };
    let (version, rest) = split_version(path);
    if let Some((major, minor)) = version
        .strip_prefix("/v")
        .and_then(|v| v.split_once('.'))
        .map(|(a, b)| (a.parse::<u32>().unwrap_or(0), b.parse::<u32>().unwrap_or(0)))
        && (major, minor) < MIN_VERSION
    {
        return Err(Refusal::new(
            Rule::Endpoint,
            format!(
                "API version {major}.{minor} is older than {}.{}, the oldest the guard reads",
                MIN_VERSION.0, MIN_VERSION.1
            ),
        ));
    }
    let segments: Vec<&str> = rest
        .strip_prefix('/')
        .ok_or_else(refuse)?
        .split('/')
        .collect();
    let id = |s: &str| -> Result<String, Refusal> {
        if valid_id(s) {
            Ok(s.to_owned())
        } else {
            Err(Refusal::new(
                Rule::Malformed,
                format!("{s:?} is not a container, network or service name or id"),
            ))
        }
    };
    let route = match (method, segments.as_slice()) {
        (&Method::GET | &Method::HEAD, ["_ping"]) => Route::Ping,
        (&Method::GET, ["version"]) => Route::Version,
        (&Method::GET, ["containers", "json"]) => Route::ListContainers,
        (&Method::POST, ["containers", "create"]) => Route::CreateContainer,
        (&Method::GET, ["containers", c, "json"]) => Route::InspectContainer(id(c)?),
        (&Method::POST, ["containers", c, "start"]) => Route::StartContainer(id(c)?),
        (&Method::POST, ["containers", c, "stop"]) => Route::StopContainer(id(c)?),
        (&Method::DELETE, ["containers", c]) => Route::RemoveContainer(id(c)?),
        (&Method::POST, ["networks", n, "connect"]) => Route::ConnectNetwork(id(n)?),
        (&Method::GET, ["services", s]) => Route::InspectService(id(s)?),
        (&Method::POST, ["services", s, "update"]) => Route::UpdateService(id(s)?),
        _ => return Err(refuse()),
    };
    Ok(Target {
        version: version.to_owned(),
        route,
    })
}

/// `/v1.41/containers/json` into (`/v1.41`, `/containers/json`); no prefix: (`""`, path).
fn split_version(path: &str) -> (&str, &str) {
    let Some(rest) = path.strip_prefix("/v") else {
        return ("", path);
    };
    let end = rest.find('/').unwrap_or(rest.len());
    let number = &rest[..end];
    let is_version = number.split_once('.').is_some_and(|(a, b)| {
        !a.is_empty() && !b.is_empty() && a.bytes().chain(b.bytes()).all(|c| c.is_ascii_digit())
    });
    if is_version {
        path.split_at(2 + end)
    } else {
        ("", path)
    }
}

/// Docker's names and ids: `[a-zA-Z0-9][a-zA-Z0-9_.-]*`, at most 256 characters. Nothing that
/// could be decoded into another path (`%2F`) or another object.
pub fn valid_id(s: &str) -> bool {
    s.len() <= 256
        && s.bytes().next().is_some_and(|c| c.is_ascii_alphanumeric())
        && s.bytes()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'_' | b'.' | b'-'))
}

/// The request's query parameters, checked against what the scaler sends on this call; a
/// parameter given twice is refused (the engine would read only the first).
pub fn parameters(route: &Route, query: Option<&str>) -> Result<Vec<(String, String)>, Refusal> {
    let pairs: Vec<(String, String)> = form_urlencoded::parse(query.unwrap_or("").as_bytes())
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    let allowed = route.parameters();
    for (i, (key, value)) in pairs.iter().enumerate() {
        if !allowed.contains(&key.as_str()) {
            return Err(Refusal::new(
                Rule::Query,
                format!("the query parameter {key:?} is not one the scaler sends"),
            ));
        }
        if pairs[..i].iter().any(|(k, _)| k == key) {
            return Err(Refusal::new(
                Rule::Query,
                format!("the query parameter {key:?} is given twice"),
            ));
        }
        let loosening = match (route, key.as_str()) {
            (Route::RemoveContainer(_), "link") => value != "false",
            (Route::CreateContainer, "platform") => !value.is_empty(),
            (Route::CreateContainer, "name") => !valid_id(value),
            (Route::UpdateService(_), "rollback") => !value.is_empty(),
            (Route::UpdateService(_), "registryAuthFrom") => value != "spec",
            _ => false,
        };
        if loosening {
            return Err(Refusal::new(
                Rule::Query,
                format!("{key}={value:?} is not what the scaler sends"),
            ));
        }
    }
    Ok(pairs)
}

/// Encodes query parameters.
pub fn encode(pairs: &[(String, String)]) -> String {
    form_urlencoded::Serializer::new(String::new())
        .extend_pairs(pairs)
        .finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn route(method: Method, path: &str) -> Result<Route, Rule> {
        classify(&method, path).map(|t| t.route).map_err(|r| r.rule)
    }

    #[test]
    fn only_the_scalers_calls_pass() {
        assert_eq!(route(Method::GET, "/_ping"), Ok(Route::Ping));
        assert_eq!(route(Method::HEAD, "/v1.41/_ping"), Ok(Route::Ping));
        assert_eq!(
            route(Method::GET, "/v1.41/containers/json"),
            Ok(Route::ListContainers)
        );
        assert_eq!(
            route(Method::DELETE, "/containers/abc_1"),
            Ok(Route::RemoveContainer("abc_1".into()))
        );
        assert_eq!(
            route(Method::POST, "/services/web/update"),
            Ok(Route::UpdateService("web".into()))
        );
        for (method, path) in [
            (Method::POST, "/containers/abc/exec"),
            (Method::POST, "/containers/abc/kill"),
            (Method::GET, "/containers/abc/archive"),
            (Method::PUT, "/containers/abc/archive"),
            (Method::POST, "/images/create"),
            (Method::POST, "/build"),
            (Method::GET, "/volumes"),
            (Method::POST, "/swarm/init"),
            (Method::GET, "/secrets"),
            (Method::DELETE, "/services/web"),
            (Method::POST, "/services/create"),
            (Method::GET, "/containers/json/extra"),
            (Method::GET, "/v1.41"),
            (Method::GET, ""),
            (Method::GET, "/vx.1/_ping"),
            (Method::POST, "/containers/create/"),
        ] {
            assert_eq!(
                route(method.clone(), path),
                Err(Rule::Endpoint),
                "{method} {path}"
            );
        }
        assert_eq!(
            route(Method::GET, "/containers/..%2Fimages/json"),
            Err(Rule::Malformed)
        );
        assert_eq!(
            route(Method::POST, "/containers//start"),
            Err(Rule::Malformed)
        );
        assert_eq!(
            classify(&Method::GET, "/v1.41/version").unwrap().version,
            "/v1.41"
        );
        assert_eq!(
            route(Method::POST, "/v1.23/containers/abc/start"),
            Err(Rule::Endpoint),
            "a start before API 1.24 may carry a host configuration"
        );
        assert_eq!(route(Method::GET, "/v1.44/_ping"), Ok(Route::Ping));
    }

    #[test]
    fn queries_carry_only_what_the_scaler_sends() {
        let list = Route::ListContainers;
        let pairs = parameters(&list, Some("all=true&filters=%7B%7D&size=false")).unwrap();
        assert_eq!(pairs.len(), 3);
        assert_eq!(
            parameters(&list, Some("all=1&all=0")).unwrap_err().rule,
            Rule::Query
        );
        let remove = Route::RemoveContainer("x".into());
        assert!(parameters(&remove, Some("v=false&force=true&link=false")).is_ok());
        assert!(parameters(&remove, Some("link=true")).is_err());
        let update = Route::UpdateService("x".into());
        assert!(parameters(&update, Some("version=3&registryAuthFrom=spec")).is_ok());
        assert!(parameters(&update, Some("version=3&rollback=previous")).is_err());
        assert!(parameters(&Route::StartContainer("x".into()), Some("detachKeys=a")).is_err());
        assert!(parameters(&Route::Ping, None).unwrap().is_empty());
    }
}
