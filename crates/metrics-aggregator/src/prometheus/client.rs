//! A minimal client of the Prometheus HTTP API: instant queries at a given time (answers read
//! into `(labels, value)` samples) and range queries (series of `(time, value)` points), every
//! failure classified.

use serde::Deserialize;
use std::collections::HashMap;
use std::time::Duration;

/// Why a query gave no answer. Each kind is a counter label.
#[derive(Debug, thiserror::Error)]
pub enum QueryError {
    #[error("cannot reach Prometheus: {0}")]
    Unreachable(String),
    #[error("Prometheus answered HTTP {status}: {body}")]
    Status { status: u16, body: String },
    #[error("Prometheus answered something unreadable: {0}")]
    Malformed(String),
    #[error("Prometheus refused the query ({kind}): {message}")]
    Refused { kind: String, message: String },
}

impl QueryError {
    /// Every value [`QueryError::kind`] can take.
    pub const KINDS: [&'static str; 4] = ["unreachable", "http_status", "malformed", "refused"];

    /// A bounded label for counters.
    pub fn kind(&self) -> &'static str {
        match self {
            QueryError::Unreachable(_) => "unreachable",
            QueryError::Status { .. } => "http_status",
            QueryError::Malformed(_) => "malformed",
            QueryError::Refused { .. } => "refused",
        }
    }
}

/// One sample of an instant vector.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    pub labels: HashMap<String, String>,
    pub value: f64,
}

/// The Prometheus API at one base URL.
#[derive(Debug, Clone)]
pub struct PrometheusClient {
    /// Base URL without trailing slash.
    base: String,
    /// HTTP client with the request timeout set.
    http: reqwest::Client,
}

#[derive(Deserialize)]
struct Envelope {
    status: String,
    #[serde(default)]
    data: Option<Data>,
    #[serde(default, rename = "errorType")]
    error_type: Option<String>,
    #[serde(default)]
    error: Option<String>,
}

#[derive(Deserialize)]
struct Data {
    #[serde(rename = "resultType")]
    result_type: String,
    result: serde_json::Value,
}

/// One series of a range query.
#[derive(Debug, Clone, PartialEq)]
pub struct Series {
    pub labels: HashMap<String, String>,
    /// `(Unix seconds, value)`, in time order.
    pub points: Vec<(f64, f64)>,
}

#[derive(Deserialize)]
struct MatrixSeries {
    #[serde(default)]
    metric: HashMap<String, String>,
    values: Vec<(f64, String)>,
}

#[derive(Deserialize)]
struct VectorSample {
    #[serde(default)]
    metric: HashMap<String, String>,
    value: (f64, String),
}

impl PrometheusClient {
    pub fn new(base: &str, timeout: Duration) -> Result<Self, reqwest::Error> {
        let http = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout.min(Duration::from_secs(5)))
            .build()?;
        Ok(Self {
            base: base.trim_end_matches('/').to_owned(),
            http,
        })
    }

    /// The base URL.
    pub fn base(&self) -> &str {
        &self.base
    }

    /// Evaluates `promql` at Unix time `at_secs`; the answer must be an instant vector.
    pub async fn query(&self, promql: &str, at_secs: u64) -> Result<Vec<Sample>, QueryError> {
        let body = self
            .get(
                "query",
                &[("query", promql), ("time", &at_secs.to_string())],
            )
            .await?;
        parse_vector(&body)
    }

    /// Evaluates `promql` every `step_secs` from `start` to `end` (Unix seconds); the answer
    /// must be a range vector (Prometheus answers at most 11,000 points per series: split longer
    /// ranges).
    pub async fn query_range(
        &self,
        promql: &str,
        start: u64,
        end: u64,
        step_secs: u64,
    ) -> Result<Vec<Series>, QueryError> {
        let body = self
            .get(
                "query_range",
                &[
                    ("query", promql),
                    ("start", &start.to_string()),
                    ("end", &end.to_string()),
                    ("step", &step_secs.max(1).to_string()),
                ],
            )
            .await?;
        parse_matrix(&body)
    }

    /// GETs `/api/v1/<endpoint>` and returns the body of an answer worth parsing.
    async fn get(&self, endpoint: &str, params: &[(&str, &str)]) -> Result<Vec<u8>, QueryError> {
        let response = self
            .http
            .get(format!("{}/api/v1/{endpoint}", self.base))
            .query(params)
            .send()
            .await
            .map_err(|e| QueryError::Unreachable(without_url(e)))?;
        let status = response.status();
        let body = response
            .bytes()
            .await
            .map_err(|e| QueryError::Unreachable(without_url(e)))?;
        // 400 and 422 carry a JSON error body that says more than the status.
        if !(status.is_success() || status.as_u16() == 400 || status.as_u16() == 422) {
            let snippet = String::from_utf8_lossy(&body[..body.len().min(200)])
                .trim()
                .to_owned();
            return Err(QueryError::Status {
                status: status.as_u16(),
                body: snippet,
            });
        }
        Ok(body.to_vec())
    }
}

