//! Why a comparison or its gate cannot be had.

/// Why the regression gate's flags do not read (a usage error).
#[derive(Debug, thiserror::Error)]
pub enum GateError {
    /// `--fail-on-regression` is not a number or percentage.
    #[error("--fail-on-regression {0:?}: expected a percentage such as 10%")]
    Tolerance(String),
    /// `--fail-on-regression` is out of range.
    #[error("--fail-on-regression: expected a percentage between 0% and 1000%")]
    ToleranceRange,
    /// `--regression-on` names no latency metric.
    #[error("--regression-on {text:?}: unknown metric; one of {known}")]
    UnknownMetric {
        /// The selector given.
        text: String,
        /// Some metrics it could name.
        known: String,
    },
    /// `--regression-on` names no percentile this gate reads.
    #[error("--regression-on {text:?}: unknown percentile {percentile:?}; p50, p95, p99 or mean")]
    UnknownPercentile {
        /// The selector given.
        text: String,
        /// The percentile part.
        percentile: String,
    },
}

/// Why two results cannot be compared.
#[derive(Debug, thiserror::Error)]
pub enum CompareError {
    /// A file's stored histograms do not read back (the file is damaged or edited).
    #[error("{file}: {source}")]
    Histograms {
        /// The result file.
        file: String,
        /// What is wrong with them.
        source: crate::metrics::snapshot::SnapshotError,
    },
}
