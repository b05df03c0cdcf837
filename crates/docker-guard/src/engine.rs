//! The guard's own client of the Docker engine's unix socket: one HTTP/1 connection per call,
//! a time limit on each, and a bound on what it reads back.
//!
//! Requests to the engine are built here from what the guard checked (method, path, query,
//! body); nothing else of the caller's request (headers such as `X-Registry-Auth`) reaches it.

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::header::{CONTENT_TYPE, HOST, HeaderValue};
use hyper::{Method, Request, StatusCode};
use hyper_util::rt::TokioIo;
use serde_json::Value;
use std::path::PathBuf;
use std::time::Duration;
use tokio::net::UnixStream;

/// Most bytes of an engine answer the guard reads (a listing of a hundred containers is a few
/// hundred KiB).
pub const MAX_RESPONSE: usize = 4 * 1024 * 1024;

/// An engine answer, read whole.
#[derive(Debug, Clone)]
pub struct EngineResponse {
    pub status: StatusCode,
    pub content_type: Option<HeaderValue>,
    pub body: Bytes,
}

/// Why the engine gave no answer.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error(
        "cannot connect to the Docker socket: {0}; is it mounted (DOCKER_SOCKET) and the engine running?"
    )]
    Connect(std::io::Error),
    #[error("the Docker engine's answer was broken: {0}")]
    Http(String),
    #[error("the Docker engine did not answer within {} s", .0.as_secs())]
    Timeout(Duration),
    #[error("the Docker engine's answer is larger than {} MiB", MAX_RESPONSE / 1024 / 1024)]
    TooLarge,
}

/// The engine at a unix socket.
#[derive(Debug, Clone)]
pub struct Engine {
    socket: PathBuf,
    timeout: Duration,
}

impl Engine {
    pub fn new(socket: impl Into<PathBuf>, timeout: Duration) -> Self {
        Self {
            socket: socket.into(),
            timeout,
        }
    }

    /// Sends one request and reads the whole answer, within the time limit.
    pub async fn send(
        &self,
        method: Method,
        path_and_query: &str,
        body: Option<Bytes>,
    ) -> Result<EngineResponse, EngineError> {
        tokio::time::timeout(self.timeout, self.exchange(method, path_and_query, body))
            .await
            .map_err(|_| EngineError::Timeout(self.timeout))?
    }

    async fn exchange(
        &self,
        method: Method,
        path_and_query: &str,
        body: Option<Bytes>,
    ) -> Result<EngineResponse, EngineError> {
        let stream = UnixStream::connect(&self.socket)
            .await
            .map_err(EngineError::Connect)?;
        let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|e| EngineError::Http(e.to_string()))?;
        let driver = tokio::spawn(async move {
            let _ = connection.await;
        });
        let mut request = Request::builder()
            .method(method)
            .uri(path_and_query)
            .header(HOST, "docker");
        if body.is_some() {
            request = request.header(CONTENT_TYPE, "application/json");
        }
        let request = request
            .body(Full::new(body.unwrap_or_default()))
            .map_err(|e| EngineError::Http(e.to_string()))?;
        let result = async {
            let response = sender
                .send_request(request)
                .await
                .map_err(|e| EngineError::Http(e.to_string()))?;
            let status = response.status();
            let content_type = response.headers().get(CONTENT_TYPE).cloned();
            let body = Limited::new(response.into_body(), MAX_RESPONSE)
                .collect()
                .await
                .map_err(|e| {
                    if e.is::<http_body_util::LengthLimitError>() {
                        EngineError::TooLarge
                    } else {
                        EngineError::Http(e.to_string())
                    }
                })?
                .to_bytes();
            Ok(EngineResponse {
                status,
                content_type,
                body,
            })
        }
        .await;
        driver.abort();
        result
    }

    /// A GET whose 200 answer is JSON: `Ok(Ok(value))`, or `Ok(Err(answer))` for any other
    /// status (a 404 the caller passes on as it is).
    pub async fn get_json(
        &self,
        path_and_query: &str,
    ) -> Result<Result<Value, EngineResponse>, EngineError> {
        let response = self.send(Method::GET, path_and_query, None).await?;
        if response.status != StatusCode::OK {
            return Ok(Err(response));
        }
        serde_json::from_slice(&response.body)
            .map(Ok)
            .map_err(|e| EngineError::Http(format!("not JSON: {e}")))
    }
}
