//! Streams packets out of a classic pcap or pcapng file, one record at a time, tolerating damage.
//!
//! Memory is one record (bounded by [`MAX_RECORD`]) plus the interface table. Damage after a valid
//! header never panics and never errors: the reader stops and [`CaptureReader::damage`] says where
//! and why, so whatever was read before still counts as evidence.

use std::io::{self, Read};
use std::ops::Range;

use thiserror::Error;

/// Largest record (pcap packet or pcapng block) accepted. Real packets are far smaller; a larger
/// length field means the file is damaged, and refusing it keeps memory bounded.
pub const MAX_RECORD: usize = 64 * 1024 * 1024;

const PCAP_MICROS: u32 = 0xa1b2_c3d4;
const PCAP_NANOS: u32 = 0xa1b2_3c4d;
const PCAPNG_SHB: u32 = 0x0A0D_0D0A;
const PCAPNG_BOM: u32 = 0x1A2B_3C4D;
const BLOCK_IDB: u32 = 1;
const BLOCK_OPB: u32 = 2;
const BLOCK_SPB: u32 = 3;
const BLOCK_EPB: u32 = 6;
const OPT_END: u16 = 0;
const OPT_COMMENT: u16 = 1;
const IF_NAME: u16 = 2;
const IF_TSRESOL: u16 = 9;
const IF_TSOFFSET: u16 = 14;

/// The capture's header could not be read: this is not a capture we understand (exit status 2).
#[derive(Debug, Error)]
pub enum FormatError {
    /// Reading failed before the header was complete.
    #[error("cannot read the capture header: {0}")]
    Io(#[from] io::Error),
    /// The file is shorter than a capture header.
    #[error("file too short for a capture header ({0} bytes)")]
    TooShort(usize),
    /// The first bytes are neither a pcap magic number nor a pcapng section header.
    #[error("not a pcap or pcapng file (starts with {0})")]
    UnknownMagic(String),
    /// A pcapng section header with an impossible byte-order magic or length.
    #[error("damaged pcapng section header: {0}")]
    BadSectionHeader(String),
}

/// Which of the two file formats the capture uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileFormat {
    /// Classic libpcap (microsecond or nanosecond magic).
    Pcap,
    /// pcapng (sections, interfaces, packet comments).
    Pcapng,
}

/// One packet record, borrowed from the reader until the next call.
#[derive(Debug, Clone, Copy)]
pub struct Packet<'a> {
    /// Capture time, nanoseconds since the Unix epoch.
    pub ts_nanos: u64,
    /// pcapng interface name (`if_name`), e.g. faultline's "client leg"; `None` in classic pcap.
    pub interface: Option<&'a str>,
    /// pcapng packet comment(s) (`opt_comment`, several joined by "; ").
    pub comment: Option<&'a str>,
    /// Link type of the packet's interface (LINKTYPE_*).
    pub linktype: u32,
    /// The captured bytes (possibly shorter than on the wire, if a snap length applied).
    pub data: &'a [u8],
}

#[derive(Debug, Clone)]
struct Interface {
    name: Option<String>,
    linktype: u32,
    /// Timestamp units per second as (base, exponent): base^-exponent seconds.
    resolution: (u8, u8),
    offset_secs: i64,
}

#[derive(Debug, Clone, Copy)]
enum Endian {
    Little,
    Big,
}

impl Endian {
    fn u16(self, b: &[u8]) -> u16 {
        let a = [b[0], b[1]];
        match self {
            Endian::Little => u16::from_le_bytes(a),
            Endian::Big => u16::from_be_bytes(a),
        }
    }
    fn u32(self, b: &[u8]) -> u32 {
        let a = [b[0], b[1], b[2], b[3]];
        match self {
            Endian::Little => u32::from_le_bytes(a),
            Endian::Big => u32::from_be_bytes(a),
        }
    }
}

#[derive(Debug)]
enum Kind {
    Pcap { nanos: bool, linktype: u32 },
    Pcapng { interfaces: Vec<Interface> },
}

/// Where the current packet lies in the reader's buffers.
struct Ready {
    ts_nanos: u64,
    interface: Option<usize>,
    linktype: u32,
    data: Range<usize>,
    has_comment: bool,
}

