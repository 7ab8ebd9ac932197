//! The TLS cipher suites faultline can seal and open records for: every AEAD suite of TLS 1.3 and
//! the AEAD suites of TLS 1.2 (AES-GCM, ChaCha20-Poly1305), by their IANA code.
//!
//! A suite outside this table (CBC, RC4, …, offered by other servers than rustls ones) is named,
//! never guessed at: `inspect` reports "cannot decrypt suite X" for it.

/// The TLS version a suite belongs to (TLS 1.3 suites exist in 1.3 only, and the reverse).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TlsVersion {
    /// TLS 1.2 (RFC 5246): AEAD with explicit nonces (GCM) and the PRF key block.
    Tls12,
    /// TLS 1.3 (RFC 8446): AEAD under HKDF-derived traffic keys, inner content types.
    Tls13,
}

/// The AEAD algorithm of a suite.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Aead {
    /// AES-128-GCM (16-byte key).
    Aes128Gcm,
    /// AES-256-GCM (32-byte key).
    Aes256Gcm,
    /// ChaCha20-Poly1305 (32-byte key).
    ChaCha20Poly1305,
}

impl Aead {
    /// Key length in bytes.
    pub fn key_len(self) -> usize {
        match self {
            Aead::Aes128Gcm => 16,
            Aead::Aes256Gcm | Aead::ChaCha20Poly1305 => 32,
        }
    }

    /// The ring algorithm.
    pub fn ring(self) -> &'static ring::aead::Algorithm {
        match self {
            Aead::Aes128Gcm => &ring::aead::AES_128_GCM,
            Aead::Aes256Gcm => &ring::aead::AES_256_GCM,
            Aead::ChaCha20Poly1305 => &ring::aead::CHACHA20_POLY1305,
        }
    }
}

/// The hash of a suite (HKDF in TLS 1.3, the PRF in TLS 1.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SuiteHash {
    /// SHA-256.
    Sha256,
    /// SHA-384.
    Sha384,
}

impl SuiteHash {
    /// Output length in bytes.
    pub fn output_len(self) -> usize {
        match self {
            SuiteHash::Sha256 => 32,
            SuiteHash::Sha384 => 48,
        }
    }
}

/// One cipher suite.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Suite {
    /// IANA code, as in the ServerHello.
    pub id: u16,
    /// IANA name, for reports.
    pub name: &'static str,
    /// The version the suite belongs to.
    pub version: TlsVersion,
    /// Its AEAD.
    pub aead: Aead,
    /// Its hash.
    pub hash: SuiteHash,
}

impl Suite {
    /// Bytes of the implicit IV from the key schedule: 12 in TLS 1.3 and for ChaCha20 in 1.2,
    /// the 4-byte salt for AES-GCM in TLS 1.2 (the other 8 travel in each record).
    pub fn fixed_iv_len(&self) -> usize {
        match (self.version, self.aead) {
            (TlsVersion::Tls12, Aead::Aes128Gcm | Aead::Aes256Gcm) => 4,
            _ => 12,
        }
    }

    /// The suite with IANA code `id`, if faultline can seal and open its records.
    pub fn by_id(id: u16) -> Option<Suite> {
        SUITES.iter().find(|s| s.id == id).copied()
    }
}

const fn suite(
    id: u16,
    name: &'static str,
    version: TlsVersion,
    aead: Aead,
    hash: SuiteHash,
) -> Suite {
    Suite {
        id,
        name,
        version,
        aead,
        hash,
    }
}

use Aead::{Aes128Gcm, Aes256Gcm, ChaCha20Poly1305};
use SuiteHash::{Sha256, Sha384};
use TlsVersion::{Tls12, Tls13};

/// Every suite faultline handles.
const SUITES: &[Suite] = &[
    suite(0x1301, "TLS_AES_128_GCM_SHA256", Tls13, Aes128Gcm, Sha256),
    suite(0x1302, "TLS_AES_256_GCM_SHA384", Tls13, Aes256Gcm, Sha384),
    suite(
        0x1303,
        "TLS_CHACHA20_POLY1305_SHA256",
        Tls13,
        ChaCha20Poly1305,
        Sha256,
    ),
    suite(
        0xC02B,
        "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256",
        Tls12,
        Aes128Gcm,
        Sha256,
    ),
    suite(
        0xC02C,
        "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384",
        Tls12,
        Aes256Gcm,
        Sha384,
    ),
    suite(
        0xC02F,
        "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256",
        Tls12,
        Aes128Gcm,
        Sha256,
    ),
    suite(
        0xC030,
        "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384",
        Tls12,
        Aes256Gcm,
        Sha384,
    ),
    suite(
        0xCCA8,
        "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256",
        Tls12,
        ChaCha20Poly1305,
        Sha256,
    ),
    suite(
        0xCCA9,
        "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256",
        Tls12,
        ChaCha20Poly1305,
        Sha256,
    ),
    suite(
        0xCCAA,
        "TLS_DHE_RSA_WITH_CHACHA20_POLY1305_SHA256",
        Tls12,
        ChaCha20Poly1305,
        Sha256,
    ),
    suite(
        0x009C,
        "TLS_RSA_WITH_AES_128_GCM_SHA256",
        Tls12,
        Aes128Gcm,
        Sha256,
    ),
    suite(
        0x009D,
        "TLS_RSA_WITH_AES_256_GCM_SHA384",
        Tls12,
        Aes256Gcm,
        Sha384,
    ),
    suite(
        0x009E,
        "TLS_DHE_RSA_WITH_AES_128_GCM_SHA256",
        Tls12,
        Aes128Gcm,
        Sha256,
    ),
    suite(
        0x009F,
        "TLS_DHE_RSA_WITH_AES_256_GCM_SHA384",
        Tls12,
        Aes256Gcm,
        Sha384,
    ),
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_suite_rustls_offers_is_known_with_its_name() {
        for offered in crate::tls::provider::provider().cipher_suites.iter() {
            let id = u16::from(offered.suite());
            let ours = Suite::by_id(id).unwrap_or_else(|| panic!("{offered:?} unknown"));
            // rustls spells TLS 1.3 suites `TLS13_…`; IANA (and Wireshark) `TLS_…`.
            let theirs = offered
                .suite()
                .as_str()
                .map(|n| n.replace("TLS13_", "TLS_"));
            assert_eq!(Some(ours.name.to_string()), theirs, "{id:#06x}");
            let version = match offered.version().version {
                rustls::ProtocolVersion::TLSv1_3 => TlsVersion::Tls13,
                _ => TlsVersion::Tls12,
            };
            assert_eq!(ours.version, version);
        }
    }

    #[test]
    fn cbc_suites_are_not_guessed_at() {
        assert_eq!(Suite::by_id(0xC013), None, "ECDHE_RSA_WITH_AES_128_CBC_SHA");
        assert_eq!(Suite::by_id(0x002F), None, "RSA_WITH_AES_128_CBC_SHA");
    }

    #[test]
    fn gcm_in_tls12_keeps_only_the_salt() {
        let gcm12 = Suite::by_id(0xC02F).unwrap();
        let chacha12 = Suite::by_id(0xCCA8).unwrap();
        let gcm13 = Suite::by_id(0x1301).unwrap();
        assert_eq!(
            (
                gcm12.fixed_iv_len(),
                chacha12.fixed_iv_len(),
                gcm13.fixed_iv_len()
            ),
            (4, 12, 12)
        );
        assert_eq!(Suite::by_id(0x1302).unwrap().hash.output_len(), 48);
    }
}
