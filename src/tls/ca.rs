//! faultline's certificate authority: created once per user (`faultline ca init`), loaded for
//! interception only when its key is private, described by `faultline ca show`.
//!
//! Shaped after what mitmproxy users know (one long-lived CA in a per-user folder, certificate
//! and key as PEM, leaves minted on the fly), with two differences: the key is ECDSA P-256 (small,
//! fast to sign with, accepted by every current client) and lives in its own 0600 file, apart
//! from the certificate that users copy around.

use std::fs;
use std::io::{self, Write};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose, SerialNumber,
};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::CertificateDer;
use sha2::{Digest, Sha256};
use time::{Duration, OffsetDateTime};

use crate::tls::ca_dir::CaDir;
use crate::tls::TlsError;

/// How long a new CA is valid: long enough that users trust it once (mitmproxy uses 10 years).
pub const CA_VALIDITY: Duration = Duration::days(3650);
/// How far in the past a new certificate starts, so that a client whose clock is a little behind
/// still accepts it (mitmproxy uses the same two days).
pub const BACKDATE: Duration = Duration::days(2);
/// The CA's common name, as certificate viewers and trust stores list it.
pub const CA_COMMON_NAME: &str = "faultline interception CA";

/// Whether `faultline ca init` made a CA or found one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Created {
    /// A new CA was written.
    New,
    /// A CA was already there and was kept untouched.
    Existing,
}

/// The CA, loaded with its signing key, ready to mint leaves.
pub struct CertificateAuthority {
    dir: CaDir,
    certificate: CaCertificate,
    issuer: Issuer<'static, KeyPair>,
}

impl std::fmt::Debug for CertificateAuthority {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CertificateAuthority")
            .field("dir", &self.dir)
            .field("certificate", &self.certificate)
            .finish_non_exhaustive()
    }
}

impl CertificateAuthority {
    /// Creates a CA in `dir` unless one is there, then loads it (so an existing CA with an
    /// exposed key or a mismatched pair is reported now, not at the first intercepted
    /// connection). The folder is created 0700, the key written 0600 without ever being readable
    /// by others, even for an instant.
    pub fn init(
        dir: &CaDir,
        now: OffsetDateTime,
    ) -> Result<(CertificateAuthority, Created), TlsError> {
        let cert_path = dir.cert_path();
        let key_path = dir.key_path();
        let created = match (exists(&cert_path)?, exists(&key_path)?) {
            (true, true) => Created::Existing,
            (true, false) => {
                return Err(TlsError::CaIncomplete {
                    present: cert_path,
                    missing: key_path,
                })
            }
            (false, true) => {
                return Err(TlsError::CaIncomplete {
                    present: key_path,
                    missing: cert_path,
                })
            }
            (false, false) => {
                create(dir, now)?;
                Created::New
            }
        };
        Ok((CertificateAuthority::load(dir, now)?, created))
    }

    /// Loads the CA for signing. Refuses a key that group or others can access, a certificate
    /// that is not a CA, a key that does not belong to the certificate, and an expired CA; each
    /// error names the file and what to do.
    pub fn load(dir: &CaDir, now: OffsetDateTime) -> Result<CertificateAuthority, TlsError> {
        let cert_path = dir.cert_path();
        let key_path = dir.key_path();
        if !exists(&cert_path)? && !exists(&key_path)? {
            return Err(TlsError::CaMissing {
                dir: dir.dir().to_path_buf(),
            });
        }
        let certificate = CaCertificate::read(&cert_path)?;
        check_key_private(&key_path)?;
        let key_pem = fs::read_to_string(&key_path).map_err(|e| TlsError::io(&key_path, e))?;
        let key = KeyPair::from_pem(&key_pem).map_err(|e| TlsError::CaInvalid {
            path: key_path.clone(),
            reason: format!("not a PEM private key: {e}"),
        })?;
        if key.public_key_raw() != certificate.public_key.as_slice() {
            return Err(TlsError::CaInvalid {
                path: key_path,
                reason: format!("this key does not belong to {}", cert_path.display()),
            });
        }
        if certificate.not_after < now {
            return Err(TlsError::CaInvalid {
                path: cert_path,
                reason: format!(
                    "the CA expired on {}: remove ca.pem and ca-key.pem, run `faultline ca init` and trust the new certificate",
                    certificate.not_after.date()
                ),
            });
        }
        let issuer =
            Issuer::from_ca_cert_der(&certificate.der, key).map_err(|e| TlsError::CaInvalid {
                path: cert_path,
                reason: format!("cannot sign with this CA: {e}"),
            })?;
        Ok(CertificateAuthority {
            dir: dir.clone(),
            certificate,
            issuer,
        })
    }

