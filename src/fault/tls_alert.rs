//! The `tls_alert` fault: after an exact number of plaintext bytes of a direction, the leg those
//! bytes go to fails at the TLS record layer — a record the peer's own stack rejects
//! (`bad_record_mac`) or a real encrypted alert — and the connection ends.
//!
//! The fault is pure like every other: it only says *where* (an `End` step after `after` bytes,
//! whose mark names the alert). The pump and the connection execute it on the destination leg's
//! TLS session (see `proxy::tls_alert`), since only they hold the keys.

use serde::Deserialize;
use tokio::time::Instant;

use super::plan::{split_at_limit, EndHow, Mark, RuleId, Step};
use super::scope::Scope;
use super::StreamFault;
use crate::units::ByteSize;

/// `fault.tls_alert = { after = "1MiB", alert = "bad_record_mac" }`: what a corrupting middlebox,
/// a TLS-terminating load balancer giving up, or a server's TLS stack failing mid-stream looks
/// like to the client (or the server, for `direction = "client->upstream"`).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsAlert {
    /// Plaintext bytes relayed in the matched direction before the alert (default 0: the first
    /// record after the handshake).
    #[serde(default = "first_record")]
    pub after: ByteSize,
    /// Which alert the destination leg gets (default `bad_record_mac`).
    #[serde(default)]
    pub alert: AlertName,
}

/// `after` unless given: the first application-data record.
fn first_record() -> ByteSize {
    ByteSize(0)
}

/// The TLS alerts faultline can send (RFC 8446 §6, names as written there).
///
/// `bad_record_mac` is special: faultline corrupts the next record it writes, so the peer's own
/// record layer detects the damage and sends the alert itself, exactly as with real corruption on
/// the wire. Every other alert is sent by faultline as a real fatal alert record, encrypted with
/// the leg's current traffic key, as a failing TLS stack would send it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AlertName {
    /// A record failed to authenticate (20).
    #[default]
    BadRecordMac,
    /// A message arrived out of place (10).
    UnexpectedMessage,
    /// A record was longer than the protocol allows (22).
    RecordOverflow,
    /// No acceptable set of security parameters (40).
    HandshakeFailure,
    /// A field was out of range or inconsistent (47).
    IllegalParameter,
    /// Access denied after a valid handshake (49).
    AccessDenied,
    /// A message could not be decoded (50).
    DecodeError,
    /// A cryptographic operation failed (51).
    DecryptError,
    /// An error unrelated to the peer or the protocol (80).
    InternalError,
    /// The user cancelled the operation (90).
    UserCanceled,
}

impl AlertName {
    /// The alert's AlertDescription code (RFC 8446 §6).
    pub fn code(self) -> u8 {
        match self {
            AlertName::UnexpectedMessage => 10,
            AlertName::BadRecordMac => 20,
            AlertName::RecordOverflow => 22,
            AlertName::HandshakeFailure => 40,
            AlertName::IllegalParameter => 47,
            AlertName::AccessDenied => 49,
            AlertName::DecodeError => 50,
            AlertName::DecryptError => 51,
            AlertName::InternalError => 80,
            AlertName::UserCanceled => 90,
        }
    }

    /// The name as written in scenarios and RFC 8446.
    pub fn name(self) -> &'static str {
        match self {
            AlertName::UnexpectedMessage => "unexpected_message",
            AlertName::BadRecordMac => "bad_record_mac",
            AlertName::RecordOverflow => "record_overflow",
            AlertName::HandshakeFailure => "handshake_failure",
            AlertName::IllegalParameter => "illegal_parameter",
            AlertName::AccessDenied => "access_denied",
            AlertName::DecodeError => "decode_error",
            AlertName::DecryptError => "decrypt_error",
            AlertName::InternalError => "internal_error",
            AlertName::UserCanceled => "user_canceled",
        }
    }

    /// Whether faultline corrupts a record (the peer detects it) instead of sending the alert.
    pub fn is_corruption(self) -> bool {
        self == AlertName::BadRecordMac
    }
}

/// Relays exactly `limit` plaintext bytes of one direction, then ends the connection with the
/// TLS alert on the direction's destination leg (a FIN after it).
#[derive(Debug)]
pub struct AlertAfter {
    limit: u64,
    counted: u64,
    mark: Option<Mark>,
}

impl AlertAfter {
    /// The fault of `rule` with parameters `alert`, acting on `scope` (a whole direction).
    pub fn new(alert: &TlsAlert, rule: &RuleId, scope: &Scope) -> Self {
        let what = if alert.alert.is_corruption() {
            "corrupted the next TLS record (the peer reports bad_record_mac)".to_string()
        } else {
            format!("sent the TLS alert {}", alert.alert.name())
        };
        AlertAfter {
            limit: alert.after.0,
            counted: 0,
            mark: Some(
                Mark::rule(
                    rule,
                    format!(
                        "{what} to the {} after {} bytes {}",
                        destination_name(scope),
                        alert.after.0,
                        scope.direction
                    ),
                )
                .with_tls_alert(alert.alert),
            ),
        }
    }
}

