//! Decrypts a TLS flow of a raw capture (`capture_tls = "raw"`) with the keys the capture embeds,
//! so the HTTP inside is checked like any plaintext flow: a [`StreamConsumer`] in front of the
//! flow's HTTP consumer, which cuts each direction into TLS records, reads the hellos (client
//! random; server random, suite, version), derives each direction's keys (TLS 1.3: handshake,
//! then application secrets, KeyUpdates followed; TLS 1.2: the key block from the master secret)
//! and hands the application data on with offsets in plaintext bytes.
//!
//! A flow whose first client bytes are not a TLS handshake passes through untouched. A record
//! that does not authenticate, missing keys and suites faultline cannot decrypt (CBC, …) are
//! reported as warnings naming the flow, leg, direction and offset: a damaged or undecryptable
//! record is its own finding, never evidence about the content, so no verdict changes by it.

use super::http::Direction;
use super::leg;
use super::reassembly::{FlowInfo, StreamConsumer};
use super::tls_keys::TlsKeys;
use crate::tls::key_schedule::{tls12_keys, tls13_keys, tls13_next_secret};
use crate::tls::record_keys::{content_type, RecordKeys};
use crate::tls::server_hello::{parse_server_hello, ServerHelloInfo, SERVER_HELLO};
use crate::tls::suite::{Suite, TlsVersion};

/// Handshake message types read here.
const CLIENT_HELLO: u8 = 1;
const FINISHED: u8 = 20;
const KEY_UPDATE: u8 = 24;
/// The largest record payload TLS allows (2^14 + 2048 for ciphertext expansion).
const MAX_RECORD: usize = (1 << 14) + 2048;
/// The largest handshake message reassembled (certificate chains stay far below).
const MAX_HANDSHAKE: usize = 256 * 1024;
/// Warnings kept per flow (a damaged capture could otherwise produce one per record).
const MAX_WARNINGS: usize = 20;

/// A flow's TLS layer over its HTTP consumer `C`.
#[derive(Debug)]
pub(crate) struct TlsLayer<C> {
    inner: C,
    keys: TlsKeys,
    state: State,
    /// "flow 3 (client leg)", for warnings.
    label: String,
    warnings: Vec<String>,
    /// Inside a CONNECT tunnel: in a capture that holds no key at all, TLS passed through
    /// faultline uninspected (no `intercept`), so its records stay opaque without a warning.
    quiet_without_keys: bool,
}

#[derive(Debug)]
enum State {
    /// No client byte seen yet.
    Undecided,
    /// Not TLS: everything passes through.
    Plain,
    /// A TLS session.
    Tls(Box<Session>),
}

#[derive(Debug, Default)]
struct Session {
    client_random: Option<[u8; 32]>,
    server: Option<ServerHelloInfo>,
    suite: Option<Suite>,
    /// Per direction (client->upstream, upstream->client).
    dirs: [DirState; 2],
    /// Why nothing more is decrypted in either direction (said once).
    dead: Option<String>,
}

/// Record starts kept per direction for placing comments (a comment names a packet just read).
const RECORD_STARTS_KEPT: usize = 256;

#[derive(Debug, Default)]
struct DirState {
    /// Bytes of the direction not yet cut into records.
    buf: Vec<u8>,
    /// Stream offset of `buf[0]`.
    offset: u64,
    /// Plaintext bytes handed on so far.
    plain: u64,
    /// The latest records' stream offsets and the plaintext offset each began at (bounded):
    /// where a comment on a ciphertext packet lands in the plaintext.
    starts: std::collections::VecDeque<(u64, u64)>,
    /// Record keys once the direction is encrypted.
    keys: Option<RecordKeys>,
    /// TLS 1.3: the traffic secret `keys` come from (for KeyUpdate).
    secret: Vec<u8>,
    /// Whether `keys` are the application keys (TLS 1.3; TLS 1.2 has one set).
    application: bool,
    seq: u64,
    /// Handshake bytes not yet making a whole message.
    handshake: Vec<u8>,
    /// Why this direction is no longer decrypted.
    stopped: bool,
    /// Stream offset of the packet a rule's "corrupted the next TLS record" comment named.
    corrupt_mark: Option<u64>,
    /// A record that did not decrypt, held back until it is known whether a rule corrupted it
    /// (its comment may come before or after it, as the record spans one packet or many).
    undecryptable: Option<Undecryptable>,
    /// The FIN (`false`) or RST (`true`) that came while `undecryptable` waited, at its
    /// plaintext offset and time: handed on after the record is settled (a rule's comment rides
    /// on the FIN that follows the record it corrupted).
    held_end: Option<(bool, u64, u64)>,
}

