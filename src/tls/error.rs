//! What can go wrong while setting up TLS interception, each error naming the file involved and,
//! where there is one, the command that fixes it.

use std::io;
use std::path::PathBuf;

/// Errors of the CA, leaf minting and config building. Handshake failures on a live connection
/// are not here: they belong to one connection ([`crate::tls::UpstreamFailure`]).
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// Neither `FAULTLINE_CA_DIR`, `XDG_DATA_HOME` nor `HOME` says where the CA lives.
    #[error("cannot tell where the CA lives: set FAULTLINE_CA_DIR (or HOME)")]
    NoCaDir,
    /// The folder has no CA yet. The command names the folder: a scenario's `ca_dir` is not
    /// where a bare `faultline ca init` writes.
    #[error("no CA in {}: run `faultline ca init --dir {}` first", dir.display(), shell_word(dir))]
    CaMissing {
        /// The CA folder.
        dir: PathBuf,
    },
    /// One of the two CA files is there and the other is not.
    #[error("{present} exists but {missing} does not: restore it, or remove {present} and run `faultline ca init`")]
    CaIncomplete {
        /// The file that exists.
        present: PathBuf,
        /// The file that is missing.
        missing: PathBuf,
    },
    /// Another `faultline ca init` created the key while this one was writing.
    #[error("{path} appeared while creating the CA (another `faultline ca init`?): run it again")]
    CaRace {
        /// The key file.
        path: PathBuf,
    },
    /// Reading or writing a CA file failed.
    #[error("{path}: {source}")]
    CaIo {
        /// The file or folder.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: io::Error,
    },
    /// The CA private key can be read (or written) by group or others.
    #[error("{path} is accessible by group or others (mode {mode:04o}); faultline will not sign with a key others can read: run `chmod 600 {path}`")]
    CaKeyExposed {
        /// The key file.
        path: PathBuf,
        /// Its permission bits.
        mode: u32,
    },
    /// A CA file does not hold what it should.
    #[error("{path}: {reason}")]
    CaInvalid {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// Generating a key or certificate failed (rcgen).
    #[error("cannot create a certificate for {name}: {reason}")]
    Mint {
        /// What the certificate is for (a server name, or "the CA").
        name: String,
        /// rcgen's or rustls' reason.
        reason: String,
    },
    /// The `upstream_ca` file cannot be used.
    #[error("upstream_ca {path}: {reason}")]
    UpstreamCa {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// No usable trust roots for upstream certificates.
    #[error("no trusted roots for upstream certificates: {reason}")]
    NoRoots {
        /// Why (no system store, or only faultline's own CA).
        reason: String,
    },
    /// The key log file cannot be opened.
    #[error("key log {path}: {source}")]
    Keylog {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: io::Error,
    },
    /// rustls refused a configuration.
    #[error("TLS configuration: {0}")]
    Config(#[from] rustls::Error),
    /// `capture_tls = "raw"` with a classic pcap capture, which cannot carry the keys.
    #[error("capture_tls = \"raw\" needs a pcapng capture (it embeds the TLS keys), but {path} is classic pcap: name it .pcapng, or use capture_tls = \"plaintext\"")]
    RawNeedsPcapng {
        /// The capture file.
        path: PathBuf,
    },
}

/// `path` as one shell word, for commands a message tells the user to run.
fn shell_word(path: &std::path::Path) -> String {
    crate::shell::word(&path.to_string_lossy())
}

impl TlsError {
    /// Wraps an I/O error with the path it concerns.
    pub fn io(path: impl Into<PathBuf>, source: io::Error) -> TlsError {
        TlsError::CaIo {
            path: path.into(),
            source,
        }
    }
}
