//! The upstream-facing rustls configuration: which certificates faultline trusts when it opens
//! TLS to the upstream (`upstream_ca`, the system roots, or nothing with `upstream_verify =
//! false`), TLS 1.3 and 1.2, the shared key log. ALPN is set per connection (the client's list).
//!
//! System roots come from `rustls-native-certs` rather than `webpki-roots`: a transparent proxy
//! should trust what the client on the same machine trusts, company CAs and
//! `SSL_CERT_FILE`/`SSL_CERT_DIR` included, not a bundle frozen into the binary. One trap
//! follows: a shell where `SSL_CERT_FILE` points at faultline's own CA (as `faultline ca init`
//! suggests for clients) would make faultline trust only itself. faultline's CA is therefore
//! never an upstream root, and a store left empty by that is an error that says so.

use std::path::Path;
use std::sync::Arc;

use rustls::client::WebPkiServerVerifier;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::CertificateDer;
use rustls::{ClientConfig, RootCertStore};

use crate::tls::no_verify::NoVerify;
use crate::tls::pinned_verify::PinnedOrWebPki;
use crate::tls::provider::{provider, VERSIONS};
use crate::tls::{NssKeyLog, TlsError, UpstreamTrust};

/// The config for upstream legs. `own_ca` (faultline's CA certificate) is left out of the trust
/// roots; `keylog` is shared with the client-facing config.
pub fn upstream_client_config(
    trust: &UpstreamTrust,
    own_ca: Option<&CertificateDer<'_>>,
    keylog: Option<Arc<NssKeyLog>>,
) -> Result<ClientConfig, TlsError> {
    let provider = provider();
    let builder =
        ClientConfig::builder_with_provider(provider.clone()).with_protocol_versions(VERSIONS)?;
    let mut config = match trust {
        UpstreamTrust::NoVerify => builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(NoVerify::new(provider)))
            .with_no_client_auth(),
        UpstreamTrust::SystemRoots => builder
            .with_root_certificates(system_roots(own_ca)?)
            .with_no_client_auth(),
        UpstreamTrust::File(path) => {
            let pinned = certificates_from_pem(path)?;
            let webpki = WebPkiServerVerifier::builder_with_provider(
                Arc::new(roots(path, &pinned)?),
                provider,
            )
            .build()
            .map_err(|e| TlsError::UpstreamCa {
                path: path.to_path_buf(),
                reason: e.to_string(),
            })?;
            builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(PinnedOrWebPki::new(webpki, pinned)))
                .with_no_client_auth()
        }
    };
    if let Some(keylog) = keylog {
        config.key_log = keylog;
    }
    // The `tls_alert` fault seals a real alert with the leg's traffic key, which only
    // `dangerous_extract_secrets` gives out (once, when the leg ends anyway).
    config.enable_secret_extraction = true;
    Ok(config)
}

/// Every certificate in the PEM file `path` (an `upstream_ca`), as trust roots.
pub fn roots_from_pem(path: &Path) -> Result<RootCertStore, TlsError> {
    roots(path, &certificates_from_pem(path)?)
}

/// The certificates of the PEM file `path` (an `upstream_ca`): at least one.
fn certificates_from_pem(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let bad = |reason: String| TlsError::UpstreamCa {
        path: path.to_path_buf(),
        reason,
    };
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(|e| bad(e.to_string()))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| bad(format!("not PEM certificates: {e}")))?;
    if certs.is_empty() {
        return Err(bad("no CERTIFICATE block in the file".into()));
    }
    Ok(certs)
}

/// `certs` (read from `path`) as trust roots.
fn roots(path: &Path, certs: &[CertificateDer<'static>]) -> Result<RootCertStore, TlsError> {
    let mut roots = RootCertStore::empty();
    for cert in certs {
        roots.add(cert.clone()).map_err(|e| TlsError::UpstreamCa {
            path: path.to_path_buf(),
            reason: format!("a certificate cannot be a trust root: {e}"),
        })?;
    }
    Ok(roots)
}

/// The machine's trust store (honouring `SSL_CERT_FILE` and `SSL_CERT_DIR`), without `own_ca`.
/// Unreadable or unparsable entries are skipped (and logged at debug), as OpenSSL does.
pub fn system_roots(own_ca: Option<&CertificateDer<'_>>) -> Result<RootCertStore, TlsError> {
    let found = rustls_native_certs::load_native_certs();
    for error in &found.errors {
        tracing::debug!(%error, "skipped part of the system trust store");
    }
    let mut roots = RootCertStore::empty();
    let mut own_seen = false;
    for cert in found.certs {
        if own_ca.is_some_and(|own| own.as_ref() == cert.as_ref()) {
            own_seen = true;
            continue;
        }
        // A root webpki cannot use is one OpenSSL would not use either.
        let _ = roots.add(cert);
    }
    if roots.is_empty() {
        let reason = if own_seen {
            "the system store holds only faultline's own CA (is SSL_CERT_FILE set to ca.pem in the shell that runs faultline?): unset it for faultline, or set upstream_ca".to_string()
        } else {
            let errors: Vec<String> = found.errors.iter().map(|e| e.to_string()).collect();
            format!(
                "no usable certificate in the system store ({}); install ca-certificates or set upstream_ca",
                if errors.is_empty() { "it is empty".into() } else { errors.join("; ") }
            )
        };
        return Err(TlsError::NoRoots { reason });
    }
    Ok(roots)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::test_dir::TestDir;

    #[test]
    fn the_system_store_loads_here() {
        let roots = system_roots(None).unwrap();
        assert!(!roots.is_empty());
    }

    #[test]
    fn an_upstream_ca_file_must_hold_certificates() {
        let tmp = TestDir::new("upstream-ca");
        let empty = tmp.path().join("empty.pem");
        std::fs::write(&empty, "no pem here\n").unwrap();
        let err = roots_from_pem(&empty).unwrap_err();
        assert!(err.to_string().contains("empty.pem"), "{err}");
        let missing = tmp.path().join("missing.pem");
        let err = roots_from_pem(&missing).unwrap_err();
        assert!(err.to_string().contains("missing.pem"), "{err}");
    }

    #[test]
    fn every_trust_choice_builds_a_config() {
        let keylog = Arc::new(NssKeyLog::open(None, true).unwrap());
        for trust in [UpstreamTrust::SystemRoots, UpstreamTrust::NoVerify] {
            let config = upstream_client_config(&trust, None, Some(keylog.clone())).unwrap();
            assert!(config.alpn_protocols.is_empty());
        }
    }
}
