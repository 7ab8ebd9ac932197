//! TLS interception building blocks: the CA, per-name leaf certificates, ClientHello peeking,
//! both rustls configurations, upstream verification failures, the key log and `[proxy.tls]`.
//!
//! The proxy plugs these into its connection handling (see `TLS-DESIGN.md` at the repository
//! root): it peeks the ClientHello ([`client_hello`]), decides whether to intercept, opens TLS to
//! the upstream offering the client's ALPN list ([`Interceptor::connect_upstream`]), then finishes
//! the client's handshake with a leaf minted for the client's server name and the ALPN protocol
//! the upstream chose ([`Interceptor::accept_client`]). Both legs then carry plaintext, which goes
//! to the same detection and HTTP engines as a plain connection.
//!
//! Files, one concept each:
//! - [`ca_dir`]: where the CA lives; [`ca`]: creating, loading and describing it;
//!   [`trust_vars`]: the environment variables that make common clients trust it;
//!   [`ca_report`]: what `faultline ca init` and `ca show` print.
//! - [`leaf`]: minting leaf certificates; [`leaf_cache`]: keeping them for the run.
//! - [`client_hello`]: SNI and ALPN from the first bytes; [`replay`]: giving peeked bytes back.
//! - [`server_config`]: the client-facing rustls config; [`client_config`]: the upstream-facing
//!   one; [`no_verify`]: the loud verifier behind `upstream_verify = false`.
//! - [`intercept`]: the two handshakes in the order ALPN mirroring needs.
//! - [`upstream_failure`]: why an upstream handshake failed, and the `502` that says so;
//!   [`client_failure`]: why a client's handshake with faultline failed.
//! - [`keylog`]: the NSS key log of both legs; [`section`]: the `[proxy.tls]` scenario section.
//! - [`provider`]: the one crypto provider and protocol versions everything uses; [`error`].
//! - [`suite`]: the AEAD cipher suites faultline seals and opens records for; [`key_schedule`]:
//!   key-log secrets to record keys (TLS 1.3 HKDF, TLS 1.2 PRF); [`record_keys`]: sealing and
//!   opening one record (the `tls_alert` fault's alerts, `inspect`'s decryption);
//!   [`server_hello`]: the server random, suite and version a recorded session needs.

pub mod ca;
pub mod ca_dir;
pub mod ca_report;
pub mod client_config;
pub mod client_failure;
pub mod client_hello;
pub mod error;
pub mod intercept;
pub mod key_schedule;
pub mod keylog;
pub mod leaf;
pub mod leaf_cache;
pub mod no_verify;
pub mod pinned_verify;
pub mod provider;
pub mod record_keys;
pub mod replay;
#[cfg(test)]
pub(crate) mod rustls_agreement;
pub mod section;
pub mod server_config;
pub mod server_hello;
pub mod suite;
pub mod trust_vars;
pub mod upstream_failure;

pub use ca::CertificateAuthority;
pub use client_failure::{ClientFailure, ClientFailureKind};
pub use client_hello::{peek_client_hello, ClientHelloInfo, Peek};
pub use error::TlsError;
pub use intercept::Interceptor;
pub use keylog::NssKeyLog;
pub use leaf::{LeafMinter, LeafName};
pub use replay::Replay;
pub use section::{CaptureTls, TlsSection, TlsSettings, UpstreamTrust};
pub use upstream_failure::{bad_gateway_response, UpstreamFailure, UpstreamFailureKind};