    /// Where the CA lives.
    pub fn dir(&self) -> &CaDir {
        &self.dir
    }

    /// The certificate, its fingerprint and validity.
    pub fn certificate(&self) -> &CaCertificate {
        &self.certificate
    }

    /// The signer of leaf certificates.
    pub fn issuer(&self) -> &Issuer<'static, KeyPair> {
        &self.issuer
    }
}

/// The CA certificate as `faultline ca show` describes it; reading it needs no key.
#[derive(Debug, Clone)]
pub struct CaCertificate {
    /// Where it was read from.
    pub path: PathBuf,
    /// DER bytes.
    pub der: CertificateDer<'static>,
    /// The subject, as `CN=…, O=…`.
    pub subject: String,
    /// Start of validity.
    pub not_before: OffsetDateTime,
    /// End of validity.
    pub not_after: OffsetDateTime,
    /// The raw subject public key (to check that a key belongs to it).
    public_key: Vec<u8>,
}

impl CaCertificate {
    /// Reads and checks `ca.pem`: one PEM certificate that is a CA.
    pub fn read(path: &Path) -> Result<CaCertificate, TlsError> {
        let pem = fs::read(path).map_err(|e| TlsError::io(path, e))?;
        let invalid = |reason: String| TlsError::CaInvalid {
            path: path.to_path_buf(),
            reason,
        };
        let der = CertificateDer::from_pem_slice(&pem)
            .map_err(|e| invalid(format!("not a PEM certificate: {e}")))?;
        let (_, cert) = x509_parser::parse_x509_certificate(&der)
            .map_err(|e| invalid(format!("not an X.509 certificate: {e}")))?;
        if !cert.is_ca() {
            return Err(invalid(
                "not a CA certificate (basicConstraints CA:TRUE is missing)".into(),
            ));
        }
        Ok(CaCertificate {
            path: path.to_path_buf(),
            subject: cert.subject().to_string(),
            not_before: cert.validity().not_before.to_datetime(),
            not_after: cert.validity().not_after.to_datetime(),
            public_key: cert.public_key().subject_public_key.data.to_vec(),
            der: der.clone(),
        })
    }

    /// SHA-256 of the DER certificate as `openssl x509 -fingerprint -sha256` prints it
    /// (`AB:CD:…`), so users can compare with what a browser or openssl shows.
    pub fn fingerprint(&self) -> String {
        fingerprint(&self.der)
    }
}

/// SHA-256 fingerprint of a DER certificate, uppercase hex pairs joined by colons.
pub fn fingerprint(der: &[u8]) -> String {
    Sha256::digest(der)
        .iter()
        .map(|b| format!("{b:02X}"))
        .collect::<Vec<_>>()
        .join(":")
}

/// A random positive serial number of 16 bytes (RFC 5280 allows up to 20; browsers want at least
/// 64 random bits). rcgen would otherwise derive it from the public key, and leaves share one key.
pub fn random_serial() -> SerialNumber {
    let mut bytes: [u8; 16] = rand::random();
    bytes[0] &= 0x7f;
    bytes[0] |= 0x01;
    SerialNumber::from_slice(&bytes)
}

/// Refuses a key file that group or others can access in any way (the error names the file and
/// the `chmod 600` that fixes it); also fails when the file cannot be examined.
pub fn check_key_private(path: &Path) -> Result<(), TlsError> {
    let meta = fs::metadata(path).map_err(|e| TlsError::io(path, e))?;
    let mode = meta.mode() & 0o7777;
    if mode & 0o077 != 0 {
        return Err(TlsError::CaKeyExposed {
            path: path.to_path_buf(),
            mode,
        });
    }
    Ok(())
}