/// The result of a successful answer whose result is of `kind` (`vector`, `matrix`).
fn result_of(body: &[u8], kind: &str) -> Result<serde_json::Value, QueryError> {
    let envelope: Envelope =
        serde_json::from_slice(body).map_err(|e| QueryError::Malformed(e.to_string()))?;
    if envelope.status != "success" {
        return Err(QueryError::Refused {
            kind: envelope.error_type.unwrap_or_else(|| "unknown".into()),
            message: envelope.error.unwrap_or_default(),
        });
    }
    let data = envelope
        .data
        .ok_or_else(|| QueryError::Malformed("success without data".into()))?;
    if data.result_type != kind {
        return Err(QueryError::Malformed(format!(
            "expected a {kind}, got a {}",
            data.result_type
        )));
    }
    Ok(data.result)
}

/// Reads an API answer that should hold a range vector.
pub fn parse_matrix(body: &[u8]) -> Result<Vec<Series>, QueryError> {
    let series: Vec<MatrixSeries> = serde_json::from_value(result_of(body, "matrix")?)
        .map_err(|e| QueryError::Malformed(e.to_string()))?;
    series
        .into_iter()
        .map(|s| {
            let points = s
                .values
                .into_iter()
                .map(|(t, v)| {
                    parse_value(&v)
                        .map(|v| (t, v))
                        .ok_or_else(|| QueryError::Malformed(format!("sample value {v:?}")))
                })
                .collect::<Result<_, _>>()?;
            Ok(Series {
                labels: s.metric,
                points,
            })
        })
        .collect()
}

/// Reads an API answer that should hold an instant vector.
pub fn parse_vector(body: &[u8]) -> Result<Vec<Sample>, QueryError> {
    let result = result_of(body, "vector")?;
    let samples: Vec<VectorSample> =
        serde_json::from_value(result).map_err(|e| QueryError::Malformed(e.to_string()))?;
    samples
        .into_iter()
        .map(|s| {
            let value = parse_value(&s.value.1)
                .ok_or_else(|| QueryError::Malformed(format!("sample value {:?}", s.value.1)))?;
            Ok(Sample {
                labels: s.metric,
                value,
            })
        })
        .collect()
}

/// Prometheus writes values as strings, with `NaN`, `+Inf` and `-Inf` spelled its own way.
fn parse_value(text: &str) -> Option<f64> {
    match text {
        "NaN" => Some(f64::NAN),
        "+Inf" => Some(f64::INFINITY),
        "-Inf" => Some(f64::NEG_INFINITY),
        _ => text.parse().ok(),
    }
}

/// reqwest's message without the URL (which repeats the query and buries the cause).
fn without_url(e: reqwest::Error) -> String {
    let e = e.without_url();
    let mut cause = e.to_string();
    let mut source = std::error::Error::source(&e);
    while let Some(s) = source {
        cause = format!("{cause}: {s}");
        source = s.source();
    }
    cause
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_vectors_with_special_values() {
        let body = br#"{"status":"success","data":{"resultType":"vector","result":[
            {"metric":{"job":"orders"},"value":[1712345678.1,"42.5"]},
            {"metric":{"job":"carts"},"value":[1712345678.1,"NaN"]},
            {"metric":{},"value":[1712345678.1,"+Inf"]}]}}"#;
        let samples = parse_vector(body).unwrap();
        assert_eq!(samples.len(), 3);
        assert_eq!(samples[0].labels["job"], "orders");
        assert_eq!(samples[0].value, 42.5);
        assert!(samples[1].value.is_nan());
        assert_eq!(samples[2].value, f64::INFINITY);
    }

    #[test]
    fn reads_matrices() {
        let body = br#"{"status":"success","data":{"resultType":"matrix","result":[
            {"metric":{"job":"orders"},"values":[[1712345640,"2.5"],[1712345700,"3"]]}]}}"#;
        let series = parse_matrix(body).unwrap();
        assert_eq!(
            series[0].points,
            vec![(1712345640.0, 2.5), (1712345700.0, 3.0)]
        );
        let vector = br#"{"status":"success","data":{"resultType":"vector","result":[]}}"#;
        assert_eq!(parse_matrix(vector).unwrap_err().kind(), "malformed");
    }

    #[test]
    fn malformed_and_refused_answers_are_classified() {
        let cases: [(&[u8], &str); 6] = [
            (b"<html>proxy error</html>", "malformed"),
            (br#"{"status":"success"}"#, "malformed"),
            (br#"{"status":"success","data":{"resultType":"matrix","result":[]}}"#, "malformed"),
            (br#"{"status":"success","data":{"resultType":"vector","result":[{"value":[1,"x"]}]}}"#, "malformed"),
            (br#"{"status":"success","data":{"resultType":"vector","result":{"a":1}}}"#, "malformed"),
            (br#"{"status":"error","errorType":"bad_data","error":"parse error"}"#, "refused"),
        ];
        for (body, kind) in cases {
            let err = parse_vector(body).unwrap_err();
            assert_eq!(err.kind(), kind, "{err}");
        }
    }
}
