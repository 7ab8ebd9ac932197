//! The `grpc_status` fault: answer a matched gRPC call from faultline with a trailers-only
//! response carrying a gRPC status (`UNAVAILABLE on the first attempt of each call`), and cancel
//! it upstream.

use serde::de::{self, Deserializer, Visitor};
use serde::Deserialize;

use crate::h2::grpc_status::{status_code, status_name};

/// `fault.grpc_status = { code = 14, message = "injected by faultline" }` (or `code = "UNAVAILABLE"`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GrpcStatus {
    /// gRPC status code, 1–16 (0, OK, would not be a failure), by number or name.
    pub code: GrpcCode,
    /// `grpc-message` (default: the status name and "(injected by faultline)").
    pub message: Option<String>,
}

/// A gRPC status code that is a failure (1–16).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GrpcCode(pub u32);

impl GrpcStatus {
    /// The message faultline sends.
    pub fn message_text(&self) -> String {
        self.message.clone().unwrap_or_else(|| {
            format!(
                "{} (injected by faultline)",
                status_name(self.code.0).unwrap_or("UNKNOWN")
            )
        })
    }
}

impl<'de> Deserialize<'de> for GrpcCode {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct CodeVisitor;
        fn checked<E: de::Error>(code: i64) -> Result<GrpcCode, E> {
            match code {
                1..=16 => Ok(GrpcCode(code as u32)),
                0 => Err(E::custom(
                    "gRPC status 0 (OK) is not a failure: use 1-16 (e.g. 14 = UNAVAILABLE)",
                )),
                // 17 was called "not a failure", as if it were a status that succeeds.
                _ => Err(E::custom(format!(
                    "{code} is not a gRPC status code (they are 0-16, and 0 is OK): use 1-16 (e.g. 14 = UNAVAILABLE)"
                ))),
            }
        }
        impl Visitor<'_> for CodeVisitor {
            type Value = GrpcCode;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a gRPC status code (1-16) or its name, like 14 or \"UNAVAILABLE\"")
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<GrpcCode, E> {
                checked(v)
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<GrpcCode, E> {
                checked(i64::try_from(v).unwrap_or(i64::MAX))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<GrpcCode, E> {
                // `unavailable` and `Unavailable` mean UNAVAILABLE, as grpcio spells it.
                let code = status_code(&v.to_ascii_uppercase()).ok_or_else(|| {
                    // The failure names (1-16), so the user can pick one without the spec.
                    let names: Vec<&str> = (1..=16).filter_map(status_name).collect();
                    E::custom(format!(
                        "unknown gRPC status name {v:?}: expected one of {} (or 1-16)",
                        names.join(", ")
                    ))
                })?;
                checked(i64::from(code))
            }
        }
        d.deserialize_any(CodeVisitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_unknown_name_lists_the_names() {
        let e = toml::from_str::<GrpcStatus>("code = \"UNAVAILABLEE\"")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("\"UNAVAILABLEE\"")
                && e.contains("CANCELLED, UNKNOWN,")
                && e.contains("UNAVAILABLE, DATA_LOSS, UNAUTHENTICATED"),
            "{e}"
        );
        assert!(!e.contains("OK,"), "{e}");
    }

    #[test]
    fn codes_by_number_or_name_and_only_failures() {
        let g: GrpcStatus = toml::from_str("code = 14").expect("valid");
        let lower: GrpcStatus = toml::from_str("code = \"unavailable\"").expect("any case");
        assert_eq!(lower.code, g.code);
        assert_eq!(g.code, GrpcCode(14));
        assert!(g.message_text().starts_with("UNAVAILABLE"));
        let g: GrpcStatus = toml::from_str("code = \"NOT_FOUND\"\nmessage = \"x\"").expect("valid");
        assert_eq!((g.code, g.message_text().as_str()), (GrpcCode(5), "x"));
        let ok = toml::from_str::<GrpcStatus>("code = 0").expect_err("OK");
        assert!(ok.to_string().contains("0 (OK) is not a failure"), "{ok}");
        // 17 is no status at all (a trial was told it "is not a failure").
        for bad in ["17", "-1", "99"] {
            let e = toml::from_str::<GrpcStatus>(&format!("code = {bad}"))
                .expect_err(bad)
                .to_string();
            assert!(
                e.contains(&format!("{bad} is not a gRPC status code (they are 0-16"))
                    && !e.contains("not a failure"),
                "{e}"
            );
        }
    }
}
