//! TLS interception cost, measured on the building blocks before the proxy wires them in: bulk
//! throughput and handshake latency through the interception sequence (peek the ClientHello, TLS
//! to the upstream with the client's ALPN, client handshake with a cached minted leaf, relay),
//! against a direct TLS connection to the same upstream.
//!
//! Everything runs in one process on loopback: a rustls client, the interception loop (the
//! `faultline::tls` parts and `copy_bidirectional`, as the proxy will use them) and a rustls
//! upstream, on one tokio runtime with 2 worker threads. So the numbers are the crypto and
//! relaying cost of interception, not the proxy's pump; `make bench` gets the real row once
//! the proxy intercepts.
//! - **bulk**: one connection sends `BENCH_TLS_MIB` MiB (default 256) in 64 KiB writes; the
//!   upstream discards them and answers one byte; MB/s = payload / time to that byte.
//! - **handshake**: `BENCH_TLS_HANDSHAKES` (default 300) new connections, each a full TLS 1.3
//!   handshake (no resumption) completed and one byte echoed; p50 and p99.
//!
//! Run: `cargo bench --bench tls`.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use faultline::tls::ca_dir::CaDir;
use faultline::tls::intercept::{fallback_name, upstream_server_name};
use faultline::tls::provider::{provider, VERSIONS};
use faultline::tls::{
    peek_client_hello, CertificateAuthority, Interceptor, LeafMinter, LeafName, NssKeyLog, Peek,
    Replay, TlsSettings, UpstreamTrust,
};
use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};
use rustls::client::Resumption;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::{ClientConfig, RootCertStore, ServerConfig};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::time::timeout;

const CHUNK: usize = 64 * 1024;
const NAME: &str = "bench.faultline.test";
/// Any single operation taking longer than this fails the run instead of hanging it.
const LIMIT: Duration = Duration::from_secs(60);

type Error = Box<dyn std::error::Error + Send + Sync>;

fn main() -> Result<(), Error> {
    let mib: usize = env_number("BENCH_TLS_MIB", 256);
    let handshakes: usize = env_number("BENCH_TLS_HANDSHAKES", 300);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        let tmp = std::env::temp_dir().join(format!("faultline-bench-tls-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&tmp);
        std::fs::create_dir_all(&tmp)?;
        let result = bench(&tmp, mib, handshakes).await;
        let _ = std::fs::remove_dir_all(&tmp);
        result
    })
}

fn env_number(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

async fn bench(tmp: &std::path::Path, mib: usize, handshakes: usize) -> Result<(), Error> {
    // The upstream's own CA and certificate, trusted by faultline (upstream_ca) and by the client
    // of the direct path.
    let up_key = KeyPair::generate()?;
    let mut up_params = CertificateParams::new(Vec::<String>::new())?;
    up_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let up_ca = up_params.self_signed(&up_key)?;
    let up_issuer = Issuer::new(up_params, up_key);
    let up_ca_path = tmp.join("upstream-ca.pem");
    std::fs::write(&up_ca_path, up_ca.pem())?;
    let leaf_key = KeyPair::generate()?;
    let leaf = CertificateParams::new(vec![NAME.to_string()])?.signed_by(&leaf_key, &up_issuer)?;
    let upstream = upstream(
        vec![leaf.der().clone()],
        PrivateKeyDer::try_from(leaf_key.serialize_der())?,
    )
    .await?;

    let ca_dir = CaDir::new(tmp.join("ca"));
    let (ca, _) = CertificateAuthority::init(&ca_dir, time::OffsetDateTime::now_utc())?;
    let faultline_ca = ca.certificate().der.clone();
    let settings = TlsSettings {
        intercept: true,
        upstream_trust: UpstreamTrust::File(up_ca_path),
        ..TlsSettings::default()
    };
    let interceptor = Interceptor::new(
        LeafMinter::new(ca, &provider())?,
        &settings,
        Arc::new(NssKeyLog::open(None, false)?),
    )?;
    let proxy = intercepting_proxy(interceptor, upstream).await?;

    let direct_client = client_config(up_ca.der().clone())?;
    let proxied_client = client_config(faultline_ca)?;

    // Warm up: mint the leaf (cached from then on) and fill the allocators.
    handshake(proxy, &proxied_client).await?;
    handshake(upstream, &direct_client).await?;

    let bytes = mib * 1024 * 1024;
    let direct_bulk = bulk(upstream, &direct_client, bytes).await?;
    let proxied_bulk = bulk(proxy, &proxied_client, bytes).await?;
    let mut direct_hs = Vec::new();
    let mut proxied_hs = Vec::new();
    for _ in 0..handshakes {
        direct_hs.push(handshake(upstream, &direct_client).await?);
        proxied_hs.push(handshake(proxy, &proxied_client).await?);
    }
    direct_hs.sort();
    proxied_hs.sort();
    let pct =
        |v: &[Duration], p: f64| v[((v.len() - 1) as f64 * p).round() as usize].as_secs_f64() * 1e3;
    println!("| path | MB/s | ratio | handshake p50 ms | p99 ms | added p50 ms |");
    println!("|---|---:|---:|---:|---:|---:|");
    println!(
        "| direct TLS | {direct_bulk:.1} | 1.000 | {:.3} | {:.3} | 0 |",
        pct(&direct_hs, 0.5),
        pct(&direct_hs, 0.99)
    );
    println!(
        "| intercepted | {proxied_bulk:.1} | {:.3} | {:.3} | {:.3} | {:.3} |",
        proxied_bulk / direct_bulk,
        pct(&proxied_hs, 0.5),
        pct(&proxied_hs, 0.99),
        pct(&proxied_hs, 0.5) - pct(&direct_hs, 0.5)
    );
    println!(
        "RESULT tls bulk_ratio={:.3} handshake_added_p50_ms={:.3}",
        proxied_bulk / direct_bulk,
        pct(&proxied_hs, 0.5) - pct(&direct_hs, 0.5)
    );
    Ok(())
}

fn client_config(root: CertificateDer<'static>) -> Result<Arc<ClientConfig>, Error> {
    let mut roots = RootCertStore::empty();
    roots.add(root)?;
    let mut config = ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(VERSIONS)?
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.resumption = Resumption::disabled();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// A TLS upstream: `B` + u64 length → reads and discards that many bytes, answers one byte;
/// `E` → echoes one byte.
async fn upstream(
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
) -> Result<SocketAddr, Error> {
    let mut config = ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(VERSIONS)?
        .with_no_client_auth()
        .with_single_cert(chain, key)?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let _ = tcp.set_nodelay(true);
                let Ok(mut tls) = acceptor.accept(tcp).await else {
                    return;
                };
                let mut mode = [0u8; 1];
                if tls.read_exact(&mut mode).await.is_err() {
                    return;
                }
                if mode[0] == b'B' {
                    let mut len = [0u8; 8];
                    if tls.read_exact(&mut len).await.is_err() {
                        return;
                    }
                    let mut left = u64::from_be_bytes(len);
                    let mut buf = vec![0u8; CHUNK];
                    while left > 0 {
                        match tls.read(&mut buf).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => left = left.saturating_sub(n as u64),
                        }
                    }
                }
                let _ = tls.write_all(b"!").await;
                let _ = tls.flush().await;
                let _ = tls.shutdown().await;
            });
        }
    });
    Ok(addr)
}