/// A record that did not open, not yet said to be a fault or a gap.
#[derive(Debug)]
struct Undecryptable {
    /// Its sequence number in the direction.
    record: u64,
    /// Its stream offset.
    at: u64,
    /// Its end in the stream: a comment on a packet that starts before it, or right at its end
    /// (faultline notes the corruption on the FIN that follows it), may mark it (the packet may
    /// carry records before it; the direction stops at its first failure, so the rule's one
    /// corruption on it is this record).
    end: u64,
    /// The plaintext offset it would have had, and its payload length.
    plain_at: u64,
    len: u64,
    /// Why it did not open.
    why: String,
}

/// Whether a capture comment is a rule's note that it corrupted a TLS record on purpose (the
/// `tls_alert` fault with `bad_record_mac`, see `fault::tls_alert`).
fn corrupted_a_record(comment: &str) -> bool {
    super::text::is_rule_fault(comment) && comment.contains("corrupted the next TLS record")
}

impl<C: StreamConsumer> TlsLayer<C> {
    /// The layer of flow `info`, looking keys up in `keys`.
    pub(crate) fn new(inner: C, keys: TlsKeys, info: &FlowInfo) -> TlsLayer<C> {
        let leg = leg::name(leg::of_interface(info.interface.as_deref()));
        TlsLayer {
            inner,
            keys,
            state: State::Undecided,
            label: format!("flow {} ({leg} leg)", info.id),
            warnings: Vec::new(),
            quiet_without_keys: false,
        }
    }

    /// The layer of the connection inside flow `info`'s CONNECT tunnel: the same decryption,
    /// from the tunnel's first byte; a capture without any key leaves the tunnel opaque, silently.
    pub(crate) fn in_tunnel(inner: C, keys: TlsKeys, info: &FlowInfo) -> TlsLayer<C> {
        let mut layer = TlsLayer::new(inner, keys, info);
        let leg = leg::name(leg::of_interface(info.interface.as_deref()));
        layer.label = format!("flow {} ({leg} leg, inside its CONNECT tunnel)", info.id);
        layer.quiet_without_keys = true;
        layer
    }

    /// The consumer behind the layer.
    pub(crate) fn inner_mut(&mut self) -> &mut C {
        &mut self.inner
    }

    /// True when the flow was TLS (its consumer saw plaintext offsets).
    pub(crate) fn decrypted(&self) -> bool {
        matches!(self.state, State::Tls(_))
    }

    /// True when the flow was TLS whose records could not be decrypted from the handshake on
    /// (no keys, or a handshake it could not follow): nothing in it was checked. A CONNECT
    /// tunnel of a capture without any key is opaque by design, not counted.
    pub(crate) fn undecrypted(&self) -> bool {
        let opaque_by_design = self.quiet_without_keys && self.keys.is_empty();
        matches!(&self.state, State::Tls(session) if session.dead.is_some()) && !opaque_by_design
    }

    /// The HTTP consumer and what went wrong decrypting, for the report.
    pub(crate) fn finish(mut self) -> (C, Vec<String>) {
        for dir in [Direction::ClientToUpstream, Direction::UpstreamToClient] {
            self.undecryptable_is_a_gap(dir);
        }
        (self.inner, self.warnings)
    }

    fn warn(&mut self, text: String) {
        if self.quiet_without_keys && self.keys.is_empty() {
            return;
        }
        if self.warnings.len() < MAX_WARNINGS {
            self.warnings.push(format!("TLS {}: {text}", self.label));
        }
    }

    /// The held-back undecryptable record of `dir` is the one a rule corrupted: the fault, not
    /// bytes the capture missed, so no gap goes on (the peer stopped there, as the capture shows).
    fn corrupted_on_purpose(&mut self, dir: Direction) {
        let State::Tls(session) = &mut self.state else {
            return;
        };
        if let Some(u) = session.dirs[dir.index()].undecryptable.take() {
            self.warn(format!(
                "undecryptable record #{} at offset {} of the {dir} stream: the record a rule corrupted on purpose (tls_alert bad_record_mac), as its peer found; the fault, not bytes the capture missed; the rest of this direction is not decrypted",
                u.record, u.at
            ));
        }
    }

    /// A held-back undecryptable record of `dir` no rule claimed: keys missing or the record
    /// damaged, so what follows is unknown (a gap). Then the end held behind it.
    fn undecryptable_is_a_gap(&mut self, dir: Direction) {
        let State::Tls(session) = &mut self.state else {
            return;
        };
        if let Some(u) = session.dirs[dir.index()].undecryptable.take() {
            self.warn(format!(
                "undecryptable record #{} at offset {} of the {dir} stream ({}): keys missing or the record damaged; the rest of this direction is not decrypted",
                u.record, u.at, u.why
            ));
            self.inner.gap(dir, u.plain_at, u.len);
        }
        self.release_end(dir);
    }

    /// Hands on the FIN or RST held while an undecryptable record of `dir` waited.
    fn release_end(&mut self, dir: Direction) {
        let State::Tls(session) = &mut self.state else {
            return;
        };
        match session.dirs[dir.index()].held_end.take() {
            Some((false, at, ts)) => self.inner.fin(dir, at, ts),
            Some((true, at, ts)) => self.inner.reset(dir, at, ts),
            None => {}
        }
    }

