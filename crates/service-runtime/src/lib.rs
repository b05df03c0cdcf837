//! The edges every service of the fleet shares, so that each service's own crate holds only what
//! is particular to it: configuration parsing with one-line errors ([`config`]), append-only CSV files
//! ([`csv_log`]), logging
//! ([`telemetry`]), signal-driven shutdown ([`shutdown`]), supervised tasks ([`supervise`]), the
//! `/metrics` and `/healthz` server ([`ops`]), the Kafka producer, consumer and topic
//! administration ([`kafka`]), the labels that opt a service in to scaling ([`labels`]), and the
//! start-up skeleton that ties them together ([`service`]).

pub mod config;
pub mod csv_log;
pub mod kafka;
pub mod labels;
pub mod ops;
pub mod retry;
pub mod service;
pub mod shutdown;
pub mod supervise;
pub mod telemetry;
