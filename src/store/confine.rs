//! Looks a checked store path up on disk without ever following a symlink.
//!
//! [`super::paths`] guarantees the path has no `..`, but a symlink inside the store directory could
//! still point outside it. So every component that exists is examined with `symlink_metadata`, and
//! the first symlink met refuses the request. The store directory itself is trusted: the operator chose
//! it. This check and the later open or rename are not atomic; the store guards against clients, not
//! against a local user racing it on the same filesystem.

use std::io;
use std::path::{Path, PathBuf};

use super::paths::StorePath;

/// What a store path names on disk, as far as it exists.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Existing {
    /// No file there yet (some trailing components may not exist either).
    Absent,
    /// A regular file of this many bytes.
    File {
        /// Length in bytes at the time of the check.
        len: u64,
    },
    /// A directory: never served, never overwritten.
    Directory,
    /// A non-directory sits where a parent directory should be, so the path can never exist.
    BlockedByFile,
    /// A FIFO, socket or device: refused, since reading or replacing it has side effects.
    Special,
}

/// Why a path could not be looked up safely.
#[derive(Debug, thiserror::Error)]
pub enum ConfineError {
    /// A component is a symlink; following it could leave the store directory.
    #[error("{0} is a symlink; the store does not follow symlinks")]
    Symlink(String),
    /// The filesystem failed for another reason (permissions, I/O).
    #[error("cannot inspect {path}: {source}")]
    Io {
        /// The component being inspected.
        path: PathBuf,
        /// What the OS said.
        source: io::Error,
    },
}

/// Walks `path` below `root` one component at a time and reports what is there.
///
/// Errors: [`ConfineError::Symlink`] as soon as any existing component is a symlink, or
/// [`ConfineError::Io`] when `symlink_metadata` fails for a reason other than "not found".
pub async fn inspect(root: &Path, path: &StorePath) -> Result<Existing, ConfineError> {
    let segments = path.segments();
    let mut current = root.to_path_buf();
    for (index, segment) in segments.iter().enumerate() {
        current.push(segment);
        let meta = match tokio::fs::symlink_metadata(&current).await {
            Ok(meta) => meta,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Existing::Absent),
            Err(source) => {
                return Err(ConfineError::Io {
                    path: current,
                    source,
                })
            }
        };
        let kind = meta.file_type();
        if kind.is_symlink() {
            return Err(ConfineError::Symlink(format!(
                "/{}",
                segments[..=index].join("/")
            )));
        }
        let last = index + 1 == segments.len();
        if !last {
            if !kind.is_dir() {
                return Ok(Existing::BlockedByFile);
            }
            continue;
        }
        return Ok(if kind.is_file() {
            Existing::File { len: meta.len() }
        } else if kind.is_dir() {
            Existing::Directory
        } else {
            Existing::Special
        });
    }
    // `StorePath` always has at least one segment, so the loop returned; the root is a directory.
    Ok(Existing::Directory)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::paths;
    use crate::store::test_dir::TestDir;

    fn path(raw: &str) -> StorePath {
        paths::parse(raw).expect("valid test path")
    }

    #[tokio::test]
    async fn reports_what_exists() {
        let dir = TestDir::new("confine-exists");
        std::fs::create_dir_all(dir.path().join("a/b")).expect("mkdir");
        std::fs::write(dir.path().join("a/b/f"), b"hello").expect("write");

        let root = dir.path();
        assert_eq!(
            inspect(root, &path("/a/b/f")).await.expect("ok"),
            Existing::File { len: 5 }
        );
        assert_eq!(
            inspect(root, &path("/a/b")).await.expect("ok"),
            Existing::Directory
        );
        assert_eq!(
            inspect(root, &path("/a/x/y")).await.expect("ok"),
            Existing::Absent
        );
        assert_eq!(
            inspect(root, &path("/a/b/f/g")).await.expect("ok"),
            Existing::BlockedByFile
        );
    }

    #[cfg(unix)]
    #[tokio::test]
    async fn refuses_symlinks_anywhere_on_the_path() {
        let dir = TestDir::new("confine-symlink");
        let outside = TestDir::new("confine-outside");
        std::fs::write(outside.path().join("secret"), b"s").expect("write");
        std::os::unix::fs::symlink(outside.path(), dir.path().join("link")).expect("symlink");
        std::os::unix::fs::symlink(outside.path().join("secret"), dir.path().join("file"))
            .expect("symlink");
        std::os::unix::fs::symlink("/nonexistent-target", dir.path().join("dangling"))
            .expect("symlink");

        let root = dir.path();
        for raw in ["/link/secret", "/link", "/file", "/dangling", "/link/new/x"] {
            match inspect(root, &path(raw)).await {
                Err(ConfineError::Symlink(at)) => assert!(raw.starts_with(&at), "{raw} → {at}"),
                other => panic!("{raw}: expected symlink refusal, got {other:?}"),
            }
        }
    }
}