    /// Holds a FIN (`reset` false) or RST of `dir` while an undecryptable record waits; true
    /// when held.
    fn hold_end(&mut self, dir: Direction, reset: bool, ts: u64) -> bool {
        let State::Tls(session) = &mut self.state else {
            return false;
        };
        let state = &mut session.dirs[dir.index()];
        if state.undecryptable.is_none() || state.held_end.is_some() {
            return false;
        }
        state.held_end = Some((reset, state.plain, ts));
        true
    }

    /// Plaintext offset of `dir` for events that come with a ciphertext offset.
    fn plain_offset(&self, dir: Direction, offset: u64) -> u64 {
        match &self.state {
            State::Tls(session) => session.dirs[dir.index()].plain,
            _ => offset,
        }
    }

    fn feed(&mut self, dir: Direction, offset: u64, bytes: &[u8], ts: u64) {
        let State::Tls(session) = &mut self.state else {
            return;
        };
        let d = dir.index();
        {
            let state = &mut session.dirs[d];
            if state.stopped || session.dead.is_some() {
                return;
            }
            if state.offset + state.buf.len() as u64 != offset {
                // Reassembly reports holes with `gap`; an offset jump here means the same.
                state.stopped = true;
                return;
            }
            state.buf.extend_from_slice(bytes);
        }
        loop {
            let State::Tls(session) = &mut self.state else {
                return;
            };
            let state = &mut session.dirs[d];
            if state.stopped || session.dead.is_some() || state.buf.len() < 5 {
                return;
            }
            let header: [u8; 5] = [
                state.buf[0],
                state.buf[1],
                state.buf[2],
                state.buf[3],
                state.buf[4],
            ];
            let len = usize::from(u16::from_be_bytes([header[3], header[4]]));
            if !(20..=24).contains(&header[0]) || header[1] != 3 || len > MAX_RECORD {
                let at = state.offset;
                state.stopped = true;
                self.warn(format!(
                    "{dir} stream at offset {at} is not a TLS record (type {}, length {len}); the rest of this direction is not decrypted",
                    header[0]
                ));
                return;
            }
            if state.buf.len() < 5 + len {
                return;
            }
            let payload: Vec<u8> = state.buf[5..5 + len].to_vec();
            let at = state.offset;
            state.buf.drain(..5 + len);
            state.offset += (5 + len) as u64;
            if state.starts.len() == RECORD_STARTS_KEPT {
                state.starts.pop_front();
            }
            state.starts.push_back((at, state.plain));
            self.record(dir, at, header, &payload, ts);
        }
    }

    /// One whole record of `dir`, starting at stream offset `at`.
    fn record(&mut self, dir: Direction, at: u64, header: [u8; 5], payload: &[u8], ts: u64) {
        let State::Tls(session) = &mut self.state else {
            return;
        };
        let d = dir.index();
        let kind = header[0];
        if session.dirs[d].keys.is_none() {
            match kind {
                content_type::HANDSHAKE => {
                    if let Err(why) = session.handshake_plain(dir, payload) {
                        session.dead = Some(why.clone());
                        self.warn(why);
                    }
                    return;
                }
                content_type::CHANGE_CIPHER_SPEC => {
                    // TLS 1.2: this direction is encrypted from the next record on.
                    if session.version() == Some(TlsVersion::Tls12) {
                        if let Err(why) = session.start_tls12(dir, &self.keys) {
                            session.dead = Some(why.clone());
                            self.warn(why);
                        }
                    }
                    return;
                }
                content_type::ALERT => {
                    let text = alert_text(payload);
                    self.warn(format!(
                        "{dir} sent the alert {text} in the clear at offset {at}"
                    ));
                    return;
                }
                content_type::APPLICATION_DATA if session.version() == Some(TlsVersion::Tls13) => {
                    // TLS 1.3: the first encrypted record, under the handshake secret.
                    if let Err(why) = session.start_tls13(dir, &self.keys) {
                        session.dead = Some(why.clone());
                        self.warn(why);
                        return;
                    }
                }
                _ => {
                    let why = format!(
                        "{dir} sent a type {kind} record at offset {at} before the handshake said how it is protected; not decrypted"
                    );
                    session.dead = Some(why.clone());
                    self.warn(why);
                    return;
                }
            }
        }
        let State::Tls(session) = &mut self.state else {
            return;
        };
        let state = &mut session.dirs[d];
        let Some(keys) = &state.keys else {
            return;
        };
        let opened = keys.open(state.seq, header, payload);
        let (inner_type, plain) = match opened {
            Ok(opened) => opened,
            Err(why) => {
                state.stopped = true;
                let end = at + 5 + payload.len() as u64;
                state.undecryptable = Some(Undecryptable {
                    record: state.seq,
                    at,
                    end,
                    plain_at: state.plain,
                    len: payload.len() as u64,
                    why: why.to_string(),
                });
                if state.corrupt_mark.is_some_and(|m| m <= end) {
                    self.corrupted_on_purpose(dir);
                }
                return;
            }
        };
        state.seq += 1;
        match inner_type {
            content_type::APPLICATION_DATA => {
                let plain_at = state.plain;
                state.plain += plain.len() as u64;
                self.inner.data(dir, plain_at, &plain, ts);
            }
            content_type::HANDSHAKE => {
                if let Err(why) = session.handshake_encrypted(dir, &plain, &self.keys) {
                    session.dirs[d].stopped = true;
                    self.warn(why);
                }
            }
            // A close_notify is the normal end; any other alert is worth a line.
            content_type::ALERT if plain.get(1) != Some(&0) => {
                let text = alert_text(&plain);
                self.warn(format!("{dir} sent the alert {text} at offset {at}"));
            }
            _ => {}
        }
    }
}

