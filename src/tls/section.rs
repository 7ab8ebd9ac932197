//! The `[proxy.tls]` scenario section as written (serde, spans kept for error messages) and its
//! validation into the settings a run uses.
//!
//! ```toml
//! [proxy.tls]
//! intercept = true            # terminate TLS from the client, open TLS to the upstream
//! upstream_ca = "up.pem"      # trust for the upstream certificate; default: the system roots
//! upstream_verify = true      # false only when written explicitly; logged loudly
//! keylog = "keys.log"         # NSS key log of both legs (else SSLKEYLOGFILE, if set)
//! capture_tls = "plaintext"   # or "raw": the TLS records as they crossed, keys embedded
//! ```
//!
//! Every key but `intercept` only means something when intercepting, so writing one without
//! `intercept = true` is an error rather than a setting silently ignored. The scenario loader
//! embeds [`TlsSection`] as `ProxySection::tls` and turns a [`TlsSectionError`] into its
//! `FILE:LINE:COL: key: message` with the span given.

use std::ops::Range;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use toml::Spanned;

/// `[proxy.tls]` as written. Every field is optional so validation can tell "written" from
/// "defaulted" (`upstream_verify = false` must never happen by default).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsSection {
    /// Terminate the client's TLS with a leaf minted by faultline's CA and open TLS to the
    /// upstream, so faults and captures see plaintext. Default `false`: TLS passes through
    /// untouched (the `sni` match key still works).
    pub intercept: Option<Spanned<bool>>,
    /// A PEM file of the certificates trusted for upstream certificates (e.g. the self-signed CA
    /// of a test server). Default: the system trust store.
    pub upstream_ca: Option<Spanned<String>>,
    /// Whether the upstream certificate is verified. Default `true`; `false` accepts any
    /// certificate and logs a warning for every upstream handshake.
    pub upstream_verify: Option<Spanned<bool>>,
    /// Append the NSS key log of both legs to this file (for Wireshark). Default: the file named
    /// by `SSLKEYLOGFILE` when set, else none.
    pub keylog: Option<Spanned<String>>,
    /// What the capture records of an intercepted connection: `"plaintext"` (default: the
    /// decrypted bytes of each leg as ordinary TCP conversations) or `"raw"` (the TLS records as
    /// they crossed each socket, with the session keys embedded in the pcapng).
    pub capture_tls: Option<Spanned<CaptureTls>>,
    /// The folder of the CA (`ca.pem`, `ca-key.pem`) for this scenario. Default:
    /// `$FAULTLINE_CA_DIR`, else the user data dir (`faultline ca init` says which).
    pub ca_dir: Option<Spanned<String>>,
}

/// `capture_tls`: what the capture holds for intercepted connections.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CaptureTls {
    /// Decrypted bytes of each leg, readable by `inspect` and tshark with no keys.
    #[default]
    Plaintext,
    /// The TLS records as they crossed, plus a Decryption Secrets Block with the key log.
    Raw,
}

/// Which certificates the upstream leg trusts.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum UpstreamTrust {
    /// The machine's trust store.
    #[default]
    SystemRoots,
    /// The certificates in this PEM file (`upstream_ca`).
    File(PathBuf),
    /// Nothing is verified (`upstream_verify = false`).
    NoVerify,
}

/// The validated section: what a run does with TLS.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct TlsSettings {
    /// Whether TLS is intercepted.
    pub intercept: bool,
    /// Trust for upstream certificates.
    pub upstream_trust: UpstreamTrust,
    /// The key log file as written in the scenario (`SSLKEYLOGFILE` is applied at run start, see
    /// [`crate::tls::keylog::keylog_path`]).
    pub keylog: Option<PathBuf>,
    /// What the capture records of intercepted connections.
    pub capture_tls: CaptureTls,
    /// The CA folder the scenario names, if it names one.
    pub ca_dir: Option<PathBuf>,
}

