//! Everything the run writes: the result document, the raw per-request log, the terminal table
//! and live progress.

pub mod ci;
pub mod progress;
pub mod prometheus;
pub mod raw;
pub mod result;
pub mod table;
