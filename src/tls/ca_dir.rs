//! Where the CA lives: `$FAULTLINE_CA_DIR`, else `$XDG_DATA_HOME/faultline/ca`, else
//! `~/.local/share/faultline/ca`, and the two file names inside.
//!
//! A per-user data folder (not the project) because one CA serves every run: the user trusts it
//! once. `FAULTLINE_CA_DIR` lets tests and CI keep a CA of their own.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use crate::tls::TlsError;

/// The certificate file users hand to their clients.
pub const CERT_FILE: &str = "ca.pem";
/// The private key: mode 0600, never leaves the folder.
pub const KEY_FILE: &str = "ca-key.pem";
/// The trust bundle's file name in the CA folder.
pub const BUNDLE_FILE: &str = "bundle.pem";

/// The CA folder and its two files.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CaDir {
    dir: PathBuf,
}

impl CaDir {
    /// A CA folder at `dir`.
    pub fn new(dir: impl Into<PathBuf>) -> CaDir {
        CaDir { dir: dir.into() }
    }

    /// The folder chosen by the process environment (see [`CaDir::from_vars`]), made absolute
    /// against the working directory: `FAULTLINE_CA_DIR=relca` must not print
    /// `export SSL_CERT_FILE='relca/ca.pem'`, which means another file in every other folder.
    pub fn from_env() -> Result<CaDir, TlsError> {
        CaDir::from_vars(|name| std::env::var_os(name)).map(CaDir::absolute)
    }

    /// This folder as an absolute path (unchanged when the working directory is unknown).
    pub fn absolute(self) -> CaDir {
        match std::path::absolute(&self.dir) {
            Ok(dir) => CaDir { dir },
            Err(_) => self,
        }
    }

    /// The folder chosen by `FAULTLINE_CA_DIR`, `XDG_DATA_HOME` and `HOME` as `var` reports them.
    /// Empty values count as unset, and a relative `XDG_DATA_HOME` is ignored, as the XDG base
    /// directory specification says.
    pub fn from_vars(var: impl Fn(&str) -> Option<OsString>) -> Result<CaDir, TlsError> {
        let set = |name: &str| var(name).filter(|v| !v.is_empty()).map(PathBuf::from);
        if let Some(dir) = set("FAULTLINE_CA_DIR") {
            return Ok(CaDir::new(dir));
        }
        let data = set("XDG_DATA_HOME")
            .filter(|p| p.is_absolute())
            .or_else(|| set("HOME").map(|home| home.join(".local/share")))
            .ok_or(TlsError::NoCaDir)?;
        Ok(CaDir::new(data.join("faultline/ca")))
    }

    /// The folder.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// `ca.pem`: the certificate.
    pub fn cert_path(&self) -> PathBuf {
        self.dir.join(CERT_FILE)
    }

    /// `bundle.pem`: the machine's trust roots and the CA, for the variables that replace a
    /// client's roots (see [`crate::tls::trust_vars::write_bundle`]).
    pub fn bundle_path(&self) -> PathBuf {
        self.dir.join(BUNDLE_FILE)
    }

    /// `ca-key.pem`: the private key.
    pub fn key_path(&self) -> PathBuf {
        self.dir.join(KEY_FILE)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars<'a>(pairs: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<OsString> + 'a {
        move |name| {
            pairs
                .iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| OsString::from(v))
        }
    }

    #[test]
    fn faultline_ca_dir_wins_over_everything() {
        let dir = CaDir::from_vars(vars(&[
            ("FAULTLINE_CA_DIR", "/tmp/ca"),
            ("XDG_DATA_HOME", "/xdg"),
            ("HOME", "/home/u"),
        ]))
        .unwrap();
        assert_eq!(dir.dir(), Path::new("/tmp/ca"));
        assert_eq!(dir.cert_path(), Path::new("/tmp/ca/ca.pem"));
        assert_eq!(dir.key_path(), Path::new("/tmp/ca/ca-key.pem"));
    }

    #[test]
    fn xdg_data_home_then_home() {
        let xdg =
            CaDir::from_vars(vars(&[("XDG_DATA_HOME", "/xdg"), ("HOME", "/home/u")])).unwrap();
        assert_eq!(xdg.dir(), Path::new("/xdg/faultline/ca"));
        let home = CaDir::from_vars(vars(&[("HOME", "/home/u")])).unwrap();
        assert_eq!(home.dir(), Path::new("/home/u/.local/share/faultline/ca"));
    }

    #[test]
    fn empty_and_relative_values_are_ignored() {
        let dir = CaDir::from_vars(vars(&[
            ("FAULTLINE_CA_DIR", ""),
            ("XDG_DATA_HOME", "relative"),
            ("HOME", "/home/u"),
        ]))
        .unwrap();
        assert_eq!(dir.dir(), Path::new("/home/u/.local/share/faultline/ca"));
        assert!(matches!(
            CaDir::from_vars(vars(&[])),
            Err(TlsError::NoCaDir)
        ));
    }
}
