//! An API error as Toxiproxy reports it: an HTTP status and `{"error": MESSAGE, "status": CODE}`.

use std::fmt;

use serde::Serialize;

/// What went wrong with a request, and the status it answers with. The body is Toxiproxy's
/// error shape, so its clients raise the same exceptions (404 not found, 409 exists, 400 bad
/// input).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ApiError {
    /// What is wrong and, where it helps, how to fix it.
    #[serde(rename = "error")]
    pub message: String,
    /// The HTTP status code.
    pub status: u16,
}

impl ApiError {
    /// An error with `status` saying `message`.
    pub fn new(status: u16, message: impl Into<String>) -> Self {
        ApiError {
            message: message.into(),
            status,
        }
    }

    /// 400 `bad request body: WHY`, as Toxiproxy says of JSON it cannot decode.
    pub fn bad_body(why: impl fmt::Display) -> Self {
        ApiError::new(400, format!("bad request body: {why}"))
    }

    /// 400 `missing required field: FIELD`.
    pub fn missing(field: impl fmt::Display) -> Self {
        ApiError::new(400, format!("missing required field: {field}"))
    }

    /// 404 `proxy not found`.
    pub fn proxy_not_found() -> Self {
        ApiError::new(404, "proxy not found")
    }

    /// 409 `proxy already exists`.
    pub fn proxy_exists() -> Self {
        ApiError::new(409, "proxy already exists")
    }

    /// 400 for a `stream` other than upstream or downstream.
    pub fn invalid_stream() -> Self {
        ApiError::new(
            400,
            "stream was invalid, can be either upstream or downstream",
        )
    }

    /// 400 `invalid toxic type`.
    pub fn invalid_toxic_type() -> Self {
        ApiError::new(400, "invalid toxic type")
    }

    /// 409 `toxic already exists`.
    pub fn toxic_exists() -> Self {
        ApiError::new(409, "toxic already exists")
    }

    /// 404 `toxic not found`.
    pub fn toxic_not_found() -> Self {
        ApiError::new(404, "toxic not found")
    }

    /// The body Toxiproxy writes (`http.Error`: the JSON, strings escaped as Go escapes them,
    /// and a newline).
    pub fn body(&self) -> String {
        format!(
            "{{\"error\":{},\"status\":{}}}\n",
            super::toxic::json_string(&self.message),
            self.status
        )
    }
}

impl fmt::Display for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.message, self.status)
    }
}

impl std::error::Error for ApiError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_body_is_toxiproxys() {
        assert_eq!(
            ApiError::proxy_not_found().body(),
            "{\"error\":\"proxy not found\",\"status\":404}\n"
        );
        assert_eq!(
            ApiError::missing("name").body(),
            "{\"error\":\"missing required field: name\",\"status\":400}\n"
        );
        assert_eq!(
            ApiError::bad_body("invalid character '<'").body(),
            "{\"error\":\"bad request body: invalid character '\\u003c'\",\"status\":400}\n"
        );
    }
}
