//! Measurements -> aggregates. The [`registry`] declares every trend once; workers send [`Event`]s;
//! one task owns the [`Recorder`]; the [`summary`] functions turn it into serializable statistics.
//! Everything here is pure.

pub mod knee;
pub mod recorder;
pub mod registry;
pub mod sample;
pub mod snapshot;
pub mod summary;
pub mod timeseries;

pub use recorder::Recorder;
pub use sample::{Event, Group, GroupKey, Outcome, Sample, Verdict};
pub use summary::{GroupSummary, Stats};