impl Session {
    fn version(&self) -> Option<TlsVersion> {
        match self.server.as_ref()?.version {
            0x0304 => Some(TlsVersion::Tls13),
            0x0303 => Some(TlsVersion::Tls12),
            _ => None,
        }
    }

    /// Whole handshake messages in `dir` after `bytes`, reassembled across records.
    fn messages(&mut self, dir: Direction, bytes: &[u8]) -> Result<Vec<(u8, Vec<u8>)>, String> {
        let state = &mut self.dirs[dir.index()];
        state.handshake.extend_from_slice(bytes);
        let mut out = Vec::new();
        while state.handshake.len() >= 4 {
            let len = usize::from(state.handshake[1]) << 16
                | usize::from(state.handshake[2]) << 8
                | usize::from(state.handshake[3]);
            if len > MAX_HANDSHAKE {
                return Err(format!(
                    "{dir} sent a handshake message of {len} bytes; not decrypted"
                ));
            }
            if state.handshake.len() < 4 + len {
                break;
            }
            let kind = state.handshake[0];
            let body = state.handshake[4..4 + len].to_vec();
            state.handshake.drain(..4 + len);
            out.push((kind, body));
        }
        Ok(out)
    }

    /// Handshake records in the clear: the two hellos.
    fn handshake_plain(&mut self, dir: Direction, payload: &[u8]) -> Result<(), String> {
        for (kind, body) in self.messages(dir, payload)? {
            match (dir, kind) {
                (Direction::ClientToUpstream, CLIENT_HELLO) => {
                    let random = body
                        .get(2..34)
                        .and_then(|r| <[u8; 32]>::try_from(r).ok())
                        .ok_or("the ClientHello is cut short; not decrypted")?;
                    self.client_random = Some(random);
                }
                (Direction::UpstreamToClient, SERVER_HELLO) => {
                    let info = parse_server_hello(&body).map_err(|why| {
                        format!("the ServerHello does not parse ({why}); not decrypted")
                    })?;
                    if info.retry {
                        continue; // a HelloRetryRequest: the real ServerHello follows
                    }
                    let suite = Suite::by_id(info.suite).ok_or_else(|| {
                        format!(
                            "cannot decrypt suite {:#06x} (not an AEAD suite faultline knows)",
                            info.suite
                        )
                    })?;
                    let version = match info.version {
                        0x0304 => TlsVersion::Tls13,
                        0x0303 => TlsVersion::Tls12,
                        other => return Err(format!("cannot decrypt TLS version {other:#06x}")),
                    };
                    if suite.version != version {
                        return Err(format!(
                            "the ServerHello pairs suite {} with another TLS version; not decrypted",
                            suite.name
                        ));
                    }
                    self.suite = Some(suite);
                    self.server = Some(info);
                }
                _ => {}
            }
        }
        Ok(())
    }

    fn client_random(&self) -> Result<[u8; 32], String> {
        self.client_random
            .ok_or_else(|| "no ClientHello before the encrypted records; not decrypted".to_string())
    }

    fn suite(&self) -> Result<Suite, String> {
        self.suite
            .ok_or_else(|| "no ServerHello before the encrypted records; not decrypted".to_string())
    }

    /// TLS 1.3: `dir` starts encrypting under its handshake traffic secret.
    fn start_tls13(&mut self, dir: Direction, keys: &TlsKeys) -> Result<(), String> {
        let (random, suite) = (self.client_random()?, self.suite()?);
        let label = match dir {
            Direction::ClientToUpstream => "CLIENT_HANDSHAKE_TRAFFIC_SECRET",
            Direction::UpstreamToClient => "SERVER_HANDSHAKE_TRAFFIC_SECRET",
        };
        let secret = keys
            .secret(&random, label)
            .ok_or_else(|| missing(label, &random))?;
        let state = &mut self.dirs[dir.index()];
        state.keys = Some(tls13_keys(suite, &secret));
        state.secret = secret;
        state.seq = 0;
        Ok(())
    }