/// Who receives a direction's bytes.
fn destination_name(scope: &Scope) -> &'static str {
    match scope.direction {
        crate::direction::Direction::ClientToUpstream => "upstream",
        crate::direction::Direction::UpstreamToClient => "client",
    }
}

impl StreamFault for AlertAfter {
    fn apply(&mut self, steps: Vec<Step>, _arrival: Instant) -> Vec<Step> {
        let Some(mark) = self.mark.take() else {
            return steps;
        };
        let (mut before, rest) = split_at_limit(steps, &mut self.counted, self.limit);
        if rest.is_some() {
            // The End's `how` is what happens where the leg has no TLS to fail (a client that
            // did not speak TLS on an intercepting listener): a plain cut.
            before.push(Step::End {
                how: EndHow::Finish,
                mark,
            });
        } else {
            self.mark = Some(mark);
        }
        before
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::direction::Direction;
    use crate::fault::plan::sent_len;

    fn parse(text: &str) -> Result<TlsAlert, toml::de::Error> {
        toml::from_str(text)
    }

    #[test]
    fn parameters_default_to_the_first_record_and_bad_record_mac() {
        let alert = parse("").unwrap();
        assert_eq!(alert.after, ByteSize(0));
        assert_eq!(alert.alert, AlertName::BadRecordMac);
        let alert = parse("after = \"1KiB\"\nalert = \"internal_error\"").unwrap();
        assert_eq!(alert.after, ByteSize(1024));
        assert_eq!(alert.alert, AlertName::InternalError);
        assert!(parse("alert = \"close_notify\"").is_err(), "not a failure");
        assert!(parse("after = \"50%\"").is_err(), "plaintext bytes only");
        assert!(parse("at = \"1s\"").is_err());
    }

    #[test]
    fn codes_and_names_follow_rfc_8446() {
        let all = [
            (AlertName::UnexpectedMessage, 10, "unexpected_message"),
            (AlertName::BadRecordMac, 20, "bad_record_mac"),
            (AlertName::RecordOverflow, 22, "record_overflow"),
            (AlertName::HandshakeFailure, 40, "handshake_failure"),
            (AlertName::IllegalParameter, 47, "illegal_parameter"),
            (AlertName::AccessDenied, 49, "access_denied"),
            (AlertName::DecodeError, 50, "decode_error"),
            (AlertName::DecryptError, 51, "decrypt_error"),
            (AlertName::InternalError, 80, "internal_error"),
            (AlertName::UserCanceled, 90, "user_canceled"),
        ];
        for (alert, code, name) in all {
            assert_eq!((alert.code(), alert.name()), (code, name));
            let parsed = parse(&format!("alert = \"{name}\"")).unwrap();
            assert_eq!(parsed.alert, alert, "the scenario name parses back");
            assert_eq!(alert.is_corruption(), code == 20);
        }
    }

    #[test]
    fn relays_exactly_the_limit_then_ends_with_the_alert_in_the_mark() {
        let now = Instant::now();
        let scope = Scope::direction(Direction::UpstreamToClient);
        let config = parse("after = 100\nalert = \"decode_error\"").unwrap();
        let mut fault = AlertAfter::new(&config, &RuleId::new(4, "r"), &scope);
        let first = fault.apply(vec![Step::send(60, now)], now);
        assert_eq!(sent_len(&first), 60);
        assert!(!first.iter().any(Step::is_terminal));
        let second = fault.apply(vec![Step::send(60, now)], now);
        assert_eq!(sent_len(&second), 40);
        match second.last() {
            Some(Step::End { how, mark }) => {
                assert_eq!(*how, EndHow::Finish);
                assert_eq!(mark.tls_alert, Some(AlertName::DecodeError));
                assert_eq!(mark.rule, Some(RuleId::new(4, "r")));
                assert_eq!(
                    mark.note,
                    "sent the TLS alert decode_error to the client after 100 bytes upstream->client"
                );
            }
            other => panic!("expected an End step, got {other:?}"),
        }
        // It acts once; later plans pass (the pump stopped reading anyway).
        assert_eq!(sent_len(&fault.apply(vec![Step::send(5, now)], now)), 5);
    }

    #[test]
    fn zero_bytes_alerts_before_the_first_byte_and_names_the_corruption() {
        let now = Instant::now();
        let scope = Scope::direction(Direction::ClientToUpstream);
        let mut fault = AlertAfter::new(&parse("").unwrap(), &RuleId::new(1, "r"), &scope);
        let plan = fault.apply(vec![Step::send(10, now)], now);
        assert_eq!(sent_len(&plan), 0);
        match plan.as_slice() {
            [Step::End { mark, .. }] => {
                assert_eq!(mark.tls_alert, Some(AlertName::BadRecordMac));
                assert!(
                    mark.note.starts_with("corrupted the next TLS record"),
                    "{}",
                    mark.note
                );
                assert!(
                    mark.note.contains("to the upstream after 0 bytes"),
                    "{}",
                    mark.note
                );
            }
            other => panic!("expected one End step, got {other:?}"),
        }
    }
}