/// The interception sequence (as in tests/integration/tls.rs) in front of `upstream`.
async fn intercepting_proxy(
    interceptor: Interceptor,
    upstream: SocketAddr,
) -> Result<SocketAddr, Error> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move {
        while let Ok((mut client, _)) = listener.accept().await {
            let interceptor = interceptor.clone();
            tokio::spawn(async move {
                let _ = client.set_nodelay(true);
                let mut peeked = Vec::new();
                let mut buf = [0u8; 4096];
                let hello = loop {
                    let Ok(n) = client.read(&mut buf).await else {
                        return;
                    };
                    if n == 0 {
                        return;
                    }
                    peeked.extend_from_slice(&buf[..n]);
                    match peek_client_hello(&peeked) {
                        Peek::NeedMore => continue,
                        Peek::Tls(hello) => break hello,
                        _ => return,
                    }
                };
                let Some(name) =
                    upstream_server_name(&upstream.ip().to_string(), hello.server_name.as_deref())
                else {
                    return;
                };
                let Ok(tcp) = TcpStream::connect(upstream).await else {
                    return;
                };
                let _ = tcp.set_nodelay(true);
                let Ok(mut up) = interceptor.connect_upstream(tcp, name, &hello.alpn).await else {
                    return;
                };
                let chosen = up.get_ref().1.alpn_protocol().map(<[u8]>::to_vec);
                let local = match client.local_addr() {
                    Ok(a) => LeafName::Ip(a.ip()),
                    Err(_) => return,
                };
                let Ok(mut down) = interceptor
                    .accept_client(
                        Replay::new(peeked, client),
                        fallback_name(&hello, local),
                        chosen.as_deref(),
                    )
                    .await
                else {
                    return;
                };
                let _ = tokio::io::copy_bidirectional_with_sizes(&mut down, &mut up, CHUNK, CHUNK)
                    .await;
            });
        }
    });
    Ok(addr)
}

async fn connect(
    addr: SocketAddr,
    config: &Arc<ClientConfig>,
) -> Result<tokio_rustls::client::TlsStream<TcpStream>, Error> {
    let tcp = TcpStream::connect(addr).await?;
    tcp.set_nodelay(true)?;
    let tls = tokio_rustls::TlsConnector::from(config.clone())
        .connect(ServerName::try_from(NAME)?, tcp)
        .await?;
    Ok(tls)
}

/// New connection, full handshake, one byte there and back.
async fn handshake(addr: SocketAddr, config: &Arc<ClientConfig>) -> Result<Duration, Error> {
    timeout(LIMIT, async {
        let start = Instant::now();
        let mut tls = connect(addr, config).await?;
        tls.write_all(b"E").await?;
        let mut reply = [0u8; 1];
        tls.read_exact(&mut reply).await?;
        Ok(start.elapsed())
    })
    .await?
}

/// MB/s of `bytes` sent over one connection.
async fn bulk(addr: SocketAddr, config: &Arc<ClientConfig>, bytes: usize) -> Result<f64, Error> {
    timeout(LIMIT, async {
        let mut tls = connect(addr, config).await?;
        let chunk = vec![0x5au8; CHUNK];
        let start = Instant::now();
        tls.write_all(b"B").await?;
        tls.write_all(&(bytes as u64).to_be_bytes()).await?;
        let mut left = bytes;
        while left > 0 {
            let n = left.min(CHUNK);
            tls.write_all(&chunk[..n]).await?;
            left -= n;
        }
        tls.flush().await?;
        let mut reply = [0u8; 1];
        tls.read_exact(&mut reply).await?;
        Ok(bytes as f64 / start.elapsed().as_secs_f64() / 1e6)
    })
    .await?
}