/// A streaming reader over any `Read` (wrap files in a `BufReader`).
pub struct CaptureReader<R> {
    input: R,
    endian: Endian,
    kind: Kind,
    buf: Vec<u8>,
    comment: String,
    position: u64,
    damage: Option<String>,
    done: bool,
    packets: u64,
}

/// Outcome of trying to read exactly `n` bytes.
enum Fill {
    Full,
    /// Clean end of file: nothing at all was read.
    End,
    /// Some bytes, then end of file.
    Cut(usize),
}

fn read_full(input: &mut impl Read, buf: &mut [u8]) -> io::Result<Fill> {
    let mut got = 0;
    while got < buf.len() {
        match input.read(&mut buf[got..]) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(match got {
        n if n == buf.len() => Fill::Full,
        0 => Fill::End,
        n => Fill::Cut(n),
    })
}

impl<R: Read> CaptureReader<R> {
    /// Reads and checks the file header (pcap) or first section header (pcapng).
    pub fn new(mut input: R) -> Result<Self, FormatError> {
        let mut head = [0u8; 24];
        let got = match read_full(&mut input, &mut head[..4])? {
            Fill::Full => 4,
            Fill::End => 0,
            Fill::Cut(n) => n,
        };
        if got < 4 {
            return Err(FormatError::TooShort(got));
        }
        let magic_le = u32::from_le_bytes([head[0], head[1], head[2], head[3]]);
        let magic_be = u32::from_be_bytes([head[0], head[1], head[2], head[3]]);
        let mut reader = CaptureReader {
            input,
            endian: Endian::Little,
            kind: Kind::Pcapng {
                interfaces: Vec::new(),
            },
            buf: Vec::new(),
            comment: String::new(),
            position: 4,
            damage: None,
            done: false,
            packets: 0,
        };
        if magic_le == PCAPNG_SHB {
            reader.section_header()?;
            return Ok(reader);
        }
        let (endian, nanos) = match (magic_le, magic_be) {
            (PCAP_MICROS, _) => (Endian::Little, false),
            (PCAP_NANOS, _) => (Endian::Little, true),
            (_, PCAP_MICROS) => (Endian::Big, false),
            (_, PCAP_NANOS) => (Endian::Big, true),
            _ => return Err(FormatError::UnknownMagic(hex::encode(&head[..4]))),
        };
        match read_full(&mut reader.input, &mut head[4..])? {
            Fill::Full => {}
            Fill::End => return Err(FormatError::TooShort(4)),
            Fill::Cut(n) => return Err(FormatError::TooShort(4 + n)),
        }
        reader.position = 24;
        reader.endian = endian;
        // The upper bits of the link-type field carry FCS information in some writers.
        let linktype = endian.u32(&head[20..24]) & 0x0fff_ffff;
        reader.kind = Kind::Pcap { nanos, linktype };
        Ok(reader)
    }

    /// The file format found in the header.
    pub fn format(&self) -> FileFormat {
        match self.kind {
            Kind::Pcap { .. } => FileFormat::Pcap,
            Kind::Pcapng { .. } => FileFormat::Pcapng,
        }
    }

    /// Why reading stopped early (a cut last record, an impossible length, an I/O error), if it did.
    pub fn damage(&self) -> Option<&str> {
        self.damage.as_deref()
    }

    /// Packets returned so far.
    pub fn packets(&self) -> u64 {
        self.packets
    }

    /// The next packet, or `None` at the end of the file or at the first damage (see [`Self::damage`]).
    pub fn next_packet(&mut self) -> Option<Packet<'_>> {
        let ready = self.advance()?;
        self.packets += 1;
        let interface = match (&self.kind, ready.interface) {
            (Kind::Pcapng { interfaces }, Some(i)) => {
                interfaces.get(i).and_then(|i| i.name.as_deref())
            }
            _ => None,
        };
        Some(Packet {
            ts_nanos: ready.ts_nanos,
            interface,
            comment: ready.has_comment.then_some(self.comment.as_str()),
            linktype: ready.linktype,
            data: self.buf.get(ready.data).unwrap_or_default(),
        })
    }

    fn stop(&mut self, why: String) -> Option<Ready> {
        self.done = true;
        self.damage = Some(why);
        None
    }

    /// Reads `n` bytes into `buf`; on a short read records damage naming `what`.
    fn fill(&mut self, n: usize, what: &str) -> Option<bool> {
        self.buf.clear();
        self.buf.resize(n, 0);
        let at = self.position;
        match read_full(&mut self.input, &mut self.buf) {
            Ok(Fill::Full) => {
                self.position += n as u64;
                Some(true)
            }
            Ok(Fill::End) => {
                self.done = true;
                Some(false)
            }
            Ok(Fill::Cut(got)) => {
                self.stop(format!(
                    "capture cut inside a {what} at byte {at}: {got} of {n} bytes present"
                ));
                None
            }
            Err(e) => {
                self.stop(format!("read error at byte {at}: {e}"));
                None
            }
        }
    }

    fn advance(&mut self) -> Option<Ready> {
        while !self.done {
            let ready = match self.kind {
                Kind::Pcap { nanos, linktype } => return self.pcap_record(nanos, linktype),
                Kind::Pcapng { .. } => self.pcapng_block(),
            };
            match ready {
                Ok(Some(r)) => return Some(r),
                Ok(None) => continue,
                Err(()) => return None,
            }
        }
        None
    }

    fn pcap_record(&mut self, nanos: bool, linktype: u32) -> Option<Ready> {
        if !self.fill(16, "pcap record header")? {
            return None;
        }
        let e = self.endian;
        let secs = u64::from(e.u32(&self.buf[0..4]));
        let frac = u64::from(e.u32(&self.buf[4..8]));
        let caplen = e.u32(&self.buf[8..12]) as usize;
        if caplen > MAX_RECORD {
            let at = self.position - 16;
            return self.stop(format!(
                "impossible packet length {caplen} at byte {at}: the file is damaged"
            ));
        }
        let ts_nanos = secs.saturating_mul(1_000_000_000).saturating_add(if nanos {
            frac
        } else {
            frac.saturating_mul(1000)
        });
        if !self.fill(caplen, "pcap packet")? {
            return self.stop("capture cut after a pcap record header".into());
        }
        Some(Ready {
            ts_nanos,
            interface: None,
            linktype,
            data: 0..caplen,
            has_comment: false,
        })
    }

    /// Reads the rest of a section header block after its type; resets the interface table.
    fn section_header(&mut self) -> Result<(), FormatError> {
        let mut head = [0u8; 8];
        match read_full(&mut self.input, &mut head)? {
            Fill::Full => {}
            Fill::End => return Err(FormatError::TooShort(self.position as usize)),
            Fill::Cut(n) => return Err(FormatError::TooShort(self.position as usize + n)),
        }
        self.endian = match (
            u32::from_le_bytes([head[4], head[5], head[6], head[7]]),
            u32::from_be_bytes([head[4], head[5], head[6], head[7]]),
        ) {
            (PCAPNG_BOM, _) => Endian::Little,
            (_, PCAPNG_BOM) => Endian::Big,
            _ => {
                return Err(FormatError::BadSectionHeader(format!(
                    "byte-order magic {}",
                    hex::encode(&head[4..])
                )))
            }
        };
        let len = self.endian.u32(&head[..4]) as usize;
        if len < 28 || len % 4 != 0 || len > MAX_RECORD {
            return Err(FormatError::BadSectionHeader(format!("block length {len}")));
        }
        self.position += 8;
        let rest = len - 12;
        self.buf.clear();
        self.buf.resize(rest, 0);
        match read_full(&mut self.input, &mut self.buf)? {
            Fill::Full => {}
            _ => return Err(FormatError::BadSectionHeader("cut before its end".into())),
        }
        self.position += rest as u64;
        self.kind = Kind::Pcapng {
            interfaces: Vec::new(),
        };
        Ok(())
    }

    /// One pcapng block: `Ok(Some)` for a packet, `Ok(None)` for anything else, `Err` to stop.
    fn pcapng_block(&mut self) -> Result<Option<Ready>, ()> {
        let start = self.position;
        let Some(present) = self.fill(8, "pcapng block header") else {
            return Err(());
        };
        if !present {
            return Err(());
        }
        let e = self.endian;
        let block_type = e.u32(&self.buf[0..4]);
        if block_type == PCAPNG_SHB {
            return match self.section_header() {
                Ok(()) => Ok(None),
                Err(err) => {
                    self.stop(format!("damaged section header at byte {start}: {err}"));
                    Err(())
                }
            };
        }
        let len = e.u32(&self.buf[4..8]) as usize;
        if len < 12 || len % 4 != 0 || len > MAX_RECORD {
            self.stop(format!(
                "impossible block length {len} at byte {start}: the file is damaged"
            ));
            return Err(());
        }
        let Some(true) = self.fill(len - 8, "pcapng block") else {
            if self.damage.is_none() {
                self.stop(format!("capture cut after a block header at byte {start}"));
            }
            return Err(());
        };
        let body_len = len - 12;
        if e.u32(&self.buf[body_len..]) as usize != len {
            self.stop(format!(
                "block at byte {start}: trailing length does not match: the file is damaged"
            ));
            return Err(());
        }
        Ok(match block_type {
            BLOCK_IDB => {
                self.interface(body_len);
                None
            }
            BLOCK_EPB => self.enhanced_packet(body_len, false),
            BLOCK_OPB => self.enhanced_packet(body_len, true),
            BLOCK_SPB => self.simple_packet(body_len),
            _ => None,
        })
    }

    fn interface(&mut self, body_len: usize) {
        let e = self.endian;
        let body = &self.buf[..body_len];
        if body.len() < 8 {
            return;
        }
        let mut iface = Interface {
            name: None,
            linktype: u32::from(e.u16(&body[0..2])),
            resolution: (10, 6),
            offset_secs: 0,
        };
        for (code, value) in options(e, &body[8..]) {
            match code {
                IF_NAME => iface.name = Some(String::from_utf8_lossy(value).into_owned()),
                IF_TSRESOL if !value.is_empty() => {
                    let v = value[0];
                    iface.resolution = if v & 0x80 != 0 {
                        (2, v & 0x7f)
                    } else {
                        (10, v)
                    };
                }
                IF_TSOFFSET if value.len() == 8 => {
                    let raw = match e {
                        Endian::Little => i64::from_le_bytes(value.try_into().unwrap_or_default()),
                        Endian::Big => i64::from_be_bytes(value.try_into().unwrap_or_default()),
                    };
                    iface.offset_secs = raw;
                }
                _ => {}
            }
        }
        if let Kind::Pcapng { interfaces } = &mut self.kind {
            // Bounded: a damaged file declaring millions of interfaces must not exhaust memory.
            if interfaces.len() < 65_536 {
                interfaces.push(iface);
            }
        }
    }

    fn enhanced_packet(&mut self, body_len: usize, obsolete: bool) -> Option<Ready> {
        let e = self.endian;
        let body = &self.buf[..body_len];
        if body.len() < 20 {
            return None;
        }
        let interface = if obsolete {
            usize::from(e.u16(&body[0..2]))
        } else {
            e.u32(&body[0..4]) as usize
        };
        let units = (u64::from(e.u32(&body[4..8])) << 32) | u64::from(e.u32(&body[8..12]));
        let caplen = e.u32(&body[12..16]) as usize;
        let data_end = 20usize.checked_add(caplen)?;
        if data_end > body.len() {
            return None;
        }
        let opts_start = (data_end + 3) & !3;
        self.comment.clear();
        let mut has_comment = false;
        if opts_start <= body.len() {
            for (code, value) in options(e, &body[opts_start..]) {
                if code == OPT_COMMENT {
                    if has_comment {
                        self.comment.push_str("; ");
                    }
                    self.comment.push_str(&String::from_utf8_lossy(value));
                    has_comment = true;
                }
            }
        }
        let (linktype, ts_nanos) = self.interface_time(interface, units)?;
        Some(Ready {
            ts_nanos,
            interface: Some(interface),
            linktype,
            data: 20..data_end,
            has_comment,
        })
    }

    fn simple_packet(&mut self, body_len: usize) -> Option<Ready> {
        let body = &self.buf[..body_len];
        if body.len() < 4 {
            return None;
        }
        let orig = self.endian.u32(&body[0..4]) as usize;
        let end = 4 + orig.min(body.len() - 4);
        let (linktype, _) = self.interface_time(0, 0)?;
        self.comment.clear();
        Some(Ready {
            ts_nanos: 0,
            interface: Some(0),
            linktype,
            data: 4..end,
            has_comment: false,
        })
    }

    /// Link type and the timestamp in nanoseconds for `units` on interface `index`;
    /// `None` for a packet naming an interface that was never described.
    fn interface_time(&self, index: usize, units: u64) -> Option<(u32, u64)> {
        let Kind::Pcapng { interfaces } = &self.kind else {
            return None;
        };
        let iface = interfaces.get(index)?;
        let (base, exp) = iface.resolution;
        let units = u128::from(units);
        let nanos = if base == 10 {
            if exp <= 9 {
                units * 10u128.pow(u32::from(9 - exp))
            } else {
                units / 10u128.checked_pow(u32::from(exp - 9)).unwrap_or(u128::MAX)
            }
        } else {
            units * 1_000_000_000 / 2u128.checked_pow(u32::from(exp)).unwrap_or(u128::MAX)
        };
        let offset = i128::from(iface.offset_secs) * 1_000_000_000;
        let nanos = (nanos as i128)
            .saturating_add(offset)
            .clamp(0, i128::from(u64::MAX));
        Some((iface.linktype, nanos as u64))
    }
}

