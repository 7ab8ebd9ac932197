//! What `faultline run` will refuse in a scenario that parses, found by `faultline check` first:
//! files the scenario names that are missing or unusable, and combinations only a run met.
//!
//! Validation at load looks at the text alone (the control API loads scenarios with no file
//! behind them); these checks look at the machine, so `check` runs them after a load succeeds and
//! reports them as `run` would, located at the key that names the file.

use serde::Deserialize;
use toml::Spanned;

use crate::capture::CaptureFormat;
use crate::scenario::{Located, Scenario};
use crate::tls::{CaptureTls, TlsError, UpstreamTrust};

/// Who will refuse what preflight finds, as its messages say it: `faultline run` (for `check`),
/// or a proxy of `faultline serve` that is given the scenario over the API, where "`run`" names
/// a command nobody typed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refuser {
    /// `faultline run` (what `check` reports).
    Run,
    /// A proxy of `faultline serve` (a scenario `PUT` over the API).
    Serve,
}

impl Refuser {
    /// The end of an error: who refuses the value.
    fn refuses_it(self) -> &'static str {
        match self {
            Refuser::Run => "`run` will refuse it",
            Refuser::Serve => "the proxy cannot start with it",
        }
    }

    /// The start of the warning for a CA not made yet.
    fn no_interception_until_fixed(self) -> &'static str {
        match self {
            Refuser::Run => "`run` will refuse to intercept TLS until this is fixed",
            Refuser::Serve => "the proxy cannot intercept TLS until this is fixed",
        }
    }
}

/// What `run` would do with a valid scenario on this machine.
#[derive(Debug, Default)]
pub struct Preflight {
    /// What `run` will refuse (exit 2): `check` fails the file for these.
    pub errors: Vec<Located>,
    /// What `run` will refuse unless the machine changes first (no CA yet): `check` warns.
    pub warnings: Vec<String>,
}

impl Scenario {
    /// Checks the files and combinations `run` refuses at start (see [`Preflight`]). Paths are
    /// the resolved ones ([`Scenario::load`] makes `[proxy.tls]` paths relative to the file).
    pub fn preflight(&self) -> Preflight {
        self.preflight_for(Refuser::Run)
    }

    /// [`preflight`](Self::preflight), worded for `refuser`.
    pub fn preflight_for(&self, refuser: Refuser) -> Preflight {
        let refuses_it = refuser.refuses_it();
        let mut out = Preflight::default();
        let spans = Spans::of(&self.source);
        // Where the key is written (its span's start), else the file's start.
        let error = |at: Option<usize>, key: &str, message: String| {
            let offset = at.unwrap_or(0);
            Located::at(&self.origin, &self.source, offset, key.to_string(), message)
        };
        if let Some(template) = &self.capture {
            if let Err(why) = crate::capture::path::probe_template_folder(template, &self.name) {
                out.errors.push(error(
                    spans.capture.as_ref().map(|s| s.span().start),
                    "proxy.capture",
                    format!("{why}: {refuses_it}"),
                ));
            }
        }
        let Some(tls) = self.tls.as_ref().filter(|t| t.intercept) else {
            return out;
        };
        if let UpstreamTrust::File(path) = &tls.upstream_trust {
            if let Err(e) = crate::tls::client_config::roots_from_pem(path) {
                let message = match e {
                    TlsError::UpstreamCa { path, reason } => {
                        format!("{}: {reason}", path.display())
                    }
                    other => other.to_string(),
                };
                out.errors.push(error(
                    spans.tls.upstream_ca.as_ref().map(|s| s.span().start),
                    "proxy.tls.upstream_ca",
                    format!("{message}: {refuses_it} (a relative path in [proxy.tls] is read from the scenario's folder)"),
                ));
            }
        }
        if let Some(path) = &tls.keylog {
            if path.is_dir() {
                out.errors.push(error(
                    spans.tls.keylog.as_ref().map(|s| s.span().start),
                    "proxy.tls.keylog",
                    format!("{} is a folder: name a file in it", path.display()),
                ));
            }
        }
        if tls.capture_tls == CaptureTls::Raw {
            let pcap = self.capture.as_deref().filter(|c| {
                CaptureFormat::from_path(std::path::Path::new(c)) == CaptureFormat::Pcap
            });
            if let Some(capture) = pcap {
                out.errors.push(error(
                    spans.capture.as_ref().map(|s| s.span().start),
                    "proxy.capture",
                    TlsError::RawNeedsPcapng {
                        path: capture.into(),
                    }
                    .to_string(),
                ));
            }
        }
        let dir = match &tls.ca_dir {
            Some(dir) => Ok(crate::tls::ca_dir::CaDir::new(dir.clone())),
            None => crate::tls::ca_dir::CaDir::from_env(),
        };
        let ca = dir.and_then(|dir| {
            crate::tls::CertificateAuthority::load(&dir, time::OffsetDateTime::now_utc())
        });
        match ca {
            Ok(_) => {}
            // No CA yet: `faultline ca init` on this machine is the next step, not a mistake
            // in the file.
            Err(e @ (TlsError::CaMissing { .. } | TlsError::NoCaDir)) => out.warnings.push(
                format!("{}: {e}", refuser.no_interception_until_fixed()),
            ),
            // A CA that is there and unusable (a key others may read, a damaged or expired
            // certificate): `run` refuses it, so `check` does too.
            // Located at `ca_dir` when the file names the folder, else at `intercept` (the
            // CA came from the environment: the file has no `ca_dir` to point at).
            Err(e) => out.errors.push(match spans.tls.ca_dir.as_ref() {
                Some(ca_dir) => error(
                    Some(ca_dir.span().start),
                    "proxy.tls.ca_dir",
                    format!("{e}: {refuses_it}"),
                ),
                None => error(
                    spans.tls.intercept.as_ref().map(|s| s.span().start),
                    "proxy.tls.intercept",
                    format!(
                        "the CA faultline found outside the file (no ca_dir here): {e}: {refuses_it}"
                    ),
                ),
            }),
        }
        out
    }
}