/// A validation error: the key (`proxy.tls.…`), its byte span in the file, and the message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{key}: {message}")]
pub struct TlsSectionError {
    /// The dotted key the error is about.
    pub key: &'static str,
    /// Byte range of the offending value in the scenario text.
    pub span: Range<usize>,
    /// What is wrong and how to fix it.
    pub message: String,
}

impl TlsSettings {
    /// Makes the relative paths of the section (`upstream_ca`, `keylog`, `ca_dir`) relative to
    /// `folder`, the scenario file's folder, so `faultline run /elsewhere/s.toml` finds the CA
    /// and files that sit next to the scenario whatever the working directory. Absolute paths
    /// are kept; an empty `folder` (a file in the working directory) changes nothing.
    pub fn resolve_against(&mut self, folder: &Path) {
        let resolve = |path: &mut PathBuf| {
            if path.is_relative() {
                *path = folder.join(&*path);
            }
        };
        if let UpstreamTrust::File(path) = &mut self.upstream_trust {
            resolve(path);
        }
        if let Some(path) = &mut self.keylog {
            resolve(path);
        }
        if let Some(path) = &mut self.ca_dir {
            resolve(path);
        }
    }
}

impl TlsSection {
    /// Checks the section and returns the settings it stands for.
    pub fn validate(&self) -> Result<TlsSettings, TlsSectionError> {
        let intercept = self.intercept.as_ref().is_some_and(|i| *i.get_ref());
        if !intercept {
            let needs_intercept = [
                (
                    "proxy.tls.upstream_ca",
                    self.upstream_ca.as_ref().map(Spanned::span),
                ),
                (
                    "proxy.tls.upstream_verify",
                    self.upstream_verify.as_ref().map(Spanned::span),
                ),
                ("proxy.tls.keylog", self.keylog.as_ref().map(Spanned::span)),
                (
                    "proxy.tls.capture_tls",
                    self.capture_tls.as_ref().map(Spanned::span),
                ),
                ("proxy.tls.ca_dir", self.ca_dir.as_ref().map(Spanned::span)),
            ];
            if let Some((key, Some(span))) = needs_intercept.into_iter().find(|(_, s)| s.is_some())
            {
                return Err(TlsSectionError {
                    key,
                    span,
                    message:
                        "only applies when intercepting: add `intercept = true` or remove this key"
                            .into(),
                });
            }
        }
        let non_empty = |key: &'static str, value: &Spanned<String>| {
            if value.get_ref().is_empty() {
                Err(TlsSectionError {
                    key,
                    span: value.span(),
                    message: "must name a file".into(),
                })
            } else {
                Ok(PathBuf::from(value.get_ref()))
            }
        };
        let verify = self.upstream_verify.as_ref().is_none_or(|v| *v.get_ref());
        let upstream_trust = match (&self.upstream_ca, verify) {
            (Some(ca), true) => UpstreamTrust::File(non_empty("proxy.tls.upstream_ca", ca)?),
            (None, true) => UpstreamTrust::SystemRoots,
            (Some(ca), false) => {
                return Err(TlsSectionError {
                    key: "proxy.tls.upstream_ca",
                    span: ca.span(),
                    message: "contradicts `upstream_verify = false` (nothing would be verified against it): keep one of the two".into(),
                })
            }
            (None, false) => UpstreamTrust::NoVerify,
        };
        let keylog = match &self.keylog {
            Some(path) => Some(non_empty("proxy.tls.keylog", path)?),
            None => None,
        };
        let ca_dir = match &self.ca_dir {
            Some(path) => Some(non_empty("proxy.tls.ca_dir", path)?),
            None => None,
        };
        Ok(TlsSettings {
            intercept,
            upstream_trust,
            keylog,
            capture_tls: self
                .capture_tls
                .as_ref()
                .map(|c| *c.get_ref())
                .unwrap_or_default(),
            ca_dir,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    struct File {
        proxy: Proxy,
    }

    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Proxy {
        tls: TlsSection,
    }

    fn section(text: &str) -> TlsSection {
        toml::from_str::<File>(&format!("[proxy.tls]\n{text}"))
            .unwrap()
            .proxy
            .tls
    }

    fn settings(text: &str) -> Result<TlsSettings, TlsSectionError> {
        section(text).validate()
    }

    #[test]
    fn the_issue_example_is_valid() {
        let got = settings(
            "intercept = true\nupstream_ca = \"up.pem\"\nupstream_verify = true\nkeylog = \"keys.log\"\ncapture_tls = \"raw\"\n",
        )
        .unwrap();
        assert_eq!(
            got,
            TlsSettings {
                intercept: true,
                upstream_trust: UpstreamTrust::File("up.pem".into()),
                keylog: Some("keys.log".into()),
                capture_tls: CaptureTls::Raw,
                ca_dir: None,
            }
        );
    }

    #[test]
    fn defaults_verify_against_system_roots_and_capture_plaintext() {
        let got = settings("intercept = true\n").unwrap();
        assert_eq!(got.upstream_trust, UpstreamTrust::SystemRoots);
        assert_eq!(got.capture_tls, CaptureTls::Plaintext);
        assert_eq!(got.keylog, None);
        assert_eq!(settings("").unwrap(), TlsSettings::default());
    }

    #[test]
    fn no_verification_only_when_written() {
        let got = settings("intercept = true\nupstream_verify = false\n").unwrap();
        assert_eq!(got.upstream_trust, UpstreamTrust::NoVerify);
    }

    #[test]
    fn keys_without_intercept_are_errors_at_their_span() {
        let text = "upstream_verify = false\n";
        let err = settings(text).unwrap_err();
        assert_eq!(err.key, "proxy.tls.upstream_verify");
        let offset = "[proxy.tls]\n".len() + text.find("false").unwrap();
        assert_eq!(err.span.start, offset);
        assert!(err.message.contains("intercept = true"));
        let err = settings("intercept = false\ncapture_tls = \"raw\"\n").unwrap_err();
        assert_eq!(err.key, "proxy.tls.capture_tls");
    }

    #[test]
    fn contradictions_and_empty_paths_are_errors() {
        let err = settings("intercept = true\nupstream_ca = \"a.pem\"\nupstream_verify = false\n")
            .unwrap_err();
        assert_eq!(err.key, "proxy.tls.upstream_ca");
        let err = settings("intercept = true\nkeylog = \"\"\n").unwrap_err();
        assert_eq!(err.key, "proxy.tls.keylog");
    }

    #[test]
    fn relative_paths_resolve_against_the_scenario_folder() {
        let mut got = settings(
            "intercept = true\nupstream_ca = \"up/ca.pem\"\nkeylog = \"/abs/k.log\"\nca_dir = \"ca\"\n",
        )
        .unwrap();
        got.resolve_against(Path::new("/srv/scen"));
        assert_eq!(
            got.upstream_trust,
            UpstreamTrust::File("/srv/scen/up/ca.pem".into())
        );
        assert_eq!(got.keylog, Some("/abs/k.log".into()));
        assert_eq!(got.ca_dir, Some("/srv/scen/ca".into()));
        let mut here = settings("intercept = true\nca_dir = \"ca\"\n").unwrap();
        here.resolve_against(Path::new(""));
        assert_eq!(here.ca_dir, Some("ca".into()));
    }

    #[test]
    fn unknown_keys_and_values_are_refused_by_serde() {
        let parse = |text: &str| toml::from_str::<File>(&format!("[proxy.tls]\n{text}"));
        let err = parse("intercpt = true\n").err().unwrap().to_string();
        assert!(err.contains("intercpt"), "{err}");
        let err = parse("capture_tls = \"decrypted\"\n")
            .err()
            .unwrap()
            .to_string();
        assert!(err.contains("plaintext"), "{err}");
        assert!(parse("upstream_verify = \"no\"\n").is_err());
    }
}
