//! The TLS secrets a capture carries (pcapng Decryption Secrets Blocks holding NSS key log
//! lines), by session: client random → label → secret. Read as the capture streams by; a
//! faultline capture puts each secret ahead of the records it decrypts.

use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;

/// One session's secrets: label → secret.
type Secrets = HashMap<String, Vec<u8>>;

/// Secrets per session, shared by the reader loop (which adds) and the TLS flows (which look up).
#[derive(Debug, Default, Clone)]
pub(crate) struct TlsKeys(Rc<RefCell<HashMap<[u8; 32], Secrets>>>);

/// Sessions kept at most: a capture with more distinct sessions than this keeps the first ones
/// (bounded memory for a hostile file; a real run has one per leg).
const MAX_SESSIONS: usize = 1 << 20;

impl TlsKeys {
    /// Adds the lines of an NSS key log (`LABEL CLIENT_RANDOM SECRET`, hex); comments and lines
    /// that do not parse are skipped.
    pub(crate) fn add(&self, key_log: &[u8]) {
        let mut sessions = self.0.borrow_mut();
        for line in String::from_utf8_lossy(key_log).lines() {
            let mut fields = line.split_whitespace();
            let (Some(label), Some(random), Some(secret), None) =
                (fields.next(), fields.next(), fields.next(), fields.next())
            else {
                continue;
            };
            let (Ok(random), Ok(secret)) = (hex::decode(random), hex::decode(secret)) else {
                continue;
            };
            let Ok(random) = <[u8; 32]>::try_from(random) else {
                continue;
            };
            if sessions.len() >= MAX_SESSIONS && !sessions.contains_key(&random) {
                continue;
            }
            sessions
                .entry(random)
                .or_default()
                .insert(label.to_string(), secret);
        }
    }

    /// True while the capture has shown no secret at all (a plaintext capture, or a raw one
    /// before its first Decryption Secrets Block).
    pub(crate) fn is_empty(&self) -> bool {
        self.0.borrow().is_empty()
    }

    /// The secret logged as `label` for the session with `client_random`.
    pub(crate) fn secret(&self, client_random: &[u8; 32], label: &str) -> Option<Vec<u8>> {
        self.0.borrow().get(client_random)?.get(label).cloned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_are_found_by_session_and_label_and_junk_is_skipped() {
        let keys = TlsKeys::default();
        let random = [0xab; 32];
        keys.add(
            format!(
                "# a comment\nCLIENT_RANDOM {} 0102\nSERVER_TRAFFIC_SECRET_0 {} ff\nnot a line\nCLIENT_RANDOM zz 00\nCLIENT_RANDOM 0011 00\n",
                hex::encode(random),
                hex::encode(random)
            )
            .as_bytes(),
        );
        assert_eq!(keys.secret(&random, "CLIENT_RANDOM"), Some(vec![1, 2]));
        assert_eq!(
            keys.secret(&random, "SERVER_TRAFFIC_SECRET_0"),
            Some(vec![0xff])
        );
        assert_eq!(keys.secret(&random, "CLIENT_TRAFFIC_SECRET_0"), None);
        assert_eq!(keys.secret(&[0; 32], "CLIENT_RANDOM"), None);
        keys.add(&[0xff, 0xfe, b'\n']);
    }
}