/// Iterates the (code, value) options of a pcapng block, stopping at `opt_endofopt` or damage.
fn options(e: Endian, mut b: &[u8]) -> impl Iterator<Item = (u16, &[u8])> {
    std::iter::from_fn(move || {
        if b.len() < 4 {
            return None;
        }
        let code = e.u16(&b[0..2]);
        let len = usize::from(e.u16(&b[2..4]));
        if code == OPT_END || 4 + len > b.len() {
            return None;
        }
        let value = &b[4..4 + len];
        let next = (4 + len + 3) & !3;
        b = b.get(next..).unwrap_or_default();
        Some((code, value))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pcap(endian_big: bool, nanos: bool, records: &[(u32, u32, &[u8])]) -> Vec<u8> {
        let w32 = |v: u32| {
            if endian_big {
                v.to_be_bytes()
            } else {
                v.to_le_bytes()
            }
        };
        let w16 = |v: u16| {
            if endian_big {
                v.to_be_bytes()
            } else {
                v.to_le_bytes()
            }
        };
        let mut out = Vec::new();
        out.extend_from_slice(&w32(if nanos { PCAP_NANOS } else { PCAP_MICROS }));
        out.extend_from_slice(&w16(2));
        out.extend_from_slice(&w16(4));
        out.extend_from_slice(&[0; 8]);
        out.extend_from_slice(&w32(65535));
        out.extend_from_slice(&w32(101));
        for (s, f, data) in records {
            out.extend_from_slice(&w32(*s));
            out.extend_from_slice(&w32(*f));
            out.extend_from_slice(&w32(data.len() as u32));
            out.extend_from_slice(&w32(data.len() as u32));
            out.extend_from_slice(data);
        }
        out
    }

    #[test]
    fn reads_pcap_in_all_four_flavours() {
        for big in [false, true] {
            for nanos in [false, true] {
                let file = pcap(big, nanos, &[(2, 5, b"abc"), (3, 0, b"")]);
                let mut r = CaptureReader::new(&file[..]).expect("header");
                assert_eq!(r.format(), FileFormat::Pcap);
                let p = r.next_packet().expect("first");
                let frac = if nanos { 5 } else { 5000 };
                assert_eq!(p.ts_nanos, 2_000_000_000 + frac);
                assert_eq!((p.data, p.linktype), (&b"abc"[..], 101));
                assert!(r.next_packet().is_some());
                assert!(r.next_packet().is_none());
                assert!(r.damage().is_none());
            }
        }
    }

    #[test]
    fn cut_record_stops_with_damage_and_garbage_is_an_error() {
        let file = pcap(false, true, &[(1, 0, b"abcdef")]);
        let mut r = CaptureReader::new(&file[..file.len() - 2]).expect("header");
        assert!(r.next_packet().is_none());
        assert!(r.damage().is_some_and(|d| d.contains("cut")));
        assert!(CaptureReader::new(&b"hello world, not a capture"[..]).is_err());
        assert!(CaptureReader::new(&file[..10]).is_err());
        assert!(CaptureReader::new(&b""[..]).is_err());
    }

    fn block(big: bool, ty: u32, body: &[u8]) -> Vec<u8> {
        let w32 = |v: u32| {
            if big {
                v.to_be_bytes()
            } else {
                v.to_le_bytes()
            }
        };
        let mut body = body.to_vec();
        while body.len() % 4 != 0 {
            body.push(0);
        }
        let len = body.len() as u32 + 12;
        let mut out = w32(ty).to_vec();
        out.extend_from_slice(&w32(len));
        out.extend_from_slice(&body);
        out.extend_from_slice(&w32(len));
        out
    }

    fn opt(big: bool, code: u16, value: &[u8]) -> Vec<u8> {
        let w16 = |v: u16| {
            if big {
                v.to_be_bytes()
            } else {
                v.to_le_bytes()
            }
        };
        let mut out = w16(code).to_vec();
        out.extend_from_slice(&w16(value.len() as u16));
        out.extend_from_slice(value);
        while out.len() % 4 != 0 {
            out.push(0);
        }
        out
    }

    fn pcapng(big: bool) -> Vec<u8> {
        let w32 = |v: u32| {
            if big {
                v.to_be_bytes()
            } else {
                v.to_le_bytes()
            }
        };
        let w16 = |v: u16| {
            if big {
                v.to_be_bytes()
            } else {
                v.to_le_bytes()
            }
        };
        let mut shb = w32(PCAPNG_BOM).to_vec();
        shb.extend_from_slice(&w16(1));
        shb.extend_from_slice(&w16(0));
        shb.extend_from_slice(&[0xff; 8]);
        let mut out = block(big, PCAPNG_SHB, &shb);
        let mut idb = w16(101).to_vec();
        idb.extend_from_slice(&[0, 0, 0, 0, 0, 0]);
        idb.extend(opt(big, IF_NAME, b"client leg"));
        idb.extend(opt(big, IF_TSRESOL, &[9]));
        idb.extend(opt(big, OPT_END, b""));
        out.extend(block(big, BLOCK_IDB, &idb));
        out.extend(block(big, 0x0BAD, b"unknown block is skipped"));
        let mut epb = w32(0).to_vec();
        epb.extend_from_slice(&w32(0));
        epb.extend_from_slice(&w32(1_000_000_007));
        epb.extend_from_slice(&w32(5));
        epb.extend_from_slice(&w32(5));
        epb.extend_from_slice(b"hello\0\0\0");
        epb.extend(opt(big, OPT_COMMENT, b"faultline: rule \"x\""));
        epb.extend(opt(big, OPT_END, b""));
        out.extend(block(big, BLOCK_EPB, &epb));
        let mut spb = w32(3).to_vec();
        spb.extend_from_slice(b"abc");
        out.extend(block(big, BLOCK_SPB, &spb));
        out
    }

    #[test]
    fn reads_pcapng_in_both_byte_orders() {
        for big in [false, true] {
            let file = pcapng(big);
            let mut r = CaptureReader::new(&file[..]).expect("header");
            assert_eq!(r.format(), FileFormat::Pcapng);
            let p = r.next_packet().expect("epb");
            assert_eq!(p.interface, Some("client leg"));
            assert_eq!(p.comment, Some("faultline: rule \"x\""));
            assert_eq!((p.ts_nanos, p.data), (1_000_000_007, &b"hello"[..]));
            let p = r.next_packet().expect("spb");
            assert_eq!((p.data, p.comment), (&b"abc"[..], None));
            assert!(r.next_packet().is_none());
            assert!(r.damage().is_none(), "{:?}", r.damage());
        }
    }

    #[test]
    fn every_truncation_and_corruption_of_pcapng_is_handled() {
        let file = pcapng(false);
        for cut in 0..file.len() {
            if let Ok(mut r) = CaptureReader::new(&file[..cut]) {
                while r.next_packet().is_some() {}
            }
        }
        for i in 0..file.len() {
            let mut f = file.clone();
            f[i] ^= 0xff;
            if let Ok(mut r) = CaptureReader::new(&f[..]) {
                while r.next_packet().is_some() {}
            }
        }
    }

    #[test]
    fn microsecond_default_and_power_of_two_resolutions() {
        let file = pcapng(false);
        let mut r = CaptureReader::new(&file[..]).expect("header");
        if let Kind::Pcapng { interfaces } = &mut r.kind {
            interfaces.push(Interface {
                name: None,
                linktype: 1,
                resolution: (10, 6),
                offset_secs: 1,
            });
            interfaces.push(Interface {
                name: None,
                linktype: 1,
                resolution: (2, 1),
                offset_secs: 0,
            });
        }
        // The header alone was read: only the two interfaces pushed here exist.
        assert_eq!(r.interface_time(0, 3), Some((1, 1_000_003_000)));
        assert_eq!(r.interface_time(1, 3), Some((1, 1_500_000_000)));
        assert_eq!(r.interface_time(2, 3), None);
    }
}