    /// TLS 1.2: `dir` starts encrypting with its half of the key block.
    fn start_tls12(&mut self, dir: Direction, keys: &TlsKeys) -> Result<(), String> {
        let (random, suite) = (self.client_random()?, self.suite()?);
        let master = keys
            .secret(&random, "CLIENT_RANDOM")
            .ok_or_else(|| missing("CLIENT_RANDOM", &random))?;
        let server_random = self.server.as_ref().map(|s| s.random).unwrap_or_default();
        let (client, server) = tls12_keys(suite, &master, &random, &server_random);
        let state = &mut self.dirs[dir.index()];
        state.keys = Some(match dir {
            Direction::ClientToUpstream => client,
            Direction::UpstreamToClient => server,
        });
        state.seq = 0;
        state.application = true;
        Ok(())
    }

    /// Handshake messages inside encrypted records: TLS 1.3's Finished (application keys from
    /// the next record on) and KeyUpdate (the next generation of them).
    fn handshake_encrypted(
        &mut self,
        dir: Direction,
        plain: &[u8],
        keys: &TlsKeys,
    ) -> Result<(), String> {
        if self.version() != Some(TlsVersion::Tls13) {
            return Ok(());
        }
        for (kind, _) in self.messages(dir, plain)? {
            let suite = self.suite()?;
            let state = &self.dirs[dir.index()];
            let next = match kind {
                FINISHED if !state.application => {
                    let random = self.client_random()?;
                    let label = match dir {
                        Direction::ClientToUpstream => "CLIENT_TRAFFIC_SECRET_0",
                        Direction::UpstreamToClient => "SERVER_TRAFFIC_SECRET_0",
                    };
                    keys.secret(&random, label)
                        .ok_or_else(|| missing(label, &random))?
                }
                KEY_UPDATE if state.application => tls13_next_secret(suite, &state.secret),
                _ => continue,
            };
            let state = &mut self.dirs[dir.index()];
            state.keys = Some(tls13_keys(suite, &next));
            state.secret = next;
            state.application = true;
            state.seq = 0;
        }
        Ok(())
    }
}

fn missing(label: &str, random: &[u8; 32]) -> String {
    format!(
        "no {label} for client random {}… in the capture or --keylog (a capture_tls = \"raw\" capture embeds it; else pass the run's key log with --keylog FILE); not decrypted",
        hex::encode(&random[..8])
    )
}

/// `fatal decode_error` from an alert's two bytes.
fn alert_text(payload: &[u8]) -> String {
    let level = match payload.first() {
        Some(1) => "warning",
        Some(2) => "fatal",
        _ => "unknown-level",
    };
    let description = match payload.get(1) {
        Some(0) => "close_notify".to_string(),
        Some(&code) => alert_name(code)
            .map(str::to_string)
            .unwrap_or_else(|| format!("#{code}")),
        None => "(empty)".to_string(),
    };
    format!("{level} {description}")
}

/// RFC 8446 §6 alert names.
fn alert_name(code: u8) -> Option<&'static str> {
    Some(match code {
        0 => "close_notify",
        10 => "unexpected_message",
        20 => "bad_record_mac",
        22 => "record_overflow",
        40 => "handshake_failure",
        42 => "bad_certificate",
        43 => "unsupported_certificate",
        44 => "certificate_revoked",
        45 => "certificate_expired",
        46 => "certificate_unknown",
        47 => "illegal_parameter",
        48 => "unknown_ca",
        49 => "access_denied",
        50 => "decode_error",
        51 => "decrypt_error",
        70 => "protocol_version",
        71 => "insufficient_security",
        80 => "internal_error",
        86 => "inappropriate_fallback",
        90 => "user_canceled",
        109 => "missing_extension",
        110 => "unsupported_extension",
        112 => "unrecognized_name",
        116 => "certificate_required",
        120 => "no_application_protocol",
        _ => return None,
    })
}

impl<C: StreamConsumer> StreamConsumer for TlsLayer<C> {
    fn data(&mut self, dir: Direction, offset: u64, bytes: &[u8], ts: u64) {
        if matches!(self.state, State::Undecided) {
            let tls = dir == Direction::ClientToUpstream
                && offset == 0
                && bytes.first() == Some(&content_type::HANDSHAKE)
                && bytes.get(1).is_none_or(|&major| major == 3);
            self.state = if tls {
                State::Tls(Box::default())
            } else {
                State::Plain
            };
        }
        match self.state {
            State::Tls(_) => {
                // A packet after the record and no comment on it: no rule claimed the record.
                self.undecryptable_is_a_gap(dir);
                self.feed(dir, offset, bytes, ts)
            }
            _ => self.inner.data(dir, offset, bytes, ts),
        }
    }

