//! The guard at work: each request is classified ([`policy::route`]), what its rule needs is
//! read from the engine (the container, the service's existing containers, the service's
//! spec), the rule decides, and only then is the request sent on, rebuilt from what was
//! checked: the full id the engine resolved instead of the caller's name, the caller's body
//! bytes as they were checked, no caller headers.
//!
//! Refusals answer 403 (413 for a body over [`MAX_BODY`]) with Docker's error form,
//! `{"message": "docker-guard refused ...: why"}`, are counted by rule and logged in one line.

use crate::engine::{Engine, EngineError, EngineResponse};
use crate::metrics::GuardMetrics;
use crate::policy::json::{fields, text};
use crate::policy::replica::{self, PROJECT_LABEL, SERVICE_LABEL};
use crate::policy::route::{self, Route, Target};
use crate::policy::{Refusal, Rule, label, list, opted_in, service};
use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::header::{CONTENT_TYPE, HeaderValue};
use hyper::{Method, Request, Response, StatusCode};
use serde_json::{Value, json};
use std::time::Duration;

/// Most bytes of a request body the guard reads (a container create is a few KiB).
pub const MAX_BODY: usize = 1024 * 1024;
/// Time a caller gets to send a request body.
const BODY_TIMEOUT: Duration = Duration::from_secs(30);
/// Existing containers of a service a create is compared with, newest first.
const MAX_REFERENCES: usize = 8;

/// Why a request got no answer from the engine.
enum Stop {
    Refused(Refusal),
    Engine(EngineError),
    /// The engine's own answer to a look-up (a 404 for a container that does not exist),
    /// passed on as it is.
    Answer(EngineResponse),
}

impl From<Refusal> for Stop {
    fn from(r: Refusal) -> Self {
        Stop::Refused(r)
    }
}

impl From<EngineError> for Stop {
    fn from(e: EngineError) -> Self {
        Stop::Engine(e)
    }
}

/// The proxy's state: the engine and the counters.
pub struct Guard {
    engine: Engine,
    metrics: GuardMetrics,
}

impl Guard {
    pub fn new(engine: Engine, metrics: GuardMetrics) -> Self {
        Self { engine, metrics }
    }

    /// Answers one request; never fails and never panics on what the caller sent.
    pub async fn handle(&self, request: Request<Incoming>) -> Response<Full<Bytes>> {
        let method = request.method().clone();
        let path = request.uri().path().to_owned();
        let target = route::classify(&method, &path);
        let route_name = target.as_ref().map(|t| t.route.name()).unwrap_or("other");
        let answer = match target {
            Ok(target) => self.decide(target, request).await,
            Err(refusal) => Err(Stop::Refused(refusal)),
        };
        let (outcome, response) = match answer {
            Ok(response) | Err(Stop::Answer(response)) => ("forwarded", engine_answer(response)),
            Err(Stop::Refused(refusal)) => {
                self.metrics
                    .refusals
                    .with_label_values(&[route_name, refusal.rule.as_str()])
                    .inc();
                tracing::warn!(%method, %path, rule = refusal.rule.as_str(), reason = %refusal.reason,
                    "refused");
                let status = if refusal.rule == Rule::TooLarge {
                    StatusCode::PAYLOAD_TOO_LARGE
                } else {
                    StatusCode::FORBIDDEN
                };
                let message = format!("docker-guard refused {method} {path}: {}", refusal.reason);
                ("refused", error(status, &message))
            }
            Err(Stop::Engine(e)) => {
                tracing::warn!(%method, %path, error = %e, "the engine gave no answer");
                (
                    "engine_error",
                    error(StatusCode::BAD_GATEWAY, &format!("docker-guard: {e}")),
                )
            }
        };
        self.metrics
            .requests
            .with_label_values(&[route_name, outcome])
            .inc();
        response
    }

