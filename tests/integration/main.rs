//! The integration test binary: real listeners on 127.0.0.1:0, real upstreams, real clients and
//! tshark. One binary (as ripgrep does) so the crate links once.

mod annex;
mod capture;
mod capture_writer;
mod cli;
mod dvc;
mod http;
mod inspect;
mod inspect_schema;
mod s3;
mod store;
mod support;
mod tcp;
mod tls;
mod tls_proxy;
