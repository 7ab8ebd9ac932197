//! Upstreams faultline starts by itself on ephemeral loopback ports, so a scenario (and the demo)
//! runs with nothing else installed.

pub mod echo;
