//! The integration test binary: real listeners on 127.0.0.1:0, real upstreams, real clients and
//! tshark. One binary (as ripgrep does) so the crate links once.

mod annex;
mod api;
mod capture;
mod capture_writer;
mod cli;
mod dvc;
mod h2;
mod h2_late;
mod h2c_upgrade;
mod http;
mod inspect;
mod inspect_grpc;
mod inspect_schema;
mod report;
mod s3;
mod scale;
mod store;
mod support;
mod tcp;
mod tls;
mod tls_clients;
mod tls_close;
mod tls_proxy;
