//! From the secrets of an NSS key log to the record keys of one direction: TLS 1.3's
//! HKDF-Expand-Label (traffic secret → key and IV, and the next secret after a KeyUpdate) and
//! TLS 1.2's PRF key block (master secret and both randoms → both directions' keys).
//!
//! Pure functions over ring's HKDF and HMAC, so `inspect` decrypts a capture with exactly the
//! keys the peers used.

use ring::{hkdf, hmac};

use super::record_keys::RecordKeys;
use super::suite::{Suite, SuiteHash, TlsVersion};

/// A length for ring's HKDF output.
struct Len(usize);

impl hkdf::KeyType for Len {
    fn len(&self) -> usize {
        self.0
    }
}

fn hkdf_algorithm(hash: SuiteHash) -> hkdf::Algorithm {
    match hash {
        SuiteHash::Sha256 => hkdf::HKDF_SHA256,
        SuiteHash::Sha384 => hkdf::HKDF_SHA384,
    }
}

/// HKDF-Expand-Label(secret, label, "", len) of RFC 8446 §7.1 (empty context).
pub fn expand_label(hash: SuiteHash, secret: &[u8], label: &str, len: usize) -> Vec<u8> {
    let prk = hkdf::Prk::new_less_safe(hkdf_algorithm(hash), secret);
    let out_len = (len as u16).to_be_bytes();
    let full_label = [b"tls13 ".as_slice(), label.as_bytes()].concat();
    let label_len = [full_label.len() as u8];
    let info: [&[u8]; 4] = [&out_len, &label_len, &full_label, &[0u8]];
    let mut out = vec![0u8; len];
    // Lengths here are at most 48 bytes, far below HKDF's limit of 255 hash blocks.
    if let Ok(okm) = prk.expand(&info, Len(len)) {
        let _ = okm.fill(&mut out);
    }
    out
}

/// The TLS 1.3 record keys of one direction under `traffic_secret` (a handshake or application
/// traffic secret from the key log).
pub fn tls13_keys(suite: Suite, traffic_secret: &[u8]) -> RecordKeys {
    let key = expand_label(suite.hash, traffic_secret, "key", suite.aead.key_len());
    let iv = expand_label(suite.hash, traffic_secret, "iv", 12);
    RecordKeys::new(TlsVersion::Tls13, suite.aead, key, &iv)
}

/// The traffic secret after a KeyUpdate (RFC 8446 §7.2).
pub fn tls13_next_secret(suite: Suite, traffic_secret: &[u8]) -> Vec<u8> {
    expand_label(
        suite.hash,
        traffic_secret,
        "traffic upd",
        suite.hash.output_len(),
    )
}

/// TLS 1.2's PRF: P_hash(secret, label ‖ seed) (RFC 5246 §5), `len` bytes.
pub fn tls12_prf(hash: SuiteHash, secret: &[u8], label: &[u8], seed: &[u8], len: usize) -> Vec<u8> {
    let algorithm = match hash {
        SuiteHash::Sha256 => hmac::HMAC_SHA256,
        SuiteHash::Sha384 => hmac::HMAC_SHA384,
    };
    let key = hmac::Key::new(algorithm, secret);
    let label_seed = [label, seed].concat();
    let mut a = hmac::sign(&key, &label_seed);
    let mut out = Vec::with_capacity(len + hash.output_len());
    while out.len() < len {
        let mut ctx = hmac::Context::with_key(&key);
        ctx.update(a.as_ref());
        ctx.update(&label_seed);
        out.extend_from_slice(ctx.sign().as_ref());
        a = hmac::sign(&key, a.as_ref());
    }
    out.truncate(len);
    out
}

/// The TLS 1.2 record keys of both directions, (client's writes, server's writes), from the
/// master secret (`CLIENT_RANDOM` in the key log) and both hello randoms (RFC 5246 §6.3; AEAD
/// suites have no MAC keys).
pub fn tls12_keys(
    suite: Suite,
    master_secret: &[u8],
    client_random: &[u8],
    server_random: &[u8],
) -> (RecordKeys, RecordKeys) {
    let key_len = suite.aead.key_len();
    let iv_len = suite.fixed_iv_len();
    let seed = [server_random, client_random].concat();
    let block = tls12_prf(
        suite.hash,
        master_secret,
        b"key expansion",
        &seed,
        2 * (key_len + iv_len),
    );
    let (client_key, rest) = block.split_at(key_len);
    let (server_key, rest) = rest.split_at(key_len);
    let (client_iv, server_iv) = rest.split_at(iv_len);
    (
        RecordKeys::new(
            TlsVersion::Tls12,
            suite.aead,
            client_key.to_vec(),
            client_iv,
        ),
        RecordKeys::new(
            TlsVersion::Tls12,
            suite.aead,
            server_key.to_vec(),
            server_iv,
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unhex(s: &str) -> Vec<u8> {
        hex::decode(s.split_whitespace().collect::<String>()).unwrap()
    }

    #[test]
    fn rfc_8448_server_application_keys() {
        // RFC 8448 §3 (Simple 1-RTT Handshake), server application traffic secret and the
        // key and IV derived from it.
        let suite = Suite::by_id(0x1301).unwrap();
        let secret = unhex(
            "a1 1a f9 f0 55 31 f8 56 ad 47 11 6b 45 a9 50 32 82 04 b4 f4 4b fb 6b 3a 4b 4f 1f 3f cb 63 16 43",
        );
        assert_eq!(
            expand_label(suite.hash, &secret, "key", 16),
            unhex("9f 02 28 3b 6c 9c 07 ef c2 6b b9 f2 ac 92 e3 56")
        );
        assert_eq!(
            expand_label(suite.hash, &secret, "iv", 12),
            unhex("cf 78 2b 88 dd 83 54 9a ad f1 e9 84")
        );
    }

    #[test]
    fn the_prf_is_rfc_5246_p_sha256() {
        // The widely used P_SHA256 test vector (IETF TLS WG mailing list, 2009).
        let out = tls12_prf(
            SuiteHash::Sha256,
            &unhex("9b be 43 6b a9 40 f0 17 b1 76 52 84 9a 71 db 35"),
            b"test label",
            &unhex("a0 ba 9f 93 6c da 31 18 27 a6 f7 96 ff d5 19 8c"),
            100,
        );
        assert_eq!(
            out,
            unhex(
                "e3 f2 29 ba 72 7b e1 7b 8d 12 26 20 55 7c d4 53 c2 aa b2 1d 07 c3 d4 95 32 9b 52 d4 e6 1e db 5a \
                 6b 30 17 91 e9 0d 35 c9 c9 a4 6b 4e 14 ba f9 af 0f a0 22 f7 07 7d ef 17 ab fd 37 97 c0 56 4b ab \
                 4f bc 91 66 6e 9d ef 9b 97 fc e3 4f 79 67 89 ba a4 80 82 d1 22 ee 42 c5 a7 2e 5a 51 10 ff f7 01 \
                 87 34 7b 66"
            )
        );
    }
}