/// Makes the CA folder 0700 when group or others may enter or list it (a folder made by hand,
/// or by an older faultline, is often 0755): only its owner should even see the key's name.
/// Returns the mode it had when it changed it, so `ca init` can say so.
pub fn tighten_folder(dir: &CaDir) -> Result<Option<u32>, TlsError> {
    use std::os::unix::fs::PermissionsExt;
    let folder = dir.dir();
    let mode = fs::metadata(folder)
        .map_err(|e| TlsError::io(folder, e))?
        .mode()
        & 0o7777;
    if mode & 0o077 == 0 {
        return Ok(None);
    }
    fs::set_permissions(folder, fs::Permissions::from_mode(0o700))
        .map_err(|e| TlsError::io(folder, e))?;
    Ok(Some(mode))
}

impl TlsError {
    /// Whether the user must fix the setup (no CA, an exposed key, a bad file, a folder that
    /// cannot be written): `faultline ca` and `run` exit 2 for these, as for invalid input; a
    /// certificate that cannot be made or a concurrent `ca init` are runtime failures (exit 1).
    pub fn is_setup(&self) -> bool {
        !matches!(
            self,
            TlsError::Mint { .. } | TlsError::Config(_) | TlsError::CaRace { .. }
        )
    }
}

fn exists(path: &Path) -> Result<bool, TlsError> {
    match fs::symlink_metadata(path) {
        Ok(_) => Ok(true),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(TlsError::io(path, e)),
    }
}

/// Generates and writes a new CA. The files are written under temporary names and linked into
/// place key first (a link never replaces an existing file), so a concurrent `ca init` or a crash
/// can never pair a certificate with another run's key.
fn create(dir: &CaDir, now: OffsetDateTime) -> Result<(), TlsError> {
    let folder = dir.dir();
    if let Some(parent) = folder.parent() {
        fs::create_dir_all(parent).map_err(|e| TlsError::io(parent, e))?;
    }
    match fs::DirBuilder::new().mode(0o700).create(folder) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists && folder.is_dir() => {}
        Err(e) => return Err(TlsError::io(folder, e)),
    }
    let mint_error = |e: rcgen::Error| TlsError::Mint {
        name: "the CA".into(),
        reason: e.to_string(),
    };
    let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).map_err(mint_error)?;
    let cert = ca_params(now).self_signed(&key).map_err(mint_error)?;

    let suffix = format!(".tmp-{}", std::process::id());
    let key_tmp = folder.join(format!("{}{suffix}", crate::tls::ca_dir::KEY_FILE));
    let cert_tmp = folder.join(format!("{}{suffix}", crate::tls::ca_dir::CERT_FILE));
    let written = write_new(&key_tmp, key.serialize_pem().as_bytes(), 0o600)
        .and_then(|()| write_new(&cert_tmp, cert.pem().as_bytes(), 0o644));
    let linked = written.and_then(|()| {
        fs::hard_link(&key_tmp, dir.key_path()).map_err(|e| {
            if e.kind() == io::ErrorKind::AlreadyExists {
                TlsError::CaRace {
                    path: dir.key_path(),
                }
            } else {
                TlsError::io(dir.key_path(), e)
            }
        })?;
        fs::hard_link(&cert_tmp, dir.cert_path()).map_err(|e| TlsError::io(dir.cert_path(), e))
    });
    let _ = fs::remove_file(&key_tmp);
    let _ = fs::remove_file(&cert_tmp);
    linked
}

/// Writes a file that must not exist yet, with `mode` from the first byte on, and syncs it.
fn write_new(path: &Path, bytes: &[u8], mode: u32) -> Result<(), TlsError> {
    let _ = fs::remove_file(path); // a stale temporary file of a crashed run with our pid
    let mut file = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(path)
        .map_err(|e| TlsError::io(path, e))?;
    file.write_all(bytes)
        .and_then(|()| file.sync_all())
        .map_err(|e| TlsError::io(path, e))
}

