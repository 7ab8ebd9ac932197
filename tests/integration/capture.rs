//! Captures of real proxied traffic, checked by tshark.
