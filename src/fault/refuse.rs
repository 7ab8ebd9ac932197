//! The `refuse` fault: accept the connection, then reset it without connecting upstream.

use serde::Deserialize;

/// `fault.refuse = {}`: the client sees its connection reset before any byte, as with a server
/// that is up but overloaded; the upstream never hears of it.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Refuse {}
