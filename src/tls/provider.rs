//! The one crypto provider (ring) and the protocol versions (TLS 1.3 and 1.2) both legs use.
//!
//! ring rather than aws-lc-rs: aws-lc-rs needs cmake and a long C build, which the CI machine has
//! neither the tools nor the time for, and ring's ECDSA P-256 and AES-GCM are all interception
//! needs. Every config is built with an explicit provider, so nothing depends on a process-wide
//! default being installed.

use std::sync::Arc;

use rustls::crypto::CryptoProvider;
use rustls::SupportedProtocolVersion;

/// TLS 1.3 first, then 1.2; nothing older (rustls has no older versions anyway).
pub static VERSIONS: &[&SupportedProtocolVersion] =
    &[&rustls::version::TLS13, &rustls::version::TLS12];

/// The ring provider with rustls' default cipher suites and key exchange groups.
pub fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}