/// Where the keys preflight errors name are written, read loosely from the text (validation
/// already refused anything else in it).
#[derive(Debug, Default, Deserialize)]
struct Spans {
    #[serde(default)]
    proxy: ProxySpans,
}

#[derive(Debug, Default, Deserialize)]
struct ProxySpans {
    capture: Option<Spanned<String>>,
    #[serde(default)]
    tls: TlsSpans,
}

#[derive(Debug, Default, Deserialize)]
struct TlsSpans {
    intercept: Option<Spanned<bool>>,
    ca_dir: Option<Spanned<String>>,
    upstream_ca: Option<Spanned<String>>,
    keylog: Option<Spanned<String>>,
}

impl Spans {
    fn of(text: &str) -> ProxySpans {
        toml::from_str::<Spans>(text).unwrap_or_default().proxy
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::test_dir::TestDir;

    fn load(dir: &std::path::Path, text: &str) -> Scenario {
        let path = dir.join("s.toml");
        std::fs::write(&path, text).unwrap();
        Scenario::load(&path).expect("valid")
    }

    /// `check` passed what `run` refused: a missing or non-PEM upstream_ca, and a classic pcap
    /// capture with capture_tls = "raw".
    #[test]
    fn files_run_refuses_are_errors_at_their_key() {
        let tmp = TestDir::new("preflight");
        let ca = tmp.path().join("ca");
        crate::tls::CertificateAuthority::init(
            &crate::tls::ca_dir::CaDir::new(&ca),
            time::OffsetDateTime::now_utc(),
        )
        .unwrap();
        let missing = load(
            tmp.path(),
            "[proxy]\ncapture = \"caps/x.pcap\"\n[proxy.tls]\nintercept = true\nca_dir = \"ca\"\nupstream_ca = \"up/none.pem\"\ncapture_tls = \"raw\"\n",
        );
        let got = missing.preflight();
        assert!(got.warnings.is_empty(), "{:?}", got.warnings);
        assert_eq!(got.errors.len(), 2, "{:?}", got.errors);
        let ca_error = &got.errors[0];
        assert_eq!(
            (ca_error.key.as_str(), ca_error.line, ca_error.column),
            ("proxy.tls.upstream_ca", 6, 15)
        );
        assert!(
            ca_error
                .message
                .contains(&*tmp.path().join("up/none.pem").to_string_lossy()),
            "{ca_error}"
        );
        let pcap = &got.errors[1];
        assert_eq!((pcap.key.as_str(), pcap.line), ("proxy.capture", 2));
        assert!(pcap.message.contains("needs a pcapng capture"), "{pcap}");

        std::fs::write(tmp.path().join("not.pem"), "hello\n").unwrap();
        let not_pem = load(
            tmp.path(),
            "[proxy.tls]\nintercept = true\nca_dir = \"ca\"\nupstream_ca = \"not.pem\"\n",
        );
        let got = not_pem.preflight();
        assert_eq!(got.errors.len(), 1, "{:?}", got.errors);
        assert!(
            got.errors[0].message.contains("CERTIFICATE"),
            "{}",
            got.errors[0]
        );

        let fine = load(
            tmp.path(),
            "[proxy]\ncapture = \"caps/x.pcapng\"\n[proxy.tls]\nintercept = true\nca_dir = \"ca\"\nkeylog = \"keys/kl.log\"\ncapture_tls = \"raw\"\n",
        );
        let got = fine.preflight();
        assert!(got.errors.is_empty() && got.warnings.is_empty(), "{got:?}");
    }

    /// A trial's CA key readable by the group: `check` said ok, `run` refused it (exit 2).
    #[test]
    fn a_ca_run_refuses_is_an_error() {
        use std::os::unix::fs::PermissionsExt;
        let tmp = TestDir::new("preflight-ca-open");
        let ca = tmp.path().join("ca");
        let dir = crate::tls::ca_dir::CaDir::new(&ca);
        crate::tls::CertificateAuthority::init(&dir, time::OffsetDateTime::now_utc()).unwrap();
        std::fs::set_permissions(dir.key_path(), std::fs::Permissions::from_mode(0o640)).unwrap();
        let s = load(
            tmp.path(),
            "[proxy.tls]\nintercept = true\nca_dir = \"ca\"\n",
        );
        let got = s.preflight();
        assert!(got.warnings.is_empty(), "{:?}", got.warnings);
        assert_eq!(got.errors.len(), 1, "{:?}", got.errors);
        assert_eq!(
            (got.errors[0].key.as_str(), got.errors[0].line),
            ("proxy.tls.ca_dir", 3)
        );
    }

    /// A scenario PUT over the API with a bad capture path ended "`run` will refuse it": no
    /// one typed `run`. The API's wording names the proxy; `check`'s keeps `run`.
    #[test]
    fn the_api_is_told_the_proxy_refuses_not_run() {
        let tmp = TestDir::new("preflight-serve");
        std::fs::write(tmp.path().join("file"), "").unwrap();
        let capture = tmp.path().join("file/x.pcapng");
        let s = load(
            tmp.path(),
            &format!("[proxy]\ncapture = {:?}\n", capture.display().to_string()),
        );
        let served = s.preflight_for(Refuser::Serve);
        assert_eq!(served.errors.len(), 1, "{:?}", served.errors);
        let message = &served.errors[0].message;
        assert!(
            message.ends_with(": the proxy cannot start with it") && !message.contains("`run`"),
            "{message}"
        );
        let checked = s.preflight();
        assert!(
            checked.errors[0]
                .message
                .ends_with(": `run` will refuse it"),
            "{}",
            checked.errors[0]
        );
        let no_ca = load(
            tmp.path(),
            "[proxy.tls]\nintercept = true\nca_dir = \"noca\"\n",
        );
        let warning = &no_ca.preflight_for(Refuser::Serve).warnings[0];
        assert!(
            warning.starts_with("the proxy cannot intercept TLS until this is fixed: "),
            "{warning}"
        );
    }

    #[test]
    fn a_missing_ca_is_a_warning() {
        let tmp = TestDir::new("preflight-ca");
        let s = load(
            tmp.path(),
            "[proxy.tls]\nintercept = true\nca_dir = \"noca\"\n",
        );
        let got = s.preflight();
        assert!(got.errors.is_empty(), "{:?}", got.errors);
        assert_eq!(got.warnings.len(), 1);
        assert!(
            got.warnings[0].contains("faultline ca init")
                && got.warnings[0].contains(&*tmp.path().join("noca").to_string_lossy()),
            "{:?}",
            got.warnings
        );
    }
}
