//! The client-facing rustls configuration: a certificate resolver that mints a leaf for the name
//! the client asked for, TLS 1.3 and 1.2, the shared key log, and one ALPN protocol chosen per
//! connection (the one the upstream picked).
//!
//! rustls picks ALPN from the server config's list, so the choice is injected by giving each
//! intercepted connection its own copy of a base config (a handful of `Arc` clones) with the
//! upstream's protocol as the only entry. Session state (resumption cache, tickets) lives behind
//! `Arc`s in the base and is shared by every copy.

use std::sync::Arc;

use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls::ServerConfig;

use crate::tls::provider::{provider, VERSIONS};
use crate::tls::{LeafMinter, LeafName, NssKeyLog, TlsError};

/// Resolves the client's certificate by minting (or reusing) a leaf for its SNI name, or for
/// `fallback` when the client sent no usable SNI (an IP address, usually).
#[derive(Debug)]
pub struct MintingResolver {
    minter: Arc<LeafMinter>,
    fallback: Option<LeafName>,
}

impl MintingResolver {
    /// A resolver minting with `minter`, using `fallback` for clients without SNI.
    pub fn new(minter: Arc<LeafMinter>, fallback: Option<LeafName>) -> MintingResolver {
        MintingResolver { minter, fallback }
    }
}

impl ResolvesServerCert for MintingResolver {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        // rustls hands over SNI only when it is a valid DNS name (it drops IP literals).
        let name = match hello.server_name() {
            Some(sni) => match LeafName::parse(sni) {
                Ok(name) => name,
                Err(e) => {
                    tracing::warn!(%e, "client sent an SNI faultline cannot mint for");
                    return None;
                }
            },
            None => match &self.fallback {
                Some(name) => name.clone(),
                None => {
                    tracing::warn!(
                        "client sent no SNI and the connection has no address to mint for"
                    );
                    return None;
                }
            },
        };
        match self.minter.certified_key(&name) {
            Ok(key) => Some(key),
            Err(e) => {
                tracing::warn!(%e, "cannot mint a leaf certificate");
                None
            }
        }
    }
}

/// The client-facing config factory: one base config, one copy per connection.
#[derive(Debug, Clone)]
pub struct ClientFacing {
    base: Arc<ServerConfig>,
    minter: Arc<LeafMinter>,
}

impl ClientFacing {
    /// A factory minting with `minter` and logging keys to `keylog`.
    pub fn new(
        minter: Arc<LeafMinter>,
        keylog: Option<Arc<NssKeyLog>>,
    ) -> Result<ClientFacing, TlsError> {
        let mut base = ServerConfig::builder_with_provider(provider())
            .with_protocol_versions(VERSIONS)?
            .with_no_client_auth()
            .with_cert_resolver(Arc::new(MintingResolver::new(minter.clone(), None)));
        if let Some(keylog) = keylog {
            base.key_log = keylog;
        }
        // The `tls_alert` fault seals a real alert with the leg's traffic key, which only
        // `dangerous_extract_secrets` gives out (once, when the leg ends anyway).
        base.enable_secret_extraction = true;
        Ok(ClientFacing {
            base: Arc::new(base),
            minter,
        })
    }

    /// The config for one connection: leaves for the client's SNI, else for `fallback`; ALPN
    /// `alpn` when the upstream chose one (the client offered it, so it will be selected), none
    /// otherwise.
    pub fn for_connection(
        &self,
        fallback: Option<LeafName>,
        alpn: Option<&[u8]>,
    ) -> Arc<ServerConfig> {
        let mut config = (*self.base).clone();
        config.cert_resolver = Arc::new(MintingResolver::new(self.minter.clone(), fallback));
        config.alpn_protocols = alpn.map(|p| vec![p.to_vec()]).unwrap_or_default();
        Arc::new(config)
    }
}
