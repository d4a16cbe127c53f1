//! Reading an input file (scenario, base, prompt set, hook script, result, template) within a
//! bound. A path that names a device, a pipe or a directory is refused before anything is read
//! (`extends: /dev/zero` would otherwise read until memory runs out), and a regular file larger
//! than the limit is refused by its size. The limit is [`DEFAULT_MAX_BYTES`], or
//! `LLM_BENCH_MAX_INPUT_BYTES` when set (bytes, or with a `K`, `M`, `G` suffix: powers of 1024).

use std::io::{self, Read};
use std::path::Path;

/// The largest input file read by default: 256 MiB, room for a large prompt dataset.
pub const DEFAULT_MAX_BYTES: u64 = 256 << 20;
/// The environment variable that sets another limit.
pub const LIMIT_ENV: &str = "LLM_BENCH_MAX_INPUT_BYTES";

/// The limit in force: `LLM_BENCH_MAX_INPUT_BYTES`, or the default. A value that does not parse
/// is an error, so a typo does not silently mean "the default".
pub fn max_bytes() -> io::Result<u64> {
    match std::env::var(LIMIT_ENV) {
        Ok(text) => parse_size(&text).ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("{LIMIT_ENV}={text:?}: expected a size in bytes such as 1048576 or 64M"),
            )
        }),
        Err(_) => Ok(DEFAULT_MAX_BYTES),
    }
}

/// `4096`, `64K`, `16M`, `1G` (powers of 1024; `KiB`/`MiB`/`GiB` and `KB`/`MB`/`GB` too).
pub fn parse_size(text: &str) -> Option<u64> {
    let text = text.trim();
    let digits = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(digits);
    let number: u64 = number.parse().ok()?;
    let shift = match unit.trim().to_ascii_uppercase().as_str() {
        "" | "B" => 0,
        "K" | "KB" | "KIB" => 10,
        "M" | "MB" | "MIB" => 20,
        "G" | "GB" | "GIB" => 30,
        _ => return None,
    };
    number.checked_mul(1 << shift)
}

/// The text of the regular file at `path`, at most [`max_bytes`] long. The errors say what is
/// wrong without quoting the file.
pub fn read_to_string(path: &Path) -> io::Result<String> {
    read_bounded(path, max_bytes()?)
}

/// The text of the regular file at `path`, at most `limit` bytes.
pub fn read_bounded(path: &Path, limit: u64) -> io::Result<String> {
    let meta = std::fs::metadata(path)?;
    if !meta.is_file() {
        let kind = if meta.is_dir() {
            "a directory"
        } else {
            "not a regular file (a device, pipe or socket)"
        };
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("it is {kind}"),
        ));
    }
    let too_large = |size: String| {
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!(
                "it is {size} bytes, larger than the {limit}-byte input limit ({LIMIT_ENV} raises it)"
            ),
        )
    };
    if meta.len() > limit {
        return Err(too_large(meta.len().to_string()));
    }
    // The file can grow between the size check and the read: read one byte past the limit.
    let mut bytes = Vec::with_capacity(meta.len() as usize);
    std::fs::File::open(path)?
        .take(limit.saturating_add(1))
        .read_to_end(&mut bytes)?;
    if bytes.len() as u64 > limit {
        return Err(too_large(format!("more than {limit}")));
    }
    String::from_utf8(bytes).map_err(|e| {
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!(
                "it is not UTF-8 text (invalid byte at offset {})",
                e.utf8_error().valid_up_to()
            ),
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_parse_in_powers_of_1024() {
        assert_eq!(parse_size("4096"), Some(4096));
        assert_eq!(parse_size("64K"), Some(64 << 10));
        assert_eq!(parse_size("16 MiB"), Some(16 << 20));
        assert_eq!(parse_size("1g"), Some(1 << 30));
        assert_eq!(parse_size("lots"), None);
        assert_eq!(parse_size("-1"), None);
        assert_eq!(parse_size("99999999999999999999G"), None);
    }

    #[test]
    fn devices_directories_and_large_files_are_refused_unread() {
        let dir = tempfile::tempdir().unwrap();
        let err = read_bounded(Path::new("/dev/zero"), 1 << 20).unwrap_err();
        assert!(err.to_string().contains("not a regular file"), "{err}");
        let err = read_bounded(dir.path(), 1 << 20).unwrap_err();
        assert!(err.to_string().contains("a directory"), "{err}");
        let big = dir.path().join("big.yaml");
        std::fs::write(&big, "x".repeat(2000)).unwrap();
        let err = read_bounded(&big, 1000).unwrap_err();
        assert!(
            err.to_string().contains("2000 bytes, larger than the 1000"),
            "{err}"
        );
        assert_eq!(read_bounded(&big, 2000).unwrap().len(), 2000);
        let binary = dir.path().join("bin");
        std::fs::write(&binary, b"ok\xff\xfe").unwrap();
        let err = read_bounded(&binary, 100).unwrap_err();
        assert!(err.to_string().contains("not UTF-8 text"), "{err}");
        assert!(!err.to_string().contains("ok"), "no content quoted: {err}");
    }
}