    async fn decide(
        &self,
        target: Target,
        request: Request<Incoming>,
    ) -> Result<EngineResponse, Stop> {
        let Target { version, route } = target;
        let method = request.method().clone();
        let mut query = route::parameters(&route, request.uri().query())?;
        let body = if route.has_body() {
            Some(read_body(request).await?)
        } else {
            None
        };
        let json = || -> Result<Value, Refusal> {
            serde_json::from_slice(body.as_deref().unwrap_or_default())
                .map_err(|_| Refusal::new(Rule::Malformed, "the body is not JSON".into()))
        };
        let with_query = |path: String, query: &[(String, String)]| {
            if query.is_empty() {
                path
            } else {
                format!("{path}?{}", route::encode(query))
            }
        };
        match &route {
            Route::Ping | Route::Version => {
                let path = format!(
                    "{version}/{}",
                    if route == Route::Ping {
                        "_ping"
                    } else {
                        "version"
                    }
                );
                Ok(self.engine.send(method, &path, None).await?)
            }
            Route::ListContainers => {
                let filters = query
                    .iter()
                    .find(|(k, _)| k == "filters")
                    .map(|(_, v)| v.as_str());
                let filters = list::with_opt_in(filters)?;
                query.retain(|(k, _)| k != "filters");
                query.push(("filters".into(), filters));
                let path = with_query(format!("{version}/containers/json"), &query);
                Ok(self.engine.send(Method::GET, &path, None).await?)
            }
            Route::InspectContainer(id) => {
                let (_, answer) = self.container(&version, id, &query).await?;
                Ok(answer)
            }
            Route::StartContainer(id) | Route::StopContainer(id) | Route::RemoveContainer(id) => {
                let (container, _) = self.container(&version, id, &[]).await?;
                let full = text(container.get("Id"));
                let path = match &route {
                    Route::StartContainer(_) => format!("{version}/containers/{full}/start"),
                    Route::StopContainer(_) => format!("{version}/containers/{full}/stop"),
                    _ => format!("{version}/containers/{full}"),
                };
                Ok(self
                    .engine
                    .send(method, &with_query(path, &query), None)
                    .await?)
            }
            Route::CreateContainer => {
                self.check_create(&version, &json()?).await?;
                let path = with_query(format!("{version}/containers/create"), &query);
                Ok(self.engine.send(Method::POST, &path, body).await?)
            }
            Route::ConnectNetwork(network) => {
                let (network, forwarded) = self.check_connect(&version, network, &json()?).await?;
                let path = format!("{version}/networks/{network}/connect");
                Ok(self
                    .engine
                    .send(Method::POST, &path, Some(forwarded))
                    .await?)
            }
            Route::InspectService(id) => {
                let (_, answer) = self.service(&version, id, &query).await?;
                Ok(answer)
            }
            Route::UpdateService(id) => {
                let (current, _) = self.service(&version, id, &[]).await?;
                service::check_update(&json()?, current.get("Spec").unwrap_or(&Value::Null))?;
                let full = text(current.get("ID"));
                let path = with_query(format!("{version}/services/{full}/update"), &query);
                Ok(self.engine.send(Method::POST, &path, body).await?)
            }
        }
    }

    /// A container's inspect data and the engine's answer, when it is opted in.
    async fn container(
        &self,
        version: &str,
        id: &str,
        query: &[(String, String)],
    ) -> Result<(Value, EngineResponse), Stop> {
        let path = format!("{version}/containers/{id}/json");
        self.opted_in_object(path, query, "/Config/Labels", &format!("container {id}"))
            .await
    }

    /// A Swarm service's inspect data and the engine's answer, when it is opted in.
    async fn service(
        &self,
        version: &str,
        id: &str,
        query: &[(String, String)],
    ) -> Result<(Value, EngineResponse), Stop> {
        let path = format!("{version}/services/{id}");
        self.opted_in_object(path, query, "/Spec/Labels", &format!("service {id}"))
            .await
    }

    /// Inspects an object at `path` and refuses it unless its labels (at `labels`) opt in.
    async fn opted_in_object(
        &self,
        mut path: String,
        query: &[(String, String)],
        labels: &str,
        what: &str,
    ) -> Result<(Value, EngineResponse), Stop> {
        if !query.is_empty() {
            path = format!("{path}?{}", route::encode(query));
        }
        let answer = self.engine.send(Method::GET, &path, None).await?;
        let object = parse(&answer)?;
        if !opted_in(object.pointer(labels)) {
            return Err(Stop::Refused(not_opted_in(what)));
        }
        Ok((object, answer))
    }

    /// The opted-in containers of a compose service, newest first.
    async fn replicas(
        &self,
        version: &str,
        project: &str,
        service: &str,
    ) -> Result<Vec<Value>, Stop> {
        let query = route::encode(&[
            ("all".into(), "true".into()),
            ("filters".into(), list::service_filters(project, service)),
        ]);
        let answer = self
            .engine
            .send(
                Method::GET,
                &format!("{version}/containers/json?{query}"),
                None,
            )
            .await?;
        let mut listed = match parse(&answer)? {
            Value::Array(items) => items,
            _ => Vec::new(),
        };
        if listed.is_empty() {
            return Err(Stop::Refused(not_opted_in(&format!(
                "compose service {service} of project {project}"
            ))));
        }
        listed.sort_by_key(|c| std::cmp::Reverse(replica::number(c)));
        Ok(listed)
    }

