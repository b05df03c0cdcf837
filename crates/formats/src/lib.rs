//! Every file the fleet writes or reads, each with one typed writer and reader:
//!
//! | file | module | written by | read by |
//! |---|---|---|---|
//! | `output/sockshop_metrics.csv`, the development CSV | [`dev_csv`] | metrics-aggregator (development mode), `replay export` | trainer, replay |
//! | `output/experiments.csv`, the experiment log | [`experiments`] | `load-testing experiment`, `replay export` | trainer, replay |
//! | `output/predictions_<model>.csv` | [`predictions`] | ml-inference | the live replay's report |
//! | `output/decisions.csv`, the decision journal | [`journal`] | authoritative-scaler | the scaler at start and when compacting, tests |
//! | `models/evaluation.json`, the trainer's report | [`evaluation`] | trainer | authoritative-scaler and replay (`weighted` vote) |
//!
//! The generated reports' templates are filled by [`template::fill`].
//!
//! Golden files in `tests/golden/` hold one of each as released versions wrote it: a change that
//! cannot read them back is a change of format, to be made with a reader for the old one (as the
//! development CSV reads files written before a feature joined the schema).
//!
//! The Kafka messages are in `contract`, below this crate; the model artifacts are the `models`
//! crate's own.

pub mod dev_csv;
pub mod evaluation;
pub mod experiments;
pub mod journal;
pub mod predictions;
pub mod template;
