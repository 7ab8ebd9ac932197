//! The keys of one direction of a TLS session, and sealing or opening one record with them
//! (TLS 1.3: inner content type, nonce = IV ⊕ sequence; TLS 1.2: AAD of sequence, type, version
//! and length, GCM's explicit nonce in the record).
//!
//! faultline seals with them when it sends a real alert on an intercepted leg (keys extracted
//! from rustls), and `inspect` opens with them when it decrypts a raw capture (keys derived from
//! the key log the capture carries).

use std::fmt;

use rustls::ConnectionTrafficSecrets;

use super::suite::{Aead, TlsVersion};

/// TLS record content types.
pub mod content_type {
    /// change_cipher_spec (TLS 1.2; a compatibility no-op in 1.3).
    pub const CHANGE_CIPHER_SPEC: u8 = 20;
    /// alert.
    pub const ALERT: u8 = 21;
    /// handshake.
    pub const HANDSHAKE: u8 = 22;
    /// application_data (also the outer type of every encrypted TLS 1.3 record).
    pub const APPLICATION_DATA: u8 = 23;
}

/// The largest plaintext a record may carry (2^14) plus what AEAD and TLS 1.3 padding may add.
const MAX_CIPHERTEXT: usize = (1 << 14) + 256;

/// Why a record did not open.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OpenError {
    /// The record is shorter than its AEAD's overhead, or longer than TLS allows.
    BadLength(usize),
    /// Authentication failed: wrong keys, wrong sequence number, or damaged bytes.
    Unauthentic,
    /// A TLS 1.3 record whose plaintext is all padding (no content type).
    NoContentType,
}

impl fmt::Display for OpenError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            OpenError::BadLength(len) => write!(f, "a {len}-byte record cannot be AEAD ciphertext"),
            OpenError::Unauthentic => write!(f, "the record does not authenticate"),
            OpenError::NoContentType => write!(f, "the record has no inner content type"),
        }
    }
}

/// The AEAD key and IV one peer writes with, in one TLS version.
#[derive(Clone)]
pub struct RecordKeys {
    version: TlsVersion,
    aead: Aead,
    key: ring::aead::LessSafeKey,
    /// 12 bytes; for TLS 1.2 AES-GCM only the first 4 (the salt) are fixed when opening, as
    /// each record carries the other 8.
    iv: [u8; 12],
}

impl fmt::Debug for RecordKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never the key itself.
        f.debug_struct("RecordKeys")
            .field("version", &self.version)
            .field("aead", &self.aead)
            .finish_non_exhaustive()
    }
}

impl RecordKeys {
    /// Keys from raw bytes: `key` of the AEAD's length, `iv` of 12 bytes (or the 4-byte salt
    /// of TLS 1.2 AES-GCM, zero-extended). A key of the wrong length gives keys that open
    /// nothing (reported as unauthentic records, never a panic).
    pub fn new(version: TlsVersion, aead: Aead, key: Vec<u8>, iv: &[u8]) -> RecordKeys {
        let unbound = ring::aead::UnboundKey::new(aead.ring(), &key).unwrap_or_else(|_| {
            // Impossible from the key schedule; a zero key of the right length opens nothing.
            ring::aead::UnboundKey::new(aead.ring(), &vec![0u8; aead.key_len()])
                .unwrap_or_else(|_| unreachable!("the AEAD's own key length"))
        });
        let mut fixed = [0u8; 12];
        let n = iv.len().min(12);
        fixed[..n].copy_from_slice(&iv[..n]);
        RecordKeys {
            version,
            aead,
            key: ring::aead::LessSafeKey::new(unbound),
            iv: fixed,
        }
    }

