//! `--prometheus-remote-write URL`: the live families pushed to a Prometheus remote-write
//! receiver (Prometheus with `--web.enable-remote-write-receiver`, Mimir, Thanos, VictoriaMetrics,
//! Grafana Cloud) during the run and once more at its end, so a short CI run lands in Grafana
//! without waiting for a scrape (k6's `experimental-prometheus-rw` idea).
//!
//! Protocol 1.0: a protobuf `WriteRequest`, snappy-compressed (block format), POSTed with the
//! protocol's headers. The series are those `/metrics` shows, read from its own exposition, so
//! the two can never disagree; a histogram goes as its `_bucket`, `_sum` and `_count` series, as
//! Prometheus itself sends classic histograms.
//!
//! The three messages are encoded by hand (`encode`, 30 lines). `prost` was tried as the
//! replacement (2026-12-03): its derived structs and the conversion into them are as long,
//! it adds prost and prost-derive with their proc-macro dependencies, and its bytes differ only
//! where proto3 leaves a zero-valued field out (both decode to the same message). Nothing was
//! simpler, so the hand encoding stays, checked by a byte-level test and by a real Prometheus
//! receiver (tests/it/prometheus.rs).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// How often the series are pushed while the run lasts.
pub const INTERVAL: Duration = Duration::from_secs(5);

/// One series and its current value: labels (with `__name__`) sorted by name, as the protocol
/// asks.
#[derive(Debug, Clone, PartialEq)]
pub struct Series {
    /// Label pairs, `__name__` first.
    pub labels: Vec<(String, String)>,
    /// The value.
    pub value: f64,
}

/// The samples of a text exposition (OpenMetrics or Prometheus text): every line that is not a
/// comment, as `name{label="value",...} value`.
pub fn parse_exposition(text: &str) -> Vec<Series> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .filter_map(parse_line)
        .collect()
}

fn parse_line(line: &str) -> Option<Series> {
    let (name_and_labels, value) = line.rsplit_once(' ')?;
    let value: f64 = match value {
        "+Inf" => f64::INFINITY,
        "-Inf" => f64::NEG_INFINITY,
        "NaN" => f64::NAN,
        v => v.parse().ok()?,
    };
    let (name, rest) = match name_and_labels.split_once('{') {
        Some((name, rest)) => (name, rest.strip_suffix('}')?),
        None => (name_and_labels, ""),
    };
    let mut labels = vec![("__name__".to_string(), name.to_string())];
    let mut chars = rest.chars().peekable();
    loop {
        while chars.peek().is_some_and(|c| *c == ',' || *c == ' ') {
            chars.next();
        }
        let label: String = chars.by_ref().take_while(|c| *c != '=').collect();
        if label.is_empty() {
            break;
        }
        if chars.next() != Some('"') {
            return None;
        }
        let mut value = String::new();
        loop {
            match chars.next()? {
                '\\' => match chars.next()? {
                    'n' => value.push('\n'),
                    other => value.push(other),
                },
                '"' => break,
                c => value.push(c),
            }
        }
        labels.push((label, value));
    }
    labels[1..].sort();
    Some(Series { labels, value })
}

fn varint(out: &mut Vec<u8>, mut n: u64) {
    while n >= 0x80 {
        out.push((n as u8) | 0x80);
        n >>= 7;
    }
    out.push(n as u8);
}

/// A length-delimited field (wire type 2).
fn bytes_field(out: &mut Vec<u8>, field: u32, bytes: &[u8]) {
    varint(out, u64::from(field << 3 | 2));
    varint(out, bytes.len() as u64);
    out.extend_from_slice(bytes);
}

/// The protobuf `prometheus.WriteRequest` of `series`, each with one sample at `timestamp_ms`.
pub fn encode(series: &[Series], timestamp_ms: i64) -> Vec<u8> {
    let mut request = Vec::new();
    for s in series {
        let mut ts = Vec::new();
        for (name, value) in &s.labels {
            let mut label = Vec::new();
            bytes_field(&mut label, 1, name.as_bytes());
            bytes_field(&mut label, 2, value.as_bytes());
            bytes_field(&mut ts, 1, &label);
        }
        let mut sample = Vec::new();
        // field 1: double (wire type 1, little-endian); field 2: int64 varint.
        sample.push(1 << 3 | 1);
        sample.extend_from_slice(&s.value.to_le_bytes());
        sample.push(2 << 3);
        varint(&mut sample, timestamp_ms as u64);
        bytes_field(&mut ts, 2, &sample);
        bytes_field(&mut request, 1, &ts);
    }
    request
}

