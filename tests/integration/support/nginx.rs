//! Real TLS servers for the tests: nginx (`listen … ssl http2`, certificate made by the test) on a
//! free loopback port (retried if taken), and fcgiwrap for the CGI programs nginx fronts (`git http-backend`). Both
//! run in the foreground with every file in the test's folder, and are stopped by PID.
#![allow(dead_code)] // shared by several test files; each uses only some helpers

use std::fs;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::thread;
use std::time::{Duration, Instant};

use super::daemon::{Daemon, START_LIMIT};

/// `name` on PATH or in the sbin folders (daemons live there, and a non-root PATH may lack them);
/// a missing tool fails the test: `tests/install-deps.sh` (run by `make test`) installs it.
pub fn system_tool(name: &str) -> PathBuf {
    std::env::var_os("PATH")
        .into_iter()
        .flat_map(|paths| std::env::split_paths(&paths).collect::<Vec<_>>())
        .chain([PathBuf::from("/usr/sbin"), PathBuf::from("/sbin")])
        .map(|dir| dir.join(name))
        .find(|p| p.is_file())
        .unwrap_or_else(|| {
            panic!("{name} is required and not installed: run `bash tests/install-deps.sh` (make test does)")
        })
}

/// A running nginx serving TLS (HTTP/1.1 and h2 by ALPN) on `addr`.
pub struct Nginx {
    /// Where it listens (127.0.0.1, a free port).
    pub addr: SocketAddr,
    daemon: Daemon,
}

impl Nginx {
    /// Starts nginx in `dir` (config, logs, temp folders all there) with `cert`/`key` and the
    /// `server` block body `locations` (nginx syntax), and waits until it accepts.
    pub fn start(dir: &Path, cert: &Path, key: &Path, locations: &str) -> Nginx {
        let server = format!(
            "    ssl_certificate {};\n    ssl_certificate_key {};\n{locations}",
            cert.display(),
            key.display()
        );
        Nginx::start_server(dir, "ssl http2", &server)
    }

    /// Starts nginx speaking h2c with prior knowledge (no TLS), with the `server` block body
    /// `locations`, and waits until it accepts.
    pub fn start_h2c(dir: &Path, locations: &str) -> Nginx {
        Nginx::start_server(dir, "http2", locations)
    }

    /// Starts nginx speaking plain HTTP/1.1 (no TLS), with the `server` block body `locations`,
    /// and waits until it accepts.
    pub fn start_plain(dir: &Path, locations: &str) -> Nginx {
        Nginx::start_server(dir, "", locations)
    }

    /// Starts nginx with one `server` listening on a free port with `listen_options`.
    fn start_server(dir: &Path, listen_options: &str, server: &str) -> Nginx {
        let root = dir.join("nginx");
        fs::create_dir_all(root.join("tmp")).expect("create nginx's folder");
        let d = root.display();
        let conf = root.join("nginx.conf");
        // A fresh free port on each attempt; nginx exits if another process took it meanwhile.
        let (daemon, addr) = Daemon::start_on_free_port(&root, "nginx", |port| {
            // Single process, in the foreground: nothing to daemonize, no worker switching users.
            let config = format!(
                "daemon off;\nmaster_process off;\npid {d}/nginx.pid;\nerror_log {d}/error.log info;\n\
                 events {{ worker_connections 256; }}\n\
                 http {{\n  access_log {d}/access.log;\n  client_body_temp_path {d}/tmp/body;\n  \
                 proxy_temp_path {d}/tmp/proxy;\n  fastcgi_temp_path {d}/tmp/fastcgi;\n  \
                 uwsgi_temp_path {d}/tmp/uwsgi;\n  scgi_temp_path {d}/tmp/scgi;\n  \
                 client_max_body_size 0;\n  \
                 server {{\n    listen 127.0.0.1:{port} {listen_options};\n{server}\n  }}\n}}\n",
            );
            fs::write(&conf, config).expect("write nginx.conf");
            let mut command = Command::new(system_tool("nginx"));
            command
                .arg("-p")
                .arg(&root)
                .arg("-e")
                .arg(root.join("error.log"))
                .arg("-c")
                .arg(&conf);
            command
        });
        Nginx { addr, daemon }
    }

    /// What nginx logged for each request (`access.log`).
    pub fn access_log(&self, dir: &Path) -> String {
        fs::read_to_string(dir.join("nginx/access.log")).unwrap_or_default()
    }

    /// Stops it (SIGTERM by PID, bounded wait).
    pub fn stop(self) {
        self.daemon.stop();
    }
}

/// A running fcgiwrap: nginx's `fastcgi_pass unix:SOCKET` runs CGI programs through it.
pub struct Fcgiwrap {
    /// Its socket.
    pub socket: PathBuf,
    daemon: Daemon,
}

impl Fcgiwrap {
    /// Starts fcgiwrap on a socket in `dir` and waits until the socket exists.
    pub fn start(dir: &Path) -> Fcgiwrap {
        let socket = dir.join("fcgiwrap.sock");
        let daemon = Daemon::start(
            Command::new(system_tool("fcgiwrap"))
                .arg("-s")
                .arg(format!("unix:{}", socket.display())),
            dir,
            "fcgiwrap",
        );
        let deadline = Instant::now() + START_LIMIT;
        while !socket.exists() {
            assert!(
                Instant::now() < deadline,
                "fcgiwrap made no socket within {START_LIMIT:?}:\n{}",
                daemon.output()
            );
            thread::sleep(Duration::from_millis(10));
        }
        Fcgiwrap { socket, daemon }
    }

    /// Stops it (SIGTERM by PID, bounded wait).
    pub fn stop(self) {
        self.daemon.stop();
    }
}