    /// A create passes when it is a replica of one of the service's newest containers.
    async fn check_create(&self, version: &str, body: &Value) -> Result<(), Stop> {
        let (project, service) = replica::claimed_service(body)?;
        let mut first_refusal = None;
        for summary in self
            .replicas(version, &project, &service)
            .await?
            .iter()
            .take(MAX_REFERENCES)
        {
            let id = text(summary.get("Id"));
            let Ok(Ok(reference)) = self
                .engine
                .get_json(&format!("{version}/containers/{id}/json"))
                .await
            else {
                continue;
            };
            if !opted_in(reference.pointer("/Config/Labels")) {
                continue;
            }
            match replica::check(body, &reference) {
                Ok(()) => return Ok(()),
                Err(refusal) => {
                    first_refusal.get_or_insert(refusal);
                }
            }
        }
        Err(Stop::Refused(first_refusal.unwrap_or_else(|| {
            not_opted_in(&format!("compose service {service} of project {project}"))
        })))
    }

    /// A network connect passes for an opted-in container and a network its service's
    /// containers are on; returns the network's id and the body to send.
    async fn check_connect(
        &self,
        version: &str,
        network: &str,
        body: &Value,
    ) -> Result<(String, Bytes), Stop> {
        let malformed = |e: String| Refusal::new(Rule::Malformed, e);
        let members = fields(Some(body), "the body").map_err(malformed)?;
        if let Some((name, _)) = members
            .iter()
            .find(|(k, _)| !matches!(k.as_str(), "container" | "endpointconfig"))
        {
            return Err(Stop::Refused(malformed(format!(
                "{name:?} is not a setting the scaler sends"
            ))));
        }
        let container = text(members.get("container").map(|(_, v)| *v));
        if !route::valid_id(container) {
            return Err(Stop::Refused(malformed(
                "\"Container\" is not a container name or id".into(),
            )));
        }
        let endpoint = members
            .get("endpointconfig")
            .map(|(_, v)| (*v).clone())
            .unwrap_or(Value::Null);
        replica::endpoint_aliases_only(&endpoint)?;
        let (inspected, _) = self.container(version, container, &[]).await?;
        let labels = inspected.pointer("/Config/Labels");
        let (project, service) = (label(labels, PROJECT_LABEL), label(labels, SERVICE_LABEL));
        let mut network_id = None;
        for sibling in self.replicas(version, project, service).await? {
            let Some(networks) = sibling
                .pointer("/NetworkSettings/Networks")
                .and_then(Value::as_object)
            else {
                continue;
            };
            for (name, settings) in networks {
                let id = text(settings.get("NetworkID"));
                if !id.is_empty() && (name == network || id == network) {
                    network_id = Some(id.to_owned());
                }
            }
        }
        let Some(network_id) = network_id else {
            return Err(Stop::Refused(Refusal::new(
                Rule::NotAReplica,
                format!(
                    "network {network:?} is not one the containers of service {service} are on"
                ),
            )));
        };
        let forwarded = json!({"Container": text(inspected.get("Id")), "EndpointConfig": endpoint});
        Ok((network_id, Bytes::from(forwarded.to_string())))
    }
}

fn not_opted_in(what: &str) -> Refusal {
    Refusal::new(
        Rule::NotOptedIn,
        format!(
            "{what} is not opted in to autoscaling (label {}={} on the service)",
            crate::policy::OPT_IN_LABEL,
            crate::policy::OPT_IN_VALUE
        ),
    )
}

/// The JSON of a 200 answer; any other answer is passed on as it is.
fn parse(answer: &EngineResponse) -> Result<Value, Stop> {
    if answer.status != StatusCode::OK {
        return Err(Stop::Answer(answer.clone()));
    }
    serde_json::from_slice(&answer.body)
        .map_err(|e| Stop::Engine(EngineError::Http(format!("not JSON: {e}"))))
}

async fn read_body(request: Request<Incoming>) -> Result<Bytes, Refusal> {
    let collected = tokio::time::timeout(
        BODY_TIMEOUT,
        Limited::new(request.into_body(), MAX_BODY).collect(),
    )
    .await
    .map_err(|_| {
        Refusal::new(
            Rule::Malformed,
            format!(
                "the body did not arrive within {} s",
                BODY_TIMEOUT.as_secs()
            ),
        )
    })?;
    match collected {
        Ok(body) => Ok(body.to_bytes()),
        Err(e) if e.is::<http_body_util::LengthLimitError>() => Err(Refusal::new(
            Rule::TooLarge,
            format!("the body is larger than {} KiB", MAX_BODY / 1024),
        )),
        Err(e) => Err(Refusal::new(
            Rule::Malformed,
            format!("the body could not be read: {e}"),
        )),
    }
}

fn engine_answer(answer: EngineResponse) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(answer.body));
    *response.status_mut() = answer.status;
    if let Some(content_type) = answer.content_type {
        response.headers_mut().insert(CONTENT_TYPE, content_type);
    }
    response
}

/// An error in the engine's own form, which Docker clients show as the message.
fn error(status: StatusCode, message: &str) -> Response<Full<Bytes>> {
    let body = json!({ "message": message }).to_string();
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response
}
