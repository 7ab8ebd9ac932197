//! TLS session keys inside the capture: a pcapng Decryption Secrets Block holding NSS key log
//! lines, written ahead of the packets they decrypt, so Wireshark, `tshark -r FILE -Y http` and
//! `faultline inspect` read a `capture_tls = "raw"` capture with no key file beside it.
//!
//! The writer asks its [`SecretsSource`] for new lines before it encodes each event. Any secret
//! logged before an event was recorded is therefore in the file before that event's packets;
//! the proxy makes sure the records a secret decrypts are recorded only after it was logged
//! (see `proxy::record_tap`).

use std::fmt::Debug;

/// pcapng block type of a Decryption Secrets Block.
const DSB: u32 = 0x0000_000A;
/// Secrets type "TLSK": an NSS key log.
const TLS_KEY_LOG: u32 = 0x544C_534B;

/// Where the writer gets key log lines from (the run's TLS key log).
pub trait SecretsSource: Send + Sync + Debug {
    /// NSS key log lines logged since the previous call (empty when none).
    fn take_unwritten(&self) -> Vec<u8>;
}

impl SecretsSource for crate::tls::NssKeyLog {
    fn take_unwritten(&self) -> Vec<u8> {
        crate::tls::NssKeyLog::take_unwritten(self)
    }
}

/// Appends one Decryption Secrets Block carrying `key_log` (NSS key log text), little-endian
/// like the rest of faultline's pcapng.
pub(crate) fn decryption_secrets_block(out: &mut Vec<u8>, key_log: &[u8]) {
    let padded = key_log.len().next_multiple_of(4);
    let total = 4 + 4 + 4 + 4 + padded + 4;
    out.extend_from_slice(&DSB.to_le_bytes());
    out.extend_from_slice(&(total as u32).to_le_bytes());
    out.extend_from_slice(&TLS_KEY_LOG.to_le_bytes());
    out.extend_from_slice(&(key_log.len() as u32).to_le_bytes());
    out.extend_from_slice(key_log);
    out.resize(out.len() + padded - key_log.len(), 0);
    out.extend_from_slice(&(total as u32).to_le_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_block_is_padded_and_framed_by_its_length() {
        let mut out = Vec::new();
        let text = b"CLIENT_RANDOM ab 01\n";
        decryption_secrets_block(&mut out, text);
        assert_eq!(out.len() % 4, 0);
        let word = |at: usize| u32::from_le_bytes(out[at..at + 4].try_into().unwrap());
        assert_eq!(word(0), 0x0A);
        assert_eq!(word(4) as usize, out.len());
        assert_eq!(word(out.len() - 4) as usize, out.len());
        assert_eq!(word(8), 0x544C534B);
        assert_eq!(word(12) as usize, text.len());
        assert_eq!(&out[16..16 + text.len()], text);
    }
}