    fn fin(&mut self, dir: Direction, offset: u64, ts: u64) {
        if self.hold_end(dir, false, ts) {
            return;
        }
        let at = self.plain_offset(dir, offset);
        self.inner.fin(dir, at, ts);
    }

    fn reset(&mut self, dir: Direction, offset: u64, ts: u64) {
        if self.hold_end(dir, true, ts) {
            return;
        }
        let at = self.plain_offset(dir, offset);
        self.inner.reset(dir, at, ts);
    }

    fn gap(&mut self, dir: Direction, offset: u64, missing: u64) {
        self.undecryptable_is_a_gap(dir);
        if let State::Tls(session) = &mut self.state {
            let state = &mut session.dirs[dir.index()];
            if !state.stopped {
                state.stopped = true;
                let plain = state.plain;
                self.warn(format!(
                    "{} missing from the capture at offset {offset} of the {dir} stream; the rest of this direction is not decrypted",
                    crate::plural::count(missing, "byte")
                ));
                self.inner.gap(dir, plain, missing);
            }
            return;
        }
        self.inner.gap(dir, offset, missing);
    }

    /// A comment names where its packet starts; the packet's records were decrypted already
    /// (reassembly hands the data on first), so the plaintext cursor is past them: the comment
    /// goes where the first record starting at or after the packet began in the plaintext. A
    /// fault note then marks the frame it shaped, not the next one (a trial saw a stream's
    /// RST_STREAM note land on another stream of a raw TLS capture).
    fn comment(&mut self, dir: Direction, offset: u64, text: &str, ts: u64) {
        let mut claimed = false;
        if corrupted_a_record(text) {
            if let State::Tls(session) = &mut self.state {
                let state = &mut session.dirs[dir.index()];
                state.corrupt_mark = Some(offset);
                claimed = state
                    .undecryptable
                    .as_ref()
                    .is_some_and(|u| offset <= u.end);
                if claimed {
                    self.corrupted_on_purpose(dir);
                }
            }
        }
        let at = match &self.state {
            State::Tls(session) => {
                let state = &session.dirs[dir.index()];
                state
                    .starts
                    .iter()
                    .find(|(start, _)| *start >= offset)
                    .map_or(state.plain, |(_, plain)| *plain)
            }
            _ => offset,
        };
        self.inner.comment(dir, at, text, ts);
        if claimed {
            self.release_end(dir);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use super::*;
    use crate::tls::rustls_agreement::{every_suite, handshake};

    /// What the layer handed on, per direction, and the events.
    #[derive(Debug, Default)]
    struct Collect {
        data: [Vec<u8>; 2],
        gaps: usize,
        fins: usize,
        comments: Vec<(Direction, u64)>,
    }

    impl StreamConsumer for Collect {
        fn data(&mut self, dir: Direction, offset: u64, bytes: &[u8], _: u64) {
            assert_eq!(
                offset,
                self.data[dir.index()].len() as u64,
                "plaintext offsets"
            );
            self.data[dir.index()].extend_from_slice(bytes);
        }
        fn fin(&mut self, _: Direction, _: u64, _: u64) {
            self.fins += 1;
        }
        fn reset(&mut self, _: Direction, _: u64, _: u64) {}
        fn gap(&mut self, _: Direction, _: u64, _: u64) {
            self.gaps += 1;
        }
        fn comment(&mut self, dir: Direction, offset: u64, _: &str, _: u64) {
            self.comments.push((dir, offset));
        }
    }

    fn info() -> FlowInfo {
        FlowInfo {
            id: 1,
            interface: Some("client leg".into()),
            client: "127.0.0.1:1".parse().unwrap(),
            server: "127.0.0.1:2".parse().unwrap(),
            opened_ns: 0,
            saw_syn: true,
            client_isn: None,
        }
    }

    /// Feeds a transcript to a layer, each direction's bytes at their running offsets.
    fn replay(layer: &mut TlsLayer<Collect>, transcript: &[(bool, Vec<u8>)]) {
        let mut offsets = [0u64; 2];
        for (to_server, bytes) in transcript.iter().filter(|(_, b)| !b.is_empty()) {
            let dir = if *to_server {
                Direction::ClientToUpstream
            } else {
                Direction::UpstreamToClient
            };
            // In two pieces, so records are cut anywhere.
            let (a, b) = bytes.split_at(bytes.len() / 2);
            layer.data(dir, offsets[dir.index()], a, 0);
            layer.data(dir, offsets[dir.index()] + a.len() as u64, b, 0);
            offsets[dir.index()] += bytes.len() as u64;
        }
    }

    /// A session carrying data both ways, with a KeyUpdate in TLS 1.3.
    fn session_with_traffic(
        suite: rustls::SupportedCipherSuite,
    ) -> crate::tls::rustls_agreement::Session {
        let mut session = handshake(suite);
        session
            .client
            .writer()
            .write_all(b"PUT /x HTTP/1.1\r\n")
            .unwrap();
        session.client_to_server();
        session
            .server
            .writer()
            .write_all(b"HTTP/1.1 200 OK\r\n")
            .unwrap();
        session.server_to_client();
        if session.version == TlsVersion::Tls13 {
            session.client.refresh_traffic_keys().unwrap();
            session.server.refresh_traffic_keys().unwrap();
        }
        session
            .client
            .writer()
            .write_all(b"after the update")
            .unwrap();
        session.client_to_server();
        session
            .server
            .writer()
            .write_all(b"answer after it")
            .unwrap();
        session.server_to_client();
        session
    }

    #[test]
    fn every_suite_and_version_decrypts_both_directions_across_key_updates() {
        for suite in every_suite() {
            let session = session_with_traffic(suite);
            let keys = TlsKeys::default();
            keys.add(session.key_log_text().as_bytes());
            let mut layer = TlsLayer::new(Collect::default(), keys, &info());
            replay(&mut layer, &session.transcript);
            let (got, warnings) = layer.finish();
            assert_eq!(warnings, Vec::<String>::new(), "{suite:?}");
            assert_eq!(
                got.data[0], b"PUT /x HTTP/1.1\r\nafter the update",
                "{suite:?}"
            );
            assert_eq!(
                got.data[1], b"HTTP/1.1 200 OK\r\nanswer after it",
                "{suite:?}"
            );
        }
    }

    /// A comment on the packet that carries a record marks where that record's plaintext
    /// starts, not where the plaintext stood after it was decrypted.
    #[test]
    fn a_comment_lands_where_its_packets_plaintext_starts() {
        for suite in every_suite() {
            let session = session_with_traffic(suite);
            let keys = TlsKeys::default();
            keys.add(session.key_log_text().as_bytes());
            let mut layer = TlsLayer::new(Collect::default(), keys, &info());
            let last_server = session
                .transcript
                .iter()
                .rposition(|(to_server, b)| !to_server && !b.is_empty())
                .expect("the server wrote");
            let mut offsets = [0u64; 2];
            for (i, (to_server, bytes)) in session.transcript.iter().enumerate() {
                let dir = if *to_server {
                    Direction::ClientToUpstream
                } else {
                    Direction::UpstreamToClient
                };
                let at = offsets[dir.index()];
                layer.data(dir, at, bytes, 0);
                offsets[dir.index()] += bytes.len() as u64;
                if i == last_server {
                    layer.comment(dir, at, "faultline: rule \"r\" latency", 0);
                }
            }
            let (got, _) = layer.finish();
            assert_eq!(
                got.comments,
                vec![(
                    Direction::UpstreamToClient,
                    b"HTTP/1.1 200 OK\r\n".len() as u64
                )],
                "{suite:?}"
            );
        }
    }

    #[test]
    fn without_keys_nothing_is_handed_on_and_the_flow_says_why() {
        let session = session_with_traffic(every_suite()[0]);
        let mut layer = TlsLayer::new(Collect::default(), TlsKeys::default(), &info());
        replay(&mut layer, &session.transcript);
        let (got, warnings) = layer.finish();
        assert!(got.data.iter().all(Vec::is_empty));
        assert_eq!(warnings.len(), 1, "{warnings:?}");
        assert!(warnings[0].contains("flow 1 (client leg)"), "{warnings:?}");
        assert!(warnings[0].contains("not decrypted"), "{warnings:?}");
    }

    #[test]
    fn a_damaged_record_stops_its_direction_with_a_warning_and_a_gap() {
        let mut session = session_with_traffic(every_suite()[0]);
        let keys = TlsKeys::default();
        keys.add(session.key_log_text().as_bytes());
        // Flip the last byte of the server's last record.
        let last = session
            .transcript
            .iter_mut()
            .rev()
            .find(|(to_server, b)| !to_server && !b.is_empty())
            .unwrap();
        let end = last.1.len() - 1;
        last.1[end] ^= 0x80;
        let mut layer = TlsLayer::new(Collect::default(), keys, &info());
        replay(&mut layer, &session.transcript);
        let (got, warnings) = layer.finish();
        assert_eq!(
            got.data[1], b"HTTP/1.1 200 OK\r\n",
            "what came before is kept"
        );
        assert_eq!(got.gaps, 1);
        assert!(
            warnings.iter().any(|w| w.contains("undecryptable record")),
            "{warnings:?}"
        );
    }

    /// User trials: a `tls_alert` (bad_record_mac) with `capture_tls = "raw"` was INCONCLUSIVE,
    /// "the capture missed bytes", while the same run captured as plaintext was OK. The record
    /// the rule's comment marks is the fault: no gap, a warning that says so, the comment handed
    /// on. The comment may come after the record (one packet) or before it (many packets).
    /// A TLS session whose last record to the client has a flipped bit, fed through a layer
    /// that has its keys; `around(layer, direction, offset, before)` is called just before
    /// (`before`) and after that record, then the FIN to the client follows; the layer and the
    /// FIN's offset.
    fn feed_damaged_record(
        mut around: impl FnMut(&mut TlsLayer<Collect>, Direction, u64, bool),
    ) -> (TlsLayer<Collect>, u64) {
        let mut session = session_with_traffic(every_suite()[0]);
        let keys = TlsKeys::default();
        keys.add(session.key_log_text().as_bytes());
        let last = session
            .transcript
            .iter()
            .rposition(|(to_server, b)| !to_server && !b.is_empty())
            .unwrap();
        let end = session.transcript[last].1.len() - 1;
        session.transcript[last].1[end] ^= 0x80;
        let mut layer = TlsLayer::new(Collect::default(), keys, &info());
        let mut offsets = [0u64; 2];
        for (i, (to_server, bytes)) in session.transcript.iter().enumerate() {
            let dir = if *to_server {
                Direction::ClientToUpstream
            } else {
                Direction::UpstreamToClient
            };
            let at = offsets[dir.index()];
            if i == last {
                around(&mut layer, dir, at, true);
            }
            layer.data(dir, at, bytes, 0);
            if i == last {
                around(&mut layer, dir, at, false);
            }
            offsets[dir.index()] += bytes.len() as u64;
        }
        layer.fin(Direction::UpstreamToClient, offsets[1], 0);
        (layer, offsets[1])
    }

    #[test]
    fn a_record_a_rule_corrupted_is_the_fault_not_a_gap() {
        let note = "faultline: rule \"down\" corrupted the next TLS record (the peer reports bad_record_mac) to the client after 17 bytes upstream->client";
        for order in [
            "before the record",
            "after the record",
            "on the FIN after it",
        ] {
            let (mut layer, fin_offset) =
                feed_damaged_record(|layer, dir, at, before| match (order, before) {
                    ("before the record", true) | ("after the record", false) => {
                        layer.comment(dir, at, note, 0)
                    }
                    _ => {}
                });
            // As reassembly does for a FIN packet with a comment: the FIN, then the comment.
            if order == "on the FIN after it" {
                layer.comment(Direction::UpstreamToClient, fin_offset, note, 0);
            }
            let (got, warnings) = layer.finish();
            assert_eq!(got.data[1], b"HTTP/1.1 200 OK\r\n", "{order}");
            assert_eq!(got.gaps, 0, "{order}: {warnings:?}");
            assert_eq!(got.fins, 1, "{order}: the FIN is handed on");
            assert_eq!(got.comments.len(), 1, "the rule's comment is handed on");
            assert!(
                warnings
                    .iter()
                    .any(|w| w.contains("the record a rule corrupted on purpose")),
                "{order}: {warnings:?}"
            );
            assert!(
                !warnings.iter().any(|w| w.contains("keys missing")),
                "{order}: {warnings:?}"
            );
        }
    }

    /// Another rule's comment (a latency) does not excuse a damaged record: still a gap.
    #[test]
    fn a_damaged_record_under_another_comment_is_still_a_gap() {
        let (layer, _) = feed_damaged_record(|layer, dir, at, before| {
            if !before {
                layer.comment(dir, at, "faultline: rule \"r\" latency", 0);
            }
        });
        let (got, warnings) = layer.finish();
        assert_eq!(got.gaps, 1, "{warnings:?}");
        assert_eq!(got.fins, 1, "the FIN after the gap");
        assert!(
            warnings.iter().any(|w| w.contains("undecryptable record")),
            "{warnings:?}"
        );
    }

    #[test]
    fn plain_flows_pass_through_and_garbage_never_panics() {
        let mut layer = TlsLayer::new(Collect::default(), TlsKeys::default(), &info());
        layer.data(Direction::ClientToUpstream, 0, b"GET / HTTP/1.1\r\n", 0);
        layer.data(Direction::UpstreamToClient, 0, b"HTTP/1.1 200", 0);
        let (got, warnings) = layer.finish();
        assert_eq!(got.data[0], b"GET / HTTP/1.1\r\n");
        assert!(warnings.is_empty());
        // Records of every kind and length, wrong or cut.
        for seed in 0u8..=255 {
            let mut layer = TlsLayer::new(Collect::default(), TlsKeys::default(), &info());
            let mut bytes = vec![0x16, 3, 1, 0, 8, 1, 0, 0, 4, 3, 3, seed, seed];
            bytes.extend((0..64).map(|i: u8| i.wrapping_mul(seed)));
            layer.data(Direction::ClientToUpstream, 0, &bytes, 0);
            layer.data(
                Direction::UpstreamToClient,
                0,
                &bytes[seed as usize % 20..],
                0,
            );
            layer.fin(Direction::ClientToUpstream, bytes.len() as u64, 0);
            let _ = layer.finish();
        }
    }
}