/// The CA's certificate parameters: may sign end-entity server certificates only
/// (`pathlen:0`, extended key usage serverAuth), valid from [`BACKDATE`] ago for [`CA_VALIDITY`].
fn ca_params(now: OffsetDateTime) -> CertificateParams {
    let mut params = CertificateParams::default();
    let mut name = DistinguishedName::new();
    name.push(DnType::CommonName, CA_COMMON_NAME);
    name.push(DnType::OrganizationName, "faultline");
    params.distinguished_name = name;
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    params.not_before = now - BACKDATE;
    params.not_after = now + CA_VALIDITY;
    params.serial_number = Some(random_serial());
    params
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::test_dir::TestDir;

    fn now() -> OffsetDateTime {
        OffsetDateTime::now_utc()
    }

    #[test]
    fn init_creates_private_files_and_is_idempotent() {
        let tmp = TestDir::new("ca-init");
        let dir = CaDir::new(tmp.path().join("nested/ca"));
        let (ca, created) = CertificateAuthority::init(&dir, now()).unwrap();
        assert_eq!(created, Created::New);
        let mode = |p: &Path| fs::metadata(p).unwrap().mode() & 0o777;
        assert_eq!(mode(dir.dir()), 0o700);
        assert_eq!(mode(&dir.key_path()), 0o600);
        let fingerprint = ca.certificate().fingerprint();
        assert_eq!(fingerprint.len(), 32 * 3 - 1);
        assert!(ca.certificate().subject.contains(CA_COMMON_NAME));

        let (again, created) = CertificateAuthority::init(&dir, now()).unwrap();
        assert_eq!(created, Created::Existing);
        assert_eq!(again.certificate().fingerprint(), fingerprint);
        let leftovers: Vec<_> = fs::read_dir(dir.dir())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .filter(|n| n.contains(".tmp-"))
            .collect();
        assert!(leftovers.is_empty(), "{leftovers:?}");
    }

    #[test]
    fn validity_starts_in_the_past_and_lasts_years() {
        let tmp = TestDir::new("ca-validity");
        let dir = CaDir::new(tmp.path());
        let at = now();
        let (ca, _) = CertificateAuthority::init(&dir, at).unwrap();
        let cert = ca.certificate();
        assert!(cert.not_before <= at - Duration::days(1));
        assert!(cert.not_after >= at + Duration::days(3000));
    }

    #[test]
    fn a_key_others_can_read_is_refused_with_the_chmod_to_run() {
        use std::os::unix::fs::PermissionsExt;
        let tmp = TestDir::new("ca-exposed");
        let dir = CaDir::new(tmp.path());
        CertificateAuthority::init(&dir, now()).unwrap();
        fs::set_permissions(dir.key_path(), fs::Permissions::from_mode(0o640)).unwrap();
        let err = CertificateAuthority::load(&dir, now()).unwrap_err();
        assert!(
            matches!(err, TlsError::CaKeyExposed { mode: 0o640, .. }),
            "{err}"
        );
        let text = err.to_string();
        assert!(
            text.contains(&format!("chmod 600 {}", dir.key_path().display())),
            "{text}"
        );
        // init reports it too instead of pretending all is well.
        assert!(CertificateAuthority::init(&dir, now()).is_err());
    }

    #[test]
    fn missing_incomplete_and_mismatched_cas_are_named() {
        let tmp = TestDir::new("ca-broken");
        let dir = CaDir::new(tmp.path().join("a"));
        let err = CertificateAuthority::load(&dir, now()).unwrap_err();
        assert!(err.to_string().contains("faultline ca init"), "{err}");

        CertificateAuthority::init(&dir, now()).unwrap();
        let other = CaDir::new(tmp.path().join("b"));
        CertificateAuthority::init(&other, now()).unwrap();
        fs::copy(other.cert_path(), dir.cert_path()).unwrap();
        let err = CertificateAuthority::load(&dir, now()).unwrap_err();
        assert!(err.to_string().contains("does not belong"), "{err}");

        fs::remove_file(other.cert_path()).unwrap();
        let err = CertificateAuthority::init(&other, now()).unwrap_err();
        assert!(matches!(err, TlsError::CaIncomplete { .. }), "{err}");
    }

    #[test]
    fn an_expired_ca_is_refused() {
        let tmp = TestDir::new("ca-expired");
        let dir = CaDir::new(tmp.path());
        let long_ago = now() - Duration::days(4000);
        CertificateAuthority::init(&dir, long_ago).unwrap();
        let err = CertificateAuthority::load(&dir, now()).unwrap_err();
        assert!(err.to_string().contains("expired"), "{err}");
    }

    #[test]
    fn fingerprints_are_colon_separated_uppercase_sha256() {
        // SHA-256 of the empty string, as openssl would print it.
        assert!(fingerprint(b"").starts_with("E3:B0:C4:42:98:FC:1C:14"));
    }
}
