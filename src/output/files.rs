//! Output files are written whole or not at all: the bytes go to a temporary file in the same
//! folder, which is flushed, synced and then renamed (or linked) to its final name. A reader, a
//! crash or a full disk therefore leaves the previous file or the new one, never half of one,
//! and a failed write is an error naming the path and the OS's words.

use std::fs::{self, File};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

/// A write that failed: which file, and why.
#[derive(Debug, thiserror::Error)]
#[error("cannot write {}", path.display())]
pub struct WriteError {
    /// The file that was to be written.
    pub path: PathBuf,
    /// The OS's error.
    #[source]
    pub source: io::Error,
}

impl WriteError {
    fn at(path: &Path) -> impl FnOnce(io::Error) -> WriteError + '_ {
        move |source| WriteError {
            path: path.to_path_buf(),
            source,
        }
    }
}

/// Writes `bytes` to `path`, replacing what is there only once the new content is complete.
pub fn replace(path: &Path, bytes: &[u8]) -> Result<(), WriteError> {
    let temp = write_temp(path, bytes).map_err(WriteError::at(path))?;
    fs::rename(&temp, path)
        .and_then(|()| sync_dir(path))
        .map_err(|e| {
            let _ = fs::remove_file(&temp);
            WriteError::at(path)(e)
        })
}

/// Writes `bytes` under the first free name of `dir/<stem><suffix>`, `dir/<stem>-2<suffix>`, …
/// and returns the name taken. The final name is claimed with a hard link, which fails when
/// the name exists, so two runs finishing at once never overwrite each other.
pub fn create_unique(
    dir: &Path,
    stem: &str,
    suffix: &str,
    bytes: &[u8],
) -> Result<(PathBuf, String), WriteError> {
    let first = dir.join(format!("{stem}{suffix}"));
    let temp = write_temp(&first, bytes).map_err(WriteError::at(&first))?;
    let claimed = claim_free(dir, stem, suffix, |path| fs::hard_link(&temp, path));
    let _ = fs::remove_file(&temp);
    let ((), path, name) = claimed?;
    sync_dir(&path).map_err(WriteError::at(&path))?;
    Ok((path, name))
}

/// Creates `dir/<stem><suffix>` (or `<stem>-2<suffix>`, …) for streaming into, never opening
/// a file that exists; returns it with the stem taken, which the run's other files then share.
pub fn open_unique(dir: &Path, stem: &str, suffix: &str) -> Result<(File, String), WriteError> {
    let (file, _, name) = claim_free(dir, stem, suffix, |path| File::create_new(path))?;
    Ok((file, name))
}

/// Tries `claim` on `dir/<stem><suffix>`, then `<stem>-2<suffix>`, … until one does not exist
/// yet (`claim` fails with `AlreadyExists` on taken names); returns what it made, the path and
/// the stem taken.
fn claim_free<T>(
    dir: &Path,
    stem: &str,
    suffix: &str,
    mut claim: impl FnMut(&Path) -> io::Result<T>,
) -> Result<(T, PathBuf, String), WriteError> {
    for n in 1..=1000 {
        let name = if n == 1 {
            stem.to_string()
        } else {
            format!("{stem}-{n}")
        };
        let path = dir.join(format!("{name}{suffix}"));
        match claim(&path) {
            Ok(made) => return Ok((made, path, name)),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(WriteError::at(&path)(e)),
        }
    }
    Err(WriteError::at(&dir.join(format!("{stem}{suffix}")))(
        io::Error::new(
            io::ErrorKind::AlreadyExists,
            "1000 files of this name exist",
        ),
    ))
}

/// Fails when files cannot be created in `dir` (it is created if missing): checked before a
/// run sends anything, so an unwritable folder does not cost a whole run.
pub fn check_writable(dir: &Path) -> Result<(), WriteError> {
    fs::create_dir_all(dir).map_err(WriteError::at(dir))?;
    let probe = dir.join(format!(".llm-bench-probe-{}", std::process::id()));
    let written = File::create_new(&probe).and_then(|mut f| f.write_all(b"probe"));
    let _ = fs::remove_file(&probe);
    written.map_err(WriteError::at(dir))
}

/// Writes a hidden temporary file next to `path`, flushed and synced; returns its path.
fn write_temp(path: &Path, bytes: &[u8]) -> io::Result<PathBuf> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let name = path.file_name().unwrap_or_default().to_string_lossy();
    for attempt in 0..100u32 {
        let temp = dir.join(format!(".{name}.{}.{attempt}.tmp", std::process::id()));
        let mut file = match File::create_new(&temp) {
            Ok(file) => file,
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(e),
        };
        let written = file.write_all(bytes).and_then(|()| file.sync_all());
        return match written {
            Ok(()) => Ok(temp),
            Err(e) => {
                drop(file);
                let _ = fs::remove_file(&temp);
                Err(e)
            }
        };
    }
    Err(io::Error::new(
        io::ErrorKind::AlreadyExists,
        "no free temporary file name",
    ))
}

/// Makes a rename or link in `path`'s folder durable (on Unix a folder can be synced).
fn sync_dir(path: &Path) -> io::Result<()> {
    match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => File::open(dir)?.sync_all(),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replace_swaps_whole_contents_and_leaves_no_temporary_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("latest.json");
        replace(&path, b"old").unwrap();
        replace(&path, b"new").unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"new");
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[test]
    fn unique_names_never_overwrite() {
        let dir = tempfile::tempdir().unwrap();
        let (a, stem_a) = create_unique(dir.path(), "run-1", ".json", b"a").unwrap();
        let (b, stem_b) = create_unique(dir.path(), "run-1", ".json", b"b").unwrap();
        assert_eq!((stem_a.as_str(), stem_b.as_str()), ("run-1", "run-1-2"));
        assert_eq!(fs::read(a).unwrap(), b"a");
        assert_eq!(fs::read(b).unwrap(), b"b");
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 2);
    }

    #[test]
    fn a_failed_write_names_the_file_and_keeps_the_old_one() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("missing-folder").join("x.json");
        let err = replace(&path, b"x").unwrap_err();
        assert_eq!(err.path, path);
        assert_eq!(err.source.kind(), io::ErrorKind::NotFound);
        assert!(check_writable(&dir.path().join("new/nested")).is_ok());
    }
}