    /// The keys rustls hands out with `dangerous_extract_secrets` for a session of `version`;
    /// `None` for an AEAD faultline does not know (rustls with ring offers none).
    pub fn from_extracted(
        version: TlsVersion,
        secrets: &ConnectionTrafficSecrets,
    ) -> Option<RecordKeys> {
        let (aead, key, iv) = match secrets {
            ConnectionTrafficSecrets::Aes128Gcm { key, iv } => (Aead::Aes128Gcm, key, iv),
            ConnectionTrafficSecrets::Aes256Gcm { key, iv } => (Aead::Aes256Gcm, key, iv),
            ConnectionTrafficSecrets::Chacha20Poly1305 { key, iv } => {
                (Aead::ChaCha20Poly1305, key, iv)
            }
            _ => return None,
        };
        Some(RecordKeys::new(
            version,
            aead,
            key.as_ref().to_vec(),
            iv.as_ref(),
        ))
    }

    /// The nonce of record number `seq`: the IV with the sequence number xored into its last 8
    /// bytes (TLS 1.3, TLS 1.2 ChaCha20, and rustls's choice of explicit nonce for 1.2 GCM).
    fn nonce(&self, seq: u64) -> [u8; 12] {
        let mut nonce = self.iv;
        for (n, s) in nonce[4..].iter_mut().zip(seq.to_be_bytes()) {
            *n ^= s;
        }
        nonce
    }

    fn is_tls12_gcm(&self) -> bool {
        self.version == TlsVersion::Tls12 && self.aead != Aead::ChaCha20Poly1305
    }

    /// The whole record (header included) carrying `plaintext` of `content_type` as record
    /// number `seq` of this direction.
    pub fn seal(&self, seq: u64, content_type: u8, plaintext: &[u8]) -> Vec<u8> {
        let nonce = self.nonce(seq);
        let tag_len = self.aead.ring().tag_len();
        let (outer_type, mut body, explicit) = match self.version {
            TlsVersion::Tls13 => {
                let mut inner = plaintext.to_vec();
                inner.push(content_type);
                (content_type::APPLICATION_DATA, inner, None)
            }
            TlsVersion::Tls12 => (
                content_type,
                plaintext.to_vec(),
                self.is_tls12_gcm().then(|| nonce[4..].to_vec()),
            ),
        };
        let explicit_len = explicit.as_ref().map_or(0, Vec::len);
        let record_len = explicit_len + body.len() + tag_len;
        let header = [outer_type, 3, 3, (record_len >> 8) as u8, record_len as u8];
        let aad = match self.version {
            TlsVersion::Tls13 => header.to_vec(),
            TlsVersion::Tls12 => tls12_aad(seq, content_type, plaintext.len()),
        };
        let sealed = self.key.seal_in_place_append_tag(
            ring::aead::Nonce::assume_unique_for_key(nonce),
            ring::aead::Aad::from(aad),
            &mut body,
        );
        if sealed.is_err() {
            // Only for plaintexts beyond AEAD limits, which a TLS record never reaches.
            return Vec::new();
        }
        let mut record = header.to_vec();
        record.extend(explicit.unwrap_or_default());
        record.extend(body);
        record
    }

    /// Opens record number `seq` of this direction: `header` is its 5-byte header, `payload`
    /// what follows it. Returns the content type and plaintext (TLS 1.3: inner type, padding
    /// removed).
    pub fn open(
        &self,
        seq: u64,
        header: [u8; 5],
        payload: &[u8],
    ) -> Result<(u8, Vec<u8>), OpenError> {
        let tag_len = self.aead.ring().tag_len();
        let explicit_len = if self.is_tls12_gcm() { 8 } else { 0 };
        if payload.len() < explicit_len + tag_len || payload.len() > MAX_CIPHERTEXT + explicit_len {
            return Err(OpenError::BadLength(payload.len()));
        }
        let (nonce, ciphertext) = if explicit_len > 0 {
            let mut nonce = [0u8; 12];
            nonce[..4].copy_from_slice(&self.iv[..4]);
            nonce[4..].copy_from_slice(&payload[..8]);
            (nonce, &payload[8..])
        } else {
            (self.nonce(seq), payload)
        };
        let aad = match self.version {
            TlsVersion::Tls13 => header.to_vec(),
            TlsVersion::Tls12 => tls12_aad(seq, header[0], ciphertext.len() - tag_len),
        };
        let mut buf = ciphertext.to_vec();
        let plain_len = self
            .key
            .open_in_place(
                ring::aead::Nonce::assume_unique_for_key(nonce),
                ring::aead::Aad::from(aad),
                &mut buf,
            )
            .map_err(|_| OpenError::Unauthentic)?
            .len();
        buf.truncate(plain_len);
        match self.version {
            TlsVersion::Tls12 => Ok((header[0], buf)),
            TlsVersion::Tls13 => {
                let Some(end) = buf.iter().rposition(|&b| b != 0) else {
                    return Err(OpenError::NoContentType);
                };
                let kind = buf[end];
                buf.truncate(end);
                Ok((kind, buf))
            }
        }
    }
}

