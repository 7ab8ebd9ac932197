//! Reads the server random, the cipher suite and the negotiated version out of a ServerHello:
//! what decrypting a recorded TLS session needs besides the key log (TLS 1.2 derives its keys
//! from both randoms; the suite says which AEAD and hash; a HelloRetryRequest is not the answer).
//!
//! Like the ClientHello peek, every length is checked against what contains it: no input panics.

/// The random of a HelloRetryRequest (RFC 8446 §4.1.3): SHA-256 of "HelloRetryRequest".
const HELLO_RETRY_RANDOM: [u8; 32] = [
    0xCF, 0x21, 0xAD, 0x74, 0xE5, 0x9A, 0x61, 0x11, 0xBE, 0x1D, 0x8C, 0x02, 0x1E, 0x65, 0xB8, 0x91,
    0xC2, 0xA2, 0x11, 0x16, 0x7A, 0xBB, 0x8C, 0x5E, 0x07, 0x9E, 0x09, 0xE2, 0xC8, 0xA8, 0x33, 0x9C,
];
/// Handshake message type of a ServerHello.
pub const SERVER_HELLO: u8 = 2;
const EXT_SUPPORTED_VERSIONS: u16 = 43;

/// What a ServerHello chose.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerHelloInfo {
    /// The server random.
    pub random: [u8; 32],
    /// The cipher suite's IANA code.
    pub suite: u16,
    /// The negotiated version: `supported_versions` when present (TLS 1.3), else the legacy
    /// version field (0x0303 for TLS 1.2).
    pub version: u16,
    /// Whether this is a HelloRetryRequest (the real ServerHello follows it).
    pub retry: bool,
}

/// Parses the body of a ServerHello handshake message (after its 4-byte header).
pub fn parse_server_hello(body: &[u8]) -> Result<ServerHelloInfo, &'static str> {
    let mut r = body;
    let legacy = u16::from_be_bytes(take::<2>(&mut r).ok_or("no server version")?);
    let random = take::<32>(&mut r).ok_or("no server random")?;
    let [session_len] = take::<1>(&mut r).ok_or("no session id")?;
    skip(&mut r, usize::from(session_len)).ok_or("a truncated session id")?;
    let suite = u16::from_be_bytes(take::<2>(&mut r).ok_or("no cipher suite")?);
    take::<1>(&mut r).ok_or("no compression method")?;
    let mut version = legacy;
    if !r.is_empty() {
        let len = usize::from(u16::from_be_bytes(
            take::<2>(&mut r).ok_or("truncated extensions")?,
        ));
        let mut extensions = r.get(..len).ok_or("truncated extensions")?;
        while !extensions.is_empty() {
            let kind =
                u16::from_be_bytes(take::<2>(&mut extensions).ok_or("a truncated extension")?);
            let len = usize::from(u16::from_be_bytes(
                take::<2>(&mut extensions).ok_or("a truncated extension")?,
            ));
            let data = extensions.get(..len).ok_or("a truncated extension")?;
            extensions = &extensions[len..];
            if kind == EXT_SUPPORTED_VERSIONS {
                let chosen: [u8; 2] = data.try_into().map_err(|_| "a bad supported_versions")?;
                version = u16::from_be_bytes(chosen);
            }
        }
    }
    Ok(ServerHelloInfo {
        random,
        suite,
        version,
        retry: random == HELLO_RETRY_RANDOM,
    })
}

fn take<const N: usize>(r: &mut &[u8]) -> Option<[u8; N]> {
    let head: [u8; N] = r.get(..N)?.try_into().ok()?;
    *r = &r[N..];
    Some(head)
}

fn skip(r: &mut &[u8], n: usize) -> Option<()> {
    *r = r.get(n..)?;
    Some(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hello(version_ext: Option<u16>, random: [u8; 32]) -> Vec<u8> {
        let mut body = vec![3, 3];
        body.extend(random);
        body.extend([2, 0xAA, 0xBB]); // a 2-byte session id
        body.extend([0x13, 0x01, 0]);
        if let Some(v) = version_ext {
            body.extend([0, 6, 0, 43, 0, 2]);
            body.extend(v.to_be_bytes());
        }
        body
    }

    #[test]
    fn reads_random_suite_and_version() {
        let info = parse_server_hello(&hello(Some(0x0304), [9; 32])).unwrap();
        assert_eq!(
            info,
            ServerHelloInfo {
                random: [9; 32],
                suite: 0x1301,
                version: 0x0304,
                retry: false
            }
        );
        assert_eq!(
            parse_server_hello(&hello(None, [1; 32])).unwrap().version,
            0x0303
        );
        assert!(
            parse_server_hello(&hello(Some(0x0304), HELLO_RETRY_RANDOM))
                .unwrap()
                .retry
        );
    }

    #[test]
    fn every_truncation_is_an_error_not_a_panic() {
        let full = hello(Some(0x0304), [3; 32]);
        for cut in 0..full.len() {
            let _ = parse_server_hello(&full[..cut]);
        }
        assert!(parse_server_hello(&full[..10]).is_err());
    }
}
