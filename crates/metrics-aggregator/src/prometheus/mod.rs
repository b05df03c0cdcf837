//! Reading the services' measurements from the Prometheus HTTP API.

mod client;
mod queries;

pub use client::{PrometheusClient, QueryError, Series};
pub use queries::{
    Fallbacks, Missing, Observed, QueryPlan, Window, observe, request_rates, service_request_rate,
};
