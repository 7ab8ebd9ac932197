//! Leaf certificates minted by the CA for the name a client asked for: a DNS name (from SNI) or
//! an IP address (no SNI, or an IP literal in SNI), cached for the run and never written to disk.
//!
//! What every client we care about accepts: the name is in the subjectAltName (Go, Python ≥ 3.7
//! and Node ignore the common name; curl/OpenSSL use it only without a SAN), an IP goes in an
//! iPAddress SAN (never a dNSName), extended key usage serverAuth, key usage digitalSignature
//! (ECDSA), an authority key identifier pointing at the CA, a random serial, validity from
//! [`BACKDATE`] ago for about a year (Apple and Chrome refuse leaves valid for more than 398 days).
//! All leaves of a run share one P-256 key: generating a key per name buys nothing for a test
//! proxy, and sharing makes a new name cost one signature.

use std::fmt;
use std::net::IpAddr;
use std::sync::Arc;

use rcgen::{
    CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, KeyPair,
    KeyUsagePurpose, SanType,
};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, DnsName, PrivateKeyDer, PrivatePkcs8KeyDer};
use rustls::sign::CertifiedKey;
use time::{Duration, OffsetDateTime};

use crate::tls::ca::{random_serial, BACKDATE};
use crate::tls::leaf_cache::{BoundedCache, DEFAULT_CAPACITY};
use crate::tls::{CertificateAuthority, TlsError};

/// How long a leaf is valid after `now` (capped by the CA's own end of validity).
pub const LEAF_VALIDITY: Duration = Duration::days(365);

/// What a leaf certificate is for.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum LeafName {
    /// A DNS name, lowercase (names are case-insensitive; one leaf per name, however spelt).
    Dns(String),
    /// An IP address.
    Ip(IpAddr),
}

impl LeafName {
    /// The leaf name for `name` as a client wrote it: an IP literal (`127.0.0.1`, `::1`,
    /// `[::1]`) becomes [`LeafName::Ip`], anything else must be a valid DNS name.
    pub fn parse(name: &str) -> Result<LeafName, TlsError> {
        let bare = name
            .strip_prefix('[')
            .and_then(|n| n.strip_suffix(']'))
            .unwrap_or(name);
        if let Ok(ip) = bare.parse::<IpAddr>() {
            return Ok(LeafName::Ip(ip));
        }
        let lower = name.trim_end_matches('.').to_ascii_lowercase();
        DnsName::try_from(lower.as_str()).map_err(|_| TlsError::Mint {
            name: name.escape_debug().to_string(),
            reason: "not a valid DNS name".into(),
        })?;
        Ok(LeafName::Dns(lower))
    }
}

impl fmt::Display for LeafName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LeafName::Dns(name) => f.write_str(name),
            LeafName::Ip(ip) => write!(f, "{ip}"),
        }
    }
}

/// Mints and caches leaves signed by the CA.
pub struct LeafMinter {
    ca: CertificateAuthority,
    leaf_key: KeyPair,
    signing_key: Arc<dyn rustls::sign::SigningKey>,
    cache: BoundedCache<LeafName, CertifiedKey>,
}

impl fmt::Debug for LeafMinter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LeafMinter")
            .field("ca", &self.ca)
            .field("cached", &self.cache.len())
            .finish_non_exhaustive()
    }
}

impl LeafMinter {
    /// A minter for `ca` with a fresh leaf key and a cache of [`DEFAULT_CAPACITY`] names.
    pub fn new(
        ca: CertificateAuthority,
        provider: &CryptoProvider,
    ) -> Result<LeafMinter, TlsError> {
        LeafMinter::with_capacity(ca, provider, DEFAULT_CAPACITY)
    }