/// TLS 1.2's additional data: sequence number, type, version, plaintext length.
fn tls12_aad(seq: u64, content_type: u8, len: usize) -> Vec<u8> {
    let mut aad = seq.to_be_bytes().to_vec();
    aad.extend([content_type, 3, 3, (len >> 8) as u8, len as u8]);
    aad
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(version: TlsVersion, aead: Aead) -> RecordKeys {
        let key: Vec<u8> = (0..aead.key_len() as u8).collect();
        RecordKeys::new(version, aead, key, &[7u8; 12])
    }

    #[test]
    fn sealed_records_open_again_in_every_version_and_aead() {
        for version in [TlsVersion::Tls12, TlsVersion::Tls13] {
            for aead in [Aead::Aes128Gcm, Aead::Aes256Gcm, Aead::ChaCha20Poly1305] {
                let k = keys(version, aead);
                let record = k.seal(5, content_type::ALERT, &[2, 20]);
                let header: [u8; 5] = record[..5].try_into().unwrap();
                let outer = if version == TlsVersion::Tls13 {
                    content_type::APPLICATION_DATA
                } else {
                    content_type::ALERT
                };
                assert_eq!(header[0], outer, "{version:?} {aead:?}");
                assert_eq!(
                    usize::from(u16::from_be_bytes([header[3], header[4]])),
                    record.len() - 5
                );
                assert_eq!(
                    k.open(5, header, &record[5..]),
                    Ok((content_type::ALERT, vec![2, 20])),
                    "{version:?} {aead:?}"
                );
                // Another sequence number, or one flipped bit, does not authenticate.
                assert_eq!(k.open(6, header, &record[5..]), Err(OpenError::Unauthentic));
                let mut damaged = record.clone();
                let last = damaged.len() - 1;
                damaged[last] ^= 1;
                assert_eq!(
                    k.open(5, header, &damaged[5..]),
                    Err(OpenError::Unauthentic)
                );
                // Garbage is an error, never a panic.
                assert_eq!(k.open(5, header, &[1, 2, 3]), Err(OpenError::BadLength(3)));
            }
        }
    }

    #[test]
    fn tls13_padding_is_removed_and_all_padding_is_refused() {
        let k = keys(TlsVersion::Tls13, Aead::Aes128Gcm);
        // Seal "hi" + type + two padding zeros by hand, as a padding peer would.
        let record = k.seal(0, 0, &[b'h', b'i', content_type::APPLICATION_DATA, 0]);
        let header: [u8; 5] = record[..5].try_into().unwrap();
        // The trailing 0 we passed as "content type" is padding to the opener.
        assert_eq!(
            k.open(0, header, &record[5..]),
            Ok((content_type::APPLICATION_DATA, b"hi".to_vec()))
        );
        let empty = k.seal(1, 0, &[]);
        let header: [u8; 5] = empty[..5].try_into().unwrap();
        assert_eq!(
            k.open(1, header, &empty[5..]),
            Err(OpenError::NoContentType)
        );
    }
}
