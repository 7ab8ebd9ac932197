//! The NSS key log of both legs (`CLIENT_RANDOM …`, `CLIENT_HANDSHAKE_TRAFFIC_SECRET …`): written
//! to a file for Wireshark and curl-style tooling, and kept in memory until the capture writer
//! embeds it as a pcapng Decryption Secrets Block.
//!
//! One instance serves the client-facing and the upstream-facing configs: each line is keyed by
//! its connection's client random, so both legs of every connection decrypt from one log.

use std::ffi::OsString;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, PoisonError};

use crate::tls::TlsError;

/// Where the key log goes: the scenario's `keylog` when written, else `SSLKEYLOGFILE` (the
/// variable curl, Firefox and Chrome honour) when set and not empty, else nowhere.
pub fn keylog_path(configured: Option<&Path>, sslkeylogfile: Option<OsString>) -> Option<PathBuf> {
    configured
        .map(Path::to_path_buf)
        .or_else(|| sslkeylogfile.filter(|v| !v.is_empty()).map(PathBuf::from))
}

/// A rustls [`KeyLog`](rustls::KeyLog) writing NSS key log lines.
#[derive(Debug)]
pub struct NssKeyLog {
    file: Option<(PathBuf, Mutex<File>)>,
    memory: Option<Mutex<Vec<u8>>>,
    write_failed: AtomicBool,
}

impl NssKeyLog {
    /// A key log appending to `file` (created 0600: these are secrets), keeping lines in memory
    /// too when `for_capture` (a `capture_tls = "raw"` capture will embed them). With neither,
    /// nothing is logged and rustls is told so. A missing folder is created, as for captures
    /// (`keylog = "keys/kl.log"` must not fail where `capture = "caps/x.pcapng"` works).
    pub fn open(file: Option<&Path>, for_capture: bool) -> Result<NssKeyLog, TlsError> {
        let file = match file {
            Some(path) => {
                if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                    std::fs::create_dir_all(dir).map_err(|source| TlsError::Keylog {
                        path: path.to_path_buf(),
                        source,
                    })?;
                }
                let opened = OpenOptions::new()
                    .create(true)
                    .append(true)
                    .mode(0o600)
                    .open(path)
                    .map_err(|source| TlsError::Keylog {
                        path: path.to_path_buf(),
                        source,
                    })?;
                Some((path.to_path_buf(), Mutex::new(opened)))
            }
            None => None,
        };
        Ok(NssKeyLog {
            file,
            memory: for_capture.then(|| Mutex::new(Vec::new())),
            write_failed: AtomicBool::new(false),
        })
    }

    /// The key log file, if any.
    pub fn path(&self) -> Option<&Path> {
        self.file.as_ref().map(|(path, _)| path.as_path())
    }

    /// The lines logged since the last call (NSS key log text), for the capture writer: it embeds
    /// them in a Decryption Secrets Block before the packets they decrypt. Taking them frees the
    /// memory, so a long run holds only what the writer has not embedded yet. Empty when the log
    /// was opened without `for_capture`.
    pub fn take_unwritten(&self) -> Vec<u8> {
        match &self.memory {
            Some(memory) => {
                std::mem::take(&mut *memory.lock().unwrap_or_else(PoisonError::into_inner))
            }
            None => Vec::new(),
        }
    }
}

impl rustls::KeyLog for NssKeyLog {
    fn log(&self, label: &str, client_random: &[u8], secret: &[u8]) {
        let line = format!(
            "{label} {} {}\n",
            hex::encode(client_random),
            hex::encode(secret)
        );
        if let Some(memory) = &self.memory {
            memory
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .extend_from_slice(line.as_bytes());
        }
        if let Some((path, file)) = &self.file {
            // One write per line on an O_APPEND file: lines of concurrent handshakes never mix.
            let written = file
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .write_all(line.as_bytes());
            if let Err(e) = written {
                if !self.write_failed.swap(true, Ordering::Relaxed) {
                    tracing::warn!(path = %path.display(), error = %e, "cannot write the TLS key log; later failures are not logged");
                }
            }
        }
    }

    fn will_log(&self, _label: &str) -> bool {
        self.file.is_some() || self.memory.is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::test_dir::TestDir;
    use rustls::KeyLog;
    use std::os::unix::fs::MetadataExt;

    #[test]
    fn lines_go_to_the_file_and_to_memory_until_taken() {
        let tmp = TestDir::new("keylog");
        let path = tmp.path().join("keys.log");
        let log = NssKeyLog::open(Some(&path), true).unwrap();
        assert!(log.will_log("CLIENT_RANDOM"));
        log.log("CLIENT_RANDOM", &[0xab; 32], &[0x01, 0x02]);
        log.log("SERVER_TRAFFIC_SECRET_0", &[0xcd; 32], &[0xff]);
        let text = std::fs::read_to_string(&path).unwrap();
        let expected = format!(
            "CLIENT_RANDOM {} 0102\nSERVER_TRAFFIC_SECRET_0 {} ff\n",
            "ab".repeat(32),
            "cd".repeat(32)
        );
        assert_eq!(text, expected);
        assert_eq!(std::fs::metadata(&path).unwrap().mode() & 0o777, 0o600);
        assert_eq!(log.take_unwritten(), expected.as_bytes());
        assert!(log.take_unwritten().is_empty());
    }

    #[test]
    fn without_file_or_capture_nothing_is_logged() {
        let log = NssKeyLog::open(None, false).unwrap();
        assert!(!log.will_log("CLIENT_RANDOM"));
        log.log("CLIENT_RANDOM", &[1; 32], &[2]);
        assert!(log.take_unwritten().is_empty());
    }

    #[test]
    fn the_scenario_wins_over_sslkeylogfile() {
        let env = Some(OsString::from("/tmp/env.log"));
        assert_eq!(
            keylog_path(Some(Path::new("k.log")), env.clone()),
            Some(PathBuf::from("k.log"))
        );
        assert_eq!(keylog_path(None, env), Some(PathBuf::from("/tmp/env.log")));
        assert_eq!(keylog_path(None, Some(OsString::new())), None);
    }

    #[test]
    fn an_unwritable_path_is_a_clear_error() {
        let tmp = TestDir::new("keylog-blocked");
        let blocker = tmp.path().join("a-file");
        std::fs::write(&blocker, b"x").unwrap();
        let path = blocker.join("keys.log");
        let err = NssKeyLog::open(Some(&path), false).unwrap_err();
        assert!(err.to_string().contains(&*path.to_string_lossy()), "{err}");
    }

    /// `keylog = "keys/kl.log"` in a missing folder failed the run while a capture path's
    /// folder is created: the key log's folder is created the same way.
    #[test]
    fn a_missing_folder_is_created() {
        let tmp = TestDir::new("keylog-folder");
        let path = tmp.path().join("keys/sub/kl.log");
        let log = NssKeyLog::open(Some(&path), false).unwrap();
        log.log("CLIENT_RANDOM", &[1; 32], &[2]);
        assert!(std::fs::read_to_string(&path)
            .unwrap()
            .starts_with("CLIENT_RANDOM "));
    }
}
