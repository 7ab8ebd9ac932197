//! TLS interception cost: bulk throughput and handshake latency through interception, against a
//! direct TLS connection to the same upstream, in two forms.
//!
//! - **faultline run** (the `make bench` row, issue 11): the real binary (`FAULTLINE_BIN`, else
//!   the one cargo built for this bench) with `[proxy.tls] intercept = true` in front of a rustls
//!   upstream, its own process and runtime, no capture, no rules: the pump relaying plaintext
//!   between the two TLS legs.
//! - **building blocks**: the interception sequence of `faultline::tls` (peek the ClientHello,
//!   TLS to the upstream with the client's ALPN, client handshake with a cached minted leaf,
//!   `copy_bidirectional`) run in this process, on the bench's own 2-thread runtime: the crypto
//!   and relaying cost without the proxy's pump.
//!
//! Client and upstream are rustls in this process (one 2-thread runtime), TLS 1.3.
//! - **bulk**: one connection sends `BENCH_TLS_MIB` MiB (default 256) in 64 KiB writes; the
//!   upstream discards them and answers one byte; MB/s = payload / time to that byte. Done in
//!   `BENCH_TLS_ROUNDS` rounds (default 5), every path once per round; the table shows medians,
//!   the ratio is the median of the per-round ratios to direct TLS (robust to load drifts).
//! - **handshake**: `BENCH_TLS_HANDSHAKES` (default 300) new connections per path, each a full
//!   TLS 1.3 handshake (no resumption) completed and one byte echoed; p50 and p99. The paths
//!   alternate connection by connection, so load drifts hit them alike. The leaf is minted once
//!   (a warm-up connection) and cached from then on.
//!
//! Run: `cargo bench --bench tls` (`make bench` runs it with the release binary).

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
    let rounds: usize = env_number("BENCH_TLS_ROUNDS", 5).max(1);
    let handshakes: usize = env_number("BENCH_TLS_HANDSHAKES", 300);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        let tmp = std::env::temp_dir().join(format!("faultline-bench-tls-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&tmp);
        std::fs::create_dir_all(&tmp)?;
        let result = bench(&tmp, mib, rounds, handshakes).await;
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

async fn bench(
    tmp: &std::path::Path,
    mib: usize,
    rounds: usize,
    handshakes: usize,
) -> Result<(), Error> {
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
    let blocks = intercepting_proxy(interceptor, upstream).await?;
    let mut real = RealProxy::start(tmp, &ca_dir, upstream)?;

    let direct_client = client_config(up_ca.der().clone())?;
    let proxied_client = client_config(faultline_ca)?;
    // (label, address, client config)
    let paths = [
        ("direct TLS", upstream, &direct_client),
        ("faultline run (intercepting)", real.addr, &proxied_client),
        ("building blocks (in process)", blocks, &proxied_client),
    ];

    // Warm up: mint the leaf (cached from then on) and fill the allocators.
    for (_, addr, config) in &paths {
        handshake(*addr, config).await?;
    }

    // Bulk in rounds, the paths one after the other within each round, so the machine's load
    // drifts hit all of them; each path's ratio is the median of its per-round ratios.
    let bytes = mib * 1024 * 1024;
    let mut per_round: Vec<Vec<f64>> = vec![Vec::new(); paths.len()];
    for _ in 0..rounds {
        for (i, (_, addr, config)) in paths.iter().enumerate() {
            per_round[i].push(bulk(*addr, config, bytes).await?);
        }
    }
    let median = |mut v: Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    let rates: Vec<f64> = per_round.iter().map(|r| median(r.clone())).collect();
    let ratios: Vec<f64> = per_round
        .iter()
        .map(|r| median(r.iter().zip(&per_round[0]).map(|(p, d)| p / d).collect()))
        .collect();
    let mut times: Vec<Vec<Duration>> = vec![Vec::new(); paths.len()];
    for _ in 0..handshakes {
        for (i, (_, addr, config)) in paths.iter().enumerate() {
            times[i].push(handshake(*addr, config).await?);
        }
    }
    real.stop();
    for t in &mut times {
        t.sort();
    }
    let pct =
        |v: &[Duration], p: f64| v[((v.len() - 1) as f64 * p).round() as usize].as_secs_f64() * 1e3;
    println!("| path | MB/s | ratio | handshake p50 ms | p99 ms | added p50 ms |");
    println!("|---|---:|---:|---:|---:|---:|");
    for (i, (label, _, _)) in paths.iter().enumerate() {
        println!(
            "| {label} | {:.1} | {:.3} | {:.3} | {:.3} | {:.3} |",
            rates[i],
            ratios[i],
            pct(&times[i], 0.5),
            pct(&times[i], 0.99),
            pct(&times[i], 0.5) - pct(&times[0], 0.5)
        );
    }
    println!(
        "RESULT tls faultline_bulk_ratio={:.3} faultline_handshake_added_p50_ms={:.3} blocks_bulk_ratio={:.3} blocks_handshake_added_p50_ms={:.3}",
        ratios[1],
        pct(&times[1], 0.5) - pct(&times[0], 0.5),
        ratios[2],
        pct(&times[2], 0.5) - pct(&times[0], 0.5)
    );
    Ok(())
}

/// `faultline run` intercepting in front of the upstream: a child process, stopped by PID.
struct RealProxy {
    child: std::process::Child,
    addr: SocketAddr,
}

impl RealProxy {
    fn start(
        tmp: &std::path::Path,
        ca_dir: &CaDir,
        upstream: SocketAddr,
    ) -> Result<RealProxy, Error> {
        let bin = std::env::var("FAULTLINE_BIN")
            .unwrap_or_else(|_| env!("CARGO_BIN_EXE_faultline").to_string());
        let scenario = tmp.join("bench-tls.toml");
        std::fs::write(
            &scenario,
            format!(
                "name = \"bench-tls\"\n[proxy.tls]\nintercept = true\nupstream_ca = {:?}\nca_dir = {:?}\n",
                tmp.join("upstream-ca.pem").display().to_string(),
                ca_dir.dir().display().to_string()
            ),
        )?;
        let log = tmp.join("faultline.stderr");
        let mut child = std::process::Command::new(&bin)
            .arg("run")
            .arg(&scenario)
            .args(["--listen", "127.0.0.1:0", "--upstream"])
            .arg(upstream.to_string())
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::fs::File::create(&log)?)
            .spawn()
            .map_err(|e| format!("cannot start {bin}: {e}"))?;
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let text = std::fs::read_to_string(&log).unwrap_or_default();
            if let Some((_, rest)) = text.split_once("listening on ") {
                let addr = rest.split([',', ' ', '\n']).next().unwrap_or_default();
                return Ok(RealProxy {
                    child,
                    addr: addr.parse()?,
                });
            }
            if child.try_wait()?.is_some() || Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!("faultline run did not start:\n{text}").into());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn stop(&mut self) {
        // SIGKILL by PID is enough for a bench: nothing of it is read afterwards.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for RealProxy {
    fn drop(&mut self) {
        self.stop();
    }
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