/// Pushes the series of `exposition` to `url`; an error says what the receiver answered.
pub async fn push(client: &reqwest::Client, url: &str, exposition: &str) -> Result<(), String> {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64);
    let body = encode(&parse_exposition(exposition), now);
    let compressed = snap::raw::Encoder::new()
        .compress_vec(&body)
        .map_err(|e| format!("snappy: {e}"))?;
    let response = client
        .post(url)
        .header("Content-Encoding", "snappy")
        .header("Content-Type", "application/x-protobuf")
        .header("X-Prometheus-Remote-Write-Version", "0.1.0")
        .header(
            "User-Agent",
            concat!("llm-bench/", env!("CARGO_PKG_VERSION")),
        )
        .body(compressed)
        .send()
        .await;
    // The transport's words name the URL, query string and all (`?token=…`), and a receiver
    // may echo it: every secret of the URL is masked in what is returned.
    let secrets = crate::output::redact::Secrets::new(None, url);
    let masked = |text: String| secrets.apply(&text).into_owned();
    let response = response.map_err(|e| masked(crate::backend::http::error_chain(&e)))?;
    let status = response.status();
    if status.is_success() {
        Ok(())
    } else {
        let text =
            crate::backend::http::read_capped(response, crate::backend::http::MAX_ERROR_BODY)
                .await
                .map(|b| String::from_utf8_lossy(&b).into_owned())
                .unwrap_or_default();
        Err(masked(format!(
            "HTTP {}: {}",
            status.as_u16(),
            text.trim().chars().take(300).collect::<String>()
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exposition_lines_become_series_with_sorted_labels() {
        let text = "# HELP x y\n# TYPE llmbench_requests counter\nllmbench_requests_total{scenario=\"s\",outcome=\"error\",group=\"level 4\"} 3\nllmbench_ttft_seconds_bucket{le=\"+Inf\",run_id=\"r\"} 7\nplain 1.5\nquoted{a=\"x\\\"y\\\\z\"} 2\n# EOF\n";
        let series = parse_exposition(text);
        assert_eq!(series.len(), 4);
        assert_eq!(
            series[0].labels,
            [
                (
                    "__name__".to_string(),
                    "llmbench_requests_total".to_string()
                ),
                ("group".into(), "level 4".into()),
                ("outcome".into(), "error".into()),
                ("scenario".into(), "s".into()),
            ]
        );
        assert_eq!(series[0].value, 3.0);
        assert_eq!(series[1].labels[1], ("le".into(), "+Inf".into()));
        assert_eq!(
            series[2].labels,
            [("__name__".to_string(), "plain".to_string())]
        );
        assert_eq!(series[3].labels[1].1, "x\"y\\z");
    }

    /// The bytes of a one-series request, worked out by hand from the protobuf rules.
    #[test]
    fn the_write_request_follows_the_protobuf_encoding() {
        let series = [Series {
            labels: vec![("__name__".into(), "m".into())],
            value: 1.0,
        }];
        let bytes = encode(&series, 300);
        let label = [
            0x0a, 8, b'_', b'_', b'n', b'a', b'm', b'e', b'_', b'_', 0x12, 1, b'm',
        ];
        let mut sample = vec![0x09];
        sample.extend_from_slice(&1.0f64.to_le_bytes());
        sample.extend_from_slice(&[0x10, 0xac, 0x02]); // 300 as a varint
        let mut ts = vec![0x0a, label.len() as u8];
        ts.extend_from_slice(&label);
        ts.push(0x12);
        ts.push(sample.len() as u8);
        ts.extend_from_slice(&sample);
        let mut want = vec![0x0a, ts.len() as u8];
        want.extend_from_slice(&ts);
        assert_eq!(bytes, want);
    }
}
