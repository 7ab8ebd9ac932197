//! The `drop_response` fault: forward an HTTP request, let the upstream process it, then reset the
//! client leg before any byte of the response.

use serde::Deserialize;

/// `fault.drop_response = {}`: the "did my write commit?" case. The upstream stored the upload,
/// the client saw a reset and must find out (or retry safely).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DropResponse {}
