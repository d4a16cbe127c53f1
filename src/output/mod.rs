//! What a run writes while and after it runs: the result document (assembly and saving), the
//! raw per-request log and the live Prometheus families. What a person reads (table, progress,
//! reports) is rendered in `report`.

pub mod files;
pub mod merge;
pub mod prometheus;
pub mod raw;
pub mod redact;
pub mod remote_write;
pub mod result;