    /// As [`LeafMinter::new`], keeping at most `capacity` leaves.
    pub fn with_capacity(
        ca: CertificateAuthority,
        provider: &CryptoProvider,
        capacity: usize,
    ) -> Result<LeafMinter, TlsError> {
        let mint_error = |reason: String| TlsError::Mint {
            name: "the leaf key".into(),
            reason,
        };
        let leaf_key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)
            .map_err(|e| mint_error(e.to_string()))?;
        let der = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(leaf_key.serialize_der()));
        let signing_key = provider
            .key_provider
            .load_private_key(der)
            .map_err(|e| mint_error(e.to_string()))?;
        Ok(LeafMinter {
            ca,
            leaf_key,
            signing_key,
            cache: BoundedCache::new(capacity),
        })
    }

    /// The CA that signs the leaves.
    pub fn ca(&self) -> &CertificateAuthority {
        &self.ca
    }

    /// The leaf for `name` with its chain (leaf, then the CA) and key, minted on first use.
    pub fn certified_key(&self, name: &LeafName) -> Result<Arc<CertifiedKey>, TlsError> {
        self.cache.get_or_try_insert(name, || {
            let leaf = self.mint(name, OffsetDateTime::now_utc())?;
            Ok(CertifiedKey::new(
                vec![leaf, self.ca.certificate().der.clone()],
                self.signing_key.clone(),
            ))
        })
    }

    /// How many leaves are cached.
    pub fn cached(&self) -> usize {
        self.cache.len()
    }

    /// Mints a leaf certificate for `name`, valid from `now` minus [`BACKDATE`]; not cached.
    pub fn mint(
        &self,
        name: &LeafName,
        now: OffsetDateTime,
    ) -> Result<CertificateDer<'static>, TlsError> {
        let mint_error = |e: rcgen::Error| TlsError::Mint {
            name: name.to_string(),
            reason: e.to_string(),
        };
        let mut params = CertificateParams::default();
        let mut subject = DistinguishedName::new();
        let text = name.to_string();
        // RFC 5280 caps the common name at 64 characters; the SAN carries the name anyway.
        if text.len() <= 64 {
            subject.push(DnType::CommonName, text.as_str());
        }
        subject.push(DnType::OrganizationName, "faultline");
        params.distinguished_name = subject;
        params.subject_alt_names = vec![match name {
            LeafName::Dns(dns) => SanType::DnsName(dns.as_str().try_into().map_err(mint_error)?),
            LeafName::Ip(ip) => SanType::IpAddress(*ip),
        }];
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        params.use_authority_key_identifier_extension = true;
        params.serial_number = Some(random_serial());
        params.not_before = now - BACKDATE;
        params.not_after = (now + LEAF_VALIDITY).min(self.ca.certificate().not_after);
        let cert = params
            .signed_by(&self.leaf_key, self.ca.issuer())
            .map_err(mint_error)?;
        Ok(cert.der().clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::test_dir::TestDir;
    use crate::tls::ca_dir::CaDir;
    use crate::tls::provider::provider;
    use rustls::client::danger::ServerCertVerifier;
    use rustls::client::WebPkiServerVerifier;
    use rustls::pki_types::{ServerName, UnixTime};
    use rustls::RootCertStore;

    fn minter(label: &str) -> (TestDir, LeafMinter) {
        let tmp = TestDir::new(label);
        let (ca, _) =
            CertificateAuthority::init(&CaDir::new(tmp.path()), OffsetDateTime::now_utc()).unwrap();
        let minter = LeafMinter::with_capacity(ca, &provider(), 3).unwrap();
        (tmp, minter)
    }

    /// Verifies `leaf` for `name` with webpki, as rustls clients would.
    fn verify(
        minter: &LeafMinter,
        leaf: &CertificateDer<'static>,
        name: &str,
    ) -> Result<(), rustls::Error> {
        let mut roots = RootCertStore::empty();
        roots.add(minter.ca().certificate().der.clone()).unwrap();
        let verifier = WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider())
            .build()
            .unwrap();
        verifier
            .verify_server_cert(
                leaf,
                &[],
                &ServerName::try_from(name.to_string()).unwrap(),
                &[],
                UnixTime::now(),
            )
            .map(|_| ())
    }

    #[test]
    fn names_parse_into_dns_or_ip() {
        assert_eq!(
            LeafName::parse("Example.COM.").unwrap(),
            LeafName::Dns("example.com".into())
        );
        assert_eq!(
            LeafName::parse("127.0.0.1").unwrap(),
            LeafName::Ip("127.0.0.1".parse().unwrap())
        );
        assert_eq!(
            LeafName::parse("[::1]").unwrap(),
            LeafName::Ip("::1".parse().unwrap())
        );
        assert!(LeafName::parse("bad name").is_err());
        assert!(LeafName::parse("").is_err());
        assert!(LeafName::parse("\u{e9}.example").is_err());
    }

    #[test]
    fn leaves_verify_for_their_name_only() {
        let (_tmp, minter) = minter("leaf-verify");
        let dns = minter
            .mint(
                &LeafName::parse("s3.example.test").unwrap(),
                OffsetDateTime::now_utc(),
            )
            .unwrap();
        verify(&minter, &dns, "s3.example.test").unwrap();
        assert!(verify(&minter, &dns, "other.example.test").is_err());
        let ip = minter
            .mint(
                &LeafName::parse("127.0.0.1").unwrap(),
                OffsetDateTime::now_utc(),
            )
            .unwrap();
        verify(&minter, &ip, "127.0.0.1").unwrap();
        assert!(verify(&minter, &ip, "127.0.0.2").is_err());
    }

    #[test]
    fn leaves_carry_san_eku_and_a_backdated_year() {
        let (_tmp, minter) = minter("leaf-fields");
        let now = OffsetDateTime::now_utc();
        let der = minter.mint(&LeafName::parse("::1").unwrap(), now).unwrap();
        let (_, cert) = x509_parser::parse_x509_certificate(&der).unwrap();
        let san = cert.subject_alternative_name().unwrap().unwrap();
        assert_eq!(san.value.general_names.len(), 1);
        assert!(matches!(
            san.value.general_names[0],
            x509_parser::extensions::GeneralName::IPAddress(bytes) if bytes.len() == 16
        ));
        assert!(
            cert.extended_key_usage()
                .unwrap()
                .unwrap()
                .value
                .server_auth
        );
        assert!(!cert.is_ca());
        let not_before = cert.validity().not_before.to_datetime();
        let not_after = cert.validity().not_after.to_datetime();
        assert!(not_before <= now - Duration::days(1));
        assert!(not_after - now <= Duration::days(398));
        let (_, ca) = x509_parser::parse_x509_certificate(&minter.ca().certificate().der).unwrap();
        assert_eq!(cert.issuer(), ca.subject());
    }

    #[test]
    fn every_leaf_gets_its_own_serial() {
        let (_tmp, minter) = minter("leaf-serial");
        let now = OffsetDateTime::now_utc();
        let a = minter
            .mint(&LeafName::parse("a.test").unwrap(), now)
            .unwrap();
        let b = minter
            .mint(&LeafName::parse("b.test").unwrap(), now)
            .unwrap();
        let serial = |der: &CertificateDer<'_>| {
            x509_parser::parse_x509_certificate(der)
                .unwrap()
                .1
                .raw_serial()
                .to_vec()
        };
        assert_ne!(serial(&a), serial(&b));
    }

    #[test]
    fn certified_keys_are_cached_per_name_and_bounded() {
        let (_tmp, minter) = minter("leaf-cache");
        let name = LeafName::parse("a.test").unwrap();
        let first = minter.certified_key(&name).unwrap();
        let second = minter
            .certified_key(&LeafName::parse("A.TEST").unwrap())
            .unwrap();
        assert!(Arc::ptr_eq(&first, &second));
        assert_eq!(first.cert.len(), 2, "leaf then CA");
        for other in ["b.test", "c.test", "d.test", "e.test"] {
            minter
                .certified_key(&LeafName::parse(other).unwrap())
                .unwrap();
        }
        assert_eq!(minter.cached(), 3);
    }
}
