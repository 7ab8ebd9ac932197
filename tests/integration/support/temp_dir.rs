//! Scratch directories for the integration tests: one unique directory per test, removed when
//! the test passes and kept (its path printed) when it fails.

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

/// A fresh directory under `std::env::temp_dir()`, named `faultline-it-PID-N-LABEL` (unique per
/// process and call, so tests run in parallel). Removed on drop, unless the thread is panicking:
/// then it is kept and its path printed, so a failed test's files (captures, stores, logs) can be
/// examined.
pub struct TempDir(PathBuf);

impl TempDir {
    /// Creates the directory, removing a stale one of the same name first.
    pub fn new(label: &str) -> TempDir {
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let path =
            std::env::temp_dir().join(format!("faultline-it-{}-{n}-{label}", std::process::id()));
        let _ = fs::remove_dir_all(&path);
        fs::create_dir_all(&path).expect("create the test's temp dir");
        TempDir(path)
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        &self.0
    }

    /// Writes `text` to `name` in the directory and returns its path.
    pub fn write(&self, name: &str, text: &str) -> PathBuf {
        let path = self.0.join(name);
        fs::write(&path, text).expect("write a file into the temp dir");
        path
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("test failed: keeping {} for inspection", self.0.display());
        } else {
            let _ = fs::remove_dir_all(&self.0);
        }
    }
}
