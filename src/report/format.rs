//! Number formatting shared by every renderer (terminal table, CI outputs, HTML and Markdown
//! reports), so a value reads the same everywhere.

/// `850ms`, `1.24s`, `2m05s`: compact and unambiguous.
pub fn fmt_ms(ms: f64) -> String {
    if ms < 1.0 {
        format!("{:.0}µs", ms * 1000.0)
    } else if ms < 1000.0 {
        format!("{ms:.0}ms")
    } else if ms < 60_000.0 {
        format!("{:.2}s", ms / 1000.0)
    } else {
        let secs = (ms / 1000.0).round() as u64;
        format!("{}m{:02}s", secs / 60, secs % 60)
    }
}

/// Four significant digits, no trailing zeros: 0.01818, 108, 2.5.
pub fn format_number(v: f64) -> String {
    if v == v.trunc() && v.abs() < 1e15 {
        return format!("{v:.0}");
    }
    let digits = (3 - v.abs().log10().floor() as i32).clamp(0, 8) as usize;
    let text = format!("{v:.digits$}");
    text.trim_end_matches('0').trim_end_matches('.').to_string()
}
