//! Measurements -> aggregates. Workers send [`Event`]s; one task owns the [`Recorder`]; the
//! [`summary`] functions turn it into serializable statistics. Everything here is pure.

pub mod knee;
pub mod recorder;
pub mod sample;
pub mod summary;
pub mod timeseries;
pub mod trend;

pub use recorder::Recorder;
pub use sample::{Event, Group, GroupKey, Outcome, Sample, Verdict};
pub use summary::{GroupSummary, Stats};
