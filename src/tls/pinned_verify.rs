//! Upstream certificate verification that also accepts a self-signed certificate the user
//! pinned: `openssl req -x509`, the usual recipe for a test server, makes a certificate with
//! basicConstraints CA:TRUE and serves it as the server's own. webpki refuses a CA certificate
//! as an end entity, while curl `--cacert`, Python's `ssl` and mitmproxy accept it when that
//! exact certificate is the trust anchor. So does faultline, for a certificate found byte for
//! byte in `upstream_ca`, still checking its name and validity period; everything else goes
//! through webpki unchanged.

use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{CertificateError, DigitallySignedStruct, SignatureScheme};

/// webpki's verdict, or for a pinned CA certificate served as the server's own, faultline's.
#[derive(Debug)]
pub struct PinnedOrWebPki {
    webpki: Arc<WebPkiServerVerifier>,
    pinned: Vec<CertificateDer<'static>>,
}

impl PinnedOrWebPki {
    /// Verifies with `webpki`; `pinned` are the certificates of the `upstream_ca` file.
    pub fn new(webpki: Arc<WebPkiServerVerifier>, pinned: Vec<CertificateDer<'static>>) -> Self {
        PinnedOrWebPki { webpki, pinned }
    }
}

impl ServerCertVerifier for PinnedOrWebPki {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let verdict = self.webpki.verify_server_cert(
            end_entity,
            intermediates,
            server_name,
            ocsp_response,
            now,
        );
        match verdict {
            Err(rustls::Error::InvalidCertificate(CertificateError::Other(inner)))
                if inner.to_string() == "CaUsedAsEndEntity"
                    && self
                        .pinned
                        .iter()
                        .any(|p| p.as_ref() == end_entity.as_ref()) =>
            {
                verify_pinned(end_entity, server_name, now)
            }
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.webpki.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.webpki.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.webpki.supported_verify_schemes()
    }
}

/// A pinned certificate is trusted as itself (the handshake signature still proves the server
/// holds its key): what is left to check is that it names the server and is in its validity
/// period, as OpenSSL does.
fn verify_pinned(
    end_entity: &CertificateDer<'_>,
    server_name: &ServerName<'_>,
    now: UnixTime,
) -> Result<ServerCertVerified, rustls::Error> {
    let bad = |error: CertificateError| rustls::Error::InvalidCertificate(error);
    let cert = webpki::EndEntityCert::try_from(end_entity)
        .map_err(|_| bad(CertificateError::BadEncoding))?;
    cert.verify_is_valid_for_subject_name(server_name)
        .map_err(|_| bad(CertificateError::NotValidForName))?;
    let (_, parsed) = x509_parser::parse_x509_certificate(end_entity.as_ref())
        .map_err(|_| bad(CertificateError::BadEncoding))?;
    let seconds = now.as_secs() as i64;
    let validity = parsed.validity();
    if seconds < validity.not_before.timestamp() {
        return Err(bad(CertificateError::NotValidYet));
    }
    if seconds > validity.not_after.timestamp() {
        return Err(bad(CertificateError::Expired));
    }
    Ok(ServerCertVerified::assertion())
}
