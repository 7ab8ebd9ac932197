//! Streams packets out of a classic pcap or pcapng file, every section of it, one record at a time, tolerating damage.
//!
//! Framing is the `pcap-file` crate's: records, blocks, section headers (each with its own byte
//! order), interface descriptions. This file adds what inspect needs on top: a stream that never
//! stops at a section boundary (merged or concatenated captures are read to their end), interface
//! names and timestamp resolutions per section, packet comments, and damage that is reported, not
//! raised. pcap-file reports timestamps in raw interface units and keeps a simple packet's padding,
//! so both are corrected here from the interface description.
//!
//! Memory is pcap-file's read buffer ([`READ_BUFFER`]) plus the interface table. Damage after a
//! valid header never panics and never errors: the reader stops and [`CaptureReader::damage`] says
//! where and why, so whatever was read before still counts as evidence (a capture whose last record
//! was cut by `kill -9` yields every complete packet).

use std::cell::Cell;
use std::io::{self, Chain, Cursor, Read};
use std::rc::Rc;

use byteorder_slice::{BigEndian, LittleEndian};
use pcap_file::pcap::PcapReader;
use pcap_file::pcapng::blocks::enhanced_packet::EnhancedPacketOption;
use pcap_file::pcapng::blocks::interface_description::{
    InterfaceDescriptionBlock, InterfaceDescriptionOption,
};
use pcap_file::pcapng::blocks::interface_statistics::InterfaceStatisticsOption;
use pcap_file::pcapng::blocks::packet::PacketOption;
use pcap_file::pcapng::blocks::section_header::{SectionHeaderBlock, SectionHeaderOption};
use pcap_file::pcapng::{Block, PcapNgReader};
use pcap_file::{Endianness, PcapError, TsResolution};
use thiserror::Error;

use crate::capture::pcapng::{SNAPSHOT_COMMENT, UNFINISHED_STATE};

/// pcap-file's read buffer: a record (pcap packet or pcapng block) must fit in it. Real packets are
/// far smaller; a larger length field means the file is damaged, and refusing it bounds memory.
pub const READ_BUFFER: usize = 8_000_000;

const PCAPNG_SHB: u32 = 0x0A0D_0D0A;
const PCAPNG_BOM: u32 = 0x1A2B_3C4D;
const PCAP_MAGICS: [u32; 2] = [0xa1b2_c3d4, 0xa1b2_3c4d];

/// Interfaces kept per section: a damaged file declaring millions must not exhaust memory.
const MAX_INTERFACES: usize = 65_536;

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
    /// A classic pcap file header that cannot be used.
    #[error("damaged pcap file header: {0}")]
    BadPcapHeader(String),
    /// A compressed file (Wireshark writes and reads `.pcapng.gz`, `.zst`, `.lz4`): gzip is
    /// uncompressed before this reader (`gzip_input`), so this names the other formats (or gzip
    /// inside gzip), with the command that uncompresses them.
    #[error("{format}-compressed (starts with {magic}), not a pcap or pcapng file: {how} first")]
    Compressed {
        /// gzip, zstd, xz, bzip2 or lz4.
        format: &'static str,
        /// The first four bytes, hex.
        magic: String,
        /// The command that uncompresses it.
        how: &'static str,
    },
}

/// Compressed formats by their leading bytes: (magic, format, how to uncompress).
const COMPRESSED: [(&[u8], &str, &str); 5] = [
    (&[0x1f, 0x8b], "gzip", "gunzip it"),
    (&[0x28, 0xb5, 0x2f, 0xfd], "zstd", "unzstd it"),
    (&[0xfd, 0x37, 0x7a, 0x58], "xz", "unxz it"),
    (&[0x42, 0x5a, 0x68], "bzip2", "bunzip2 it"),
    (&[0x04, 0x22, 0x4d, 0x18], "lz4", "unlz4 it"),
];

/// The error for a file of unknown leading bytes `magic`: compressed when it says so.
fn unknown_magic(magic: [u8; 4]) -> FormatError {
    let hex = hex::encode(magic);
    match COMPRESSED.iter().find(|(m, _, _)| magic.starts_with(m)) {
        Some(&(_, format, how)) => FormatError::Compressed {
            format,
            magic: hex,
            how,
        },
        None => FormatError::UnknownMagic(hex),
    }
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
    /// pcapng section the packet belongs to (0 for the first; always 0 in classic pcap). A TCP
    /// flow never continues into another section: each is a capture of its own.
    pub section: u32,
    /// pcapng interface name (`if_name`), e.g. faultline's "client leg"; `None` in classic pcap.
    pub interface: Option<&'a str>,
    /// pcapng packet comment(s) (`opt_comment`, several joined by "; ").
    pub comment: Option<&'a str>,
    /// Link type of the packet's interface (LINKTYPE_*).
    pub linktype: u32,
    /// The captured bytes (possibly shorter than on the wire, if a snap length applied).
    pub data: &'a [u8],
    /// True when fewer bytes were captured than crossed the wire (the record's original length
    /// is larger: a snap length cut it), so some of its payload is missing.
    pub truncated: bool,
    /// TLS key log text from the Decryption Secrets Blocks read since the previous packet
    /// (pcapng DSB, secrets type TLSK), for the TLS flows they decrypt; empty without one.
    pub secrets: &'a [u8],
}

#[derive(Debug, Clone)]
struct Interface {
    name: Option<String>,
    linktype: u32,
    /// Timestamp units per second as (base, exponent): base^-exponent seconds.
    resolution: (u8, u8),
    offset_secs: i64,
}

impl Interface {
    fn from_block(idb: &InterfaceDescriptionBlock<'_>) -> Interface {
        let mut iface = Interface {
            name: None,
            linktype: u32::from(idb.linktype),
            resolution: (10, 6),
            offset_secs: 0,
        };
        for option in &idb.options {
            match option {
                InterfaceDescriptionOption::IfName(name) => iface.name = Some(name.to_string()),
                InterfaceDescriptionOption::IfTsResol(v) => {
                    iface.resolution = if v & 0x80 != 0 {
                        (2, v & 0x7f)
                    } else {
                        (10, *v)
                    };
                }
                InterfaceDescriptionOption::IfTsOffset(secs) => {
                    iface.offset_secs = i64::from_ne_bytes(secs.to_ne_bytes());
                }
                _ => {}
            }
        }
        iface
    }

    /// `units` of this interface's resolution, plus its offset, in nanoseconds since the epoch.
    fn nanos(&self, units: u64) -> u64 {
        let (base, exp) = self.resolution;
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
        let offset = i128::from(self.offset_secs) * 1_000_000_000;
        (nanos as i128)
            .saturating_add(offset)
            .clamp(0, i128::from(u64::MAX)) as u64
    }
}

/// Bytes handed to pcap-file so far, and whether the input has ended: tells a cut last record
/// (the input ended) from a record too large for the read buffer (it did not).
#[derive(Debug, Default)]
struct Tally {
    bytes: Cell<u64>,
    ended: Cell<bool>,
}

/// The input as pcap-file reads it: the magic already read, then the rest, counted.
struct Counted<R> {
    inner: Chain<Cursor<Vec<u8>>, R>,
    tally: Rc<Tally>,
}

impl<R: Read> Read for Counted<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.tally.bytes.set(self.tally.bytes.get() + n as u64);
        if n == 0 && !buf.is_empty() {
            self.tally.ended.set(true);
        }
        Ok(n)
    }
}

enum Source<R: Read> {
    Pcap {
        reader: PcapReader<Counted<R>>,
        nanos: bool,
        linktype: u32,
    },
    Pcapng {
        reader: PcapNgReader<Counted<R>>,
    },
}

/// Where reading stands, apart from the pcap-file reader (so both can be borrowed at once).
#[derive(Debug, Default)]
struct Progress {
    /// Bytes of complete records (and headers) consumed.
    position: u64,
    packets: u64,
    section: u32,
    damage: Option<String>,
    done: bool,
    comment: String,
    /// The current packet's bytes: copied out of pcap-file's buffer, so that no borrow of the
    /// reader outlives one step (one copy of each packet, as the hand-written reader made).
    data: Vec<u8>,
    /// Key log text of the Decryption Secrets Blocks since the previous packet.
    secrets: Vec<u8>,
    /// Section header comments (`opt_comment`), in file order, at most [`MAX_SECTION_COMMENTS`].
    section_comments: Vec<String>,
    /// The current section says faultline never finished it ([`UNFINISHED_STATE`]), whether
    /// snapshot marks closed it since, and the first section left unfinished.
    said_unfinished: bool,
    closed: bool,
    unclosed_section: Option<u32>,
    /// The closing blocks say the file is a snapshot of a capture still being written.
    snapshot: bool,
}

/// Section comments kept: a damaged or hostile file may declare a section per block.
const MAX_SECTION_COMMENTS: usize = 64;

/// Keeps the comments of a section header (faultline writes `faultline VERSION; scenario ...`).
fn keep_section_comments(all: &mut Vec<String>, shb: &SectionHeaderBlock<'_>) {
    for option in &shb.options {
        if let SectionHeaderOption::Comment(text) = option {
            if all.len() < MAX_SECTION_COMMENTS {
                all.push(text.to_string());
            }
        }
    }
}

/// Whether a section header says its capture was never finished: faultline writes
/// [`UNFINISHED_STATE`] there and overwrites it with `FINISHED_STATE` when the run ends.
fn never_finished(shb: &SectionHeaderBlock<'_>) -> bool {
    shb.options.iter().any(
        |option| matches!(option, SectionHeaderOption::Comment(text) if text == UNFINISHED_STATE),
    )
}

impl Progress {
    /// A section begins: the one before, if faultline never finished it, was cut short.
    fn begin_section(&mut self, shb: &SectionHeaderBlock<'_>) {
        self.end_section();
        self.said_unfinished = never_finished(shb);
        self.closed = false;
    }

    /// The current section ends (another begins, or the file does).
    fn end_section(&mut self) {
        if self.said_unfinished && !self.closed && self.unclosed_section.is_none() {
            self.unclosed_section = Some(self.section);
        }
    }

    /// The end of the file: a faultline capture never closed is reported as cut short, like a
    /// file whose last record is cut (its transfers in flight then are missing, not clean).
    fn end_of_file(&mut self) {
        self.done = true;
        self.end_section();
        if self.damage.is_none() {
            if let Some(section) = self.unclosed_section {
                let which = match self.section {
                    0 => String::new(),
                    _ => format!(" (section {})", section + 1),
                };
                self.damage = Some(format!(
                    "faultline never finished this capture{which} (its run was killed, e.g. with kill -9, or is still writing it): transfers in flight at its end are missing"
                ));
            }
        }
    }

    fn stop(&mut self, why: String) {
        self.done = true;
        self.damage = Some(why);
    }

    /// Records why pcap-file could not give the record starting at `self.position`.
    fn fail(&mut self, what: &str, error: PcapError, tally: &Tally) {
        let at = self.position;
        let why = match error {
            PcapError::IoError(e) if e.kind() == io::ErrorKind::UnexpectedEof => {
                if tally.ended.get() {
                    let present = tally.bytes.get().saturating_sub(at);
                    format!(
                        "capture cut inside a {what} at byte {at}: the file ends {present} bytes later"
                    )
                } else {
                    format!(
                        "{what} at byte {at} is larger than {READ_BUFFER} bytes: the file is damaged"
                    )
                }
            }
            PcapError::IoError(e) => format!("read error at byte {at}: {e}"),
            PcapError::Utf8Error(_) | PcapError::FromUtf8Error(_) => {
                format!("damaged {what} at byte {at}: a name or comment is not UTF-8")
            }
            other => format!("damaged {what} at byte {at}: {other}"),
        };
        self.stop(why);
    }
}

/// A streaming reader over any `Read` (wrap files in a `BufReader`).
pub struct CaptureReader<R: Read> {
    source: Source<R>,
    tally: Rc<Tally>,
    progress: Progress,
    /// The current section's interfaces (pcapng).
    interfaces: Vec<Interface>,
}

/// Outcome of trying to read exactly `n` bytes.
enum Fill {
    Full,
    /// Some bytes (possibly none), then end of file.
    Short(usize),
}

fn read_full(input: &mut impl Read, buf: &mut [u8]) -> io::Result<Fill> {
    let mut got = 0;
    while got < buf.len() {
        match input.read(&mut buf[got..]) {
            Ok(0) => return Ok(Fill::Short(got)),
            Ok(n) => got += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(Fill::Full)
}

/// A header error from pcap-file, in this module's words.
fn header_error(error: PcapError, tally: &Tally, pcapng: bool) -> FormatError {
    match error {
        PcapError::IoError(e) if e.kind() == io::ErrorKind::UnexpectedEof => {
            FormatError::TooShort(tally.bytes.get() as usize)
        }
        PcapError::IoError(e) => FormatError::Io(e),
        other if pcapng => FormatError::BadSectionHeader(other.to_string()),
        other => FormatError::BadPcapHeader(other.to_string()),
    }
}

impl<R: Read> CaptureReader<R> {
    /// Reads and checks the file header (pcap) or first section header (pcapng).
    pub fn new(mut input: R) -> Result<Self, FormatError> {
        let mut head = vec![0u8; 4];
        if let Fill::Short(got) = read_full(&mut input, &mut head)? {
            return Err(FormatError::TooShort(got));
        }
        let magic = [head[0], head[1], head[2], head[3]];
        let le = u32::from_le_bytes(magic);
        let be = u32::from_be_bytes(magic);
        let mut position = 24; // a classic pcap file header
        if le == PCAPNG_SHB {
            // Length and byte-order magic, to count the first section header's bytes.
            head.resize(12, 0);
            if let Fill::Short(got) = read_full(&mut input, &mut head[4..])? {
                return Err(FormatError::TooShort(4 + got));
            }
            position = section_header_len(&head);
        }
        let tally = Rc::new(Tally::default());
        let mut section_comments = Vec::new();
        let mut said_unfinished = false;
        let counted = Counted {
            inner: Cursor::new(head).chain(input),
            tally: tally.clone(),
        };
        let source = if le == PCAPNG_SHB {
            let reader = PcapNgReader::new(counted).map_err(|e| header_error(e, &tally, true))?;
            keep_section_comments(&mut section_comments, reader.section());
            said_unfinished = never_finished(reader.section());
            Source::Pcapng { reader }
        } else if PCAP_MAGICS.contains(&le) || PCAP_MAGICS.contains(&be) {
            let reader = PcapReader::new(counted).map_err(|e| header_error(e, &tally, false))?;
            let header = reader.header();
            Source::Pcap {
                nanos: header.ts_resolution == TsResolution::NanoSecond,
                // The upper bits of the link-type field carry FCS information in some writers.
                linktype: u32::from(header.datalink) & 0x0fff_ffff,
                reader,
            }
        } else {
            return Err(unknown_magic(magic));
        };
        Ok(CaptureReader {
            source,
            tally,
            progress: Progress {
                position,
                section_comments,
                said_unfinished,
                ..Progress::default()
            },
            interfaces: Vec::new(),
        })
    }

    /// The file format found in the header.
    pub fn format(&self) -> FileFormat {
        match self.source {
            Source::Pcap { .. } => FileFormat::Pcap,
            Source::Pcapng { .. } => FileFormat::Pcapng,
        }
    }

    /// Why reading stopped early (a cut last record, an impossible length, an I/O error), if it did.
    pub fn damage(&self) -> Option<&str> {
        self.progress.damage.as_deref()
    }

    /// Packets returned so far.
    pub fn packets(&self) -> u64 {
        self.progress.packets
    }

    /// The comments of the pcapng section headers read so far, in file order (none in classic
    /// pcap): faultline names its version, scenario, seed and command line there.
    pub fn section_comments(&self) -> &[String] {
        &self.progress.section_comments
    }

    /// True when the file is a copy of a capture served while it was being written (its closing
    /// blocks say so): transfers in flight at its end were cut by the copy, not by a fault.
    pub fn is_snapshot(&self) -> bool {
        self.progress.snapshot
    }

    /// pcapng sections seen so far (1 for a classic pcap).
    pub fn sections(&self) -> u32 {
        self.progress.section + 1
    }

    /// The next packet, or `None` at the end of the file or at the first damage (see [`Self::damage`]).
    pub fn next_packet(&mut self) -> Option<Packet<'_>> {
        let progress = &mut self.progress;
        let interfaces = &mut self.interfaces;
        let tally = &*self.tally;
        progress.secrets.clear();
        while !progress.done {
            // (interface index, timestamp units or nanoseconds, link type); the bytes go to
            // `progress.data`, so no borrow of the reader leaves this step.
            let (interface, when, linktype, original) = match &mut self.source {
                Source::Pcap {
                    reader,
                    nanos,
                    linktype,
                } => {
                    let raw = match reader.next_raw_packet() {
                        None => {
                            progress.done = true;
                            return None;
                        }
                        Some(Err(e)) => {
                            progress.fail("pcap record", e, tally);
                            return None;
                        }
                        Some(Ok(raw)) => raw,
                    };
                    progress.position += 16 + u64::from(raw.incl_len);
                    let frac = u64::from(raw.ts_frac);
                    let ts_nanos = u64::from(raw.ts_sec)
                        .saturating_mul(1_000_000_000)
                        .saturating_add(if *nanos {
                            frac
                        } else {
                            frac.saturating_mul(1000)
                        });
                    progress.data.clear();
                    progress.data.extend_from_slice(&raw.data);
                    (None, ts_nanos, *linktype, u64::from(raw.orig_len))
                }
                Source::Pcapng { reader } => {
                    let big = reader.section().endianness == Endianness::Big;
                    let raw = match reader.next_raw_block() {
                        None => {
                            progress.end_of_file();
                            return None;
                        }
                        Some(Err(e)) => {
                            progress.fail("pcapng block", e, tally);
                            return None;
                        }
                        Some(Ok(raw)) => raw,
                    };
                    let start = progress.position;
                    progress.position += u64::from(raw.initial_len);
                    // pcap-file has already switched sections for a section header; any other
                    // block is in the byte order of the section it belongs to.
                    let parsed = if big {
                        raw.try_into_block::<BigEndian>()
                    } else {
                        raw.try_into_block::<LittleEndian>()
                    };
                    let block = match parsed {
                        Ok(block) => block,
                        Err(e) => {
                            progress.position = start;
                            progress.fail("pcapng block", e, tally);
                            return None;
                        }
                    };
                    progress.comment.clear();
                    let (index, units, data, original) = match &block {
                        Block::SectionHeader(shb) => {
                            keep_section_comments(&mut progress.section_comments, shb);
                            progress.begin_section(shb);
                            progress.section += 1;
                            interfaces.clear();
                            continue;
                        }
                        Block::InterfaceDescription(idb) => {
                            if interfaces.len() < MAX_INTERFACES {
                                interfaces.push(Interface::from_block(idb));
                            }
                            continue;
                        }
                        Block::EnhancedPacket(epb) => {
                            for option in &epb.options {
                                if let EnhancedPacketOption::Comment(text) = option {
                                    add_comment(&mut progress.comment, text);
                                }
                            }
                            let units = u64::try_from(epb.timestamp.as_nanos()).unwrap_or(u64::MAX);
                            let original = u64::from(epb.original_len);
                            (epb.interface_id as usize, units, &epb.data[..], original)
                        }
                        Block::Packet(pb) => {
                            for option in &pb.options {
                                if let PacketOption::Comment(text) = option {
                                    add_comment(&mut progress.comment, text);
                                }
                            }
                            let original = u64::from(pb.original_len);
                            (
                                usize::from(pb.interface_id),
                                pb.timestamp,
                                &pb.data[..],
                                original,
                            )
                        }
                        Block::SimplePacket(spb) => {
                            // The block's body is the packet plus padding: keep the packet.
                            let len = (spb.original_len as usize).min(spb.data.len());
                            (0, 0, &spb.data[..len], u64::from(spb.original_len))
                        }
                        Block::InterfaceStatistics(isb) => {
                            for option in &isb.options {
                                if let InterfaceStatisticsOption::Comment(text) = option {
                                    if text == SNAPSHOT_COMMENT {
                                        progress.closed = true;
                                        progress.snapshot = true;
                                    }
                                }
                            }
                            continue;
                        }
                        Block::Unknown(unknown) if unknown.type_ == DECRYPTION_SECRETS => {
                            if let Some(text) = tls_key_log(&unknown.value, big) {
                                if progress.secrets.len() + text.len() <= MAX_SECRETS {
                                    progress.secrets.extend_from_slice(text);
                                }
                            }
                            continue;
                        }
                        _ => continue,
                    };
                    let Some(iface) = interfaces.get(index) else {
                        if interfaces.len() >= MAX_INTERFACES {
                            // Beyond the interfaces kept: skipped, the file is not damaged.
                            continue;
                        }
                        // tshark refuses such a file too; skipping its packets in silence made
                        // a damaged capture read as a clean one.
                        progress.position = start;
                        progress.stop(format!(
                            "damaged pcapng block at byte {start}: a packet names interface {index}, but its section describes {} interface(s)",
                            interfaces.len()
                        ));
                        return None;
                    };
                    progress.data.clear();
                    progress.data.extend_from_slice(data);
                    (Some(index), iface.nanos(units), iface.linktype, original)
                }
            };
            progress.packets += 1;
            let progress = &*progress;
            return Some(Packet {
                ts_nanos: when,
                section: progress.section,
                interface: interface.and_then(|i| interfaces.get(i)?.name.as_deref()),
                comment: (!progress.comment.is_empty()).then_some(progress.comment.as_str()),
                linktype,
                data: &progress.data,
                truncated: original > progress.data.len() as u64,
                secrets: &progress.secrets,
            });
        }
        None
    }
}

/// pcapng block type of a Decryption Secrets Block.
const DECRYPTION_SECRETS: u32 = 0x0000_000A;
/// Key log text kept between two packets at most (a real capture holds a few hundred bytes).
const MAX_SECRETS: usize = 16 * 1024 * 1024;

/// The NSS key log text of a Decryption Secrets Block body (secrets type "TLSK"), in the byte
/// order of its section; `None` for other secrets types or a body cut short.
fn tls_key_log(body: &[u8], big: bool) -> Option<&[u8]> {
    let word = |at: usize| -> Option<u32> {
        let bytes: [u8; 4] = body.get(at..at + 4)?.try_into().ok()?;
        Some(if big {
            u32::from_be_bytes(bytes)
        } else {
            u32::from_le_bytes(bytes)
        })
    };
    if word(0)? != 0x544C_534B {
        return None;
    }
    let len = usize::try_from(word(4)?).ok()?;
    body.get(8..8usize.checked_add(len)?)
}

fn add_comment(all: &mut String, text: &str) {
    if !all.is_empty() {
        all.push_str("; ");
    }
    all.push_str(text);
}

/// A section header's total length from its first 12 bytes (type, length, byte-order magic).
fn section_header_len(head: &[u8]) -> u64 {
    let field = |b: &[u8]| [b[0], b[1], b[2], b[3]];
    let (len, bom) = (field(&head[4..8]), field(&head[8..12]));
    if u32::from_le_bytes(bom) == PCAPNG_BOM {
        u64::from(u32::from_le_bytes(len))
    } else {
        u64::from(u32::from_be_bytes(len))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `gzip -c x.pcapng > x.pcapng.gz` was refused as "not a pcap or pcapng file (starts with
    /// 1f8b0808)": the message now says it is compressed and how to read it. (`inspect` reads
    /// one layer of gzip itself, see `gzip_input`; this reader still names what it is given.)
    #[test]
    fn a_compressed_capture_is_named_with_the_command_that_uncompresses_it() {
        let gzip = [
            0x1f, 0x8b, 0x08, 0x08, 0x4b, 0x3a, 0x2f, 0x67, 0, 3, b'x', 0,
        ];
        let e = CaptureReader::new(&gzip[..]).err().expect("refused");
        assert_eq!(
            e.to_string(),
            "gzip-compressed (starts with 1f8b0808), not a pcap or pcapng file: gunzip it first"
        );
        let zstd = [0x28, 0xb5, 0x2f, 0xfd, 0, 0, 0, 0];
        let e = CaptureReader::new(&zstd[..]).err().expect("refused");
        assert!(e.to_string().starts_with("zstd-compressed"), "{e}");
        let other = *b"GIF89a..";
        let e = CaptureReader::new(&other[..]).err().expect("refused");
        assert_eq!(
            e.to_string(),
            "not a pcap or pcapng file (starts with 47494638)"
        );
    }

    const PCAP_MICROS: u32 = 0xa1b2_c3d4;
    const PCAP_NANOS: u32 = 0xa1b2_3c4d;
    const BLOCK_IDB: u32 = 1;
    const BLOCK_SPB: u32 = 3;
    const BLOCK_EPB: u32 = 6;
    const OPT_END: u16 = 0;
    const OPT_COMMENT: u16 = 1;
    const IF_NAME: u16 = 2;
    const IF_TSRESOL: u16 = 9;

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

    /// An EPB naming an interface no IDB described was skipped in silence: `inspect` said "OK"
    /// for a file tshark calls damaged.
    #[test]
    fn a_packet_on_an_undescribed_interface_is_damage() {
        let good = pcapng(false);
        let mut epb = 7u32.to_le_bytes().to_vec();
        epb.extend_from_slice(&[0; 8]);
        epb.extend_from_slice(&1u32.to_le_bytes());
        epb.extend_from_slice(&1u32.to_le_bytes());
        epb.extend_from_slice(b"x");
        let mut file = good.clone();
        file.extend(block(false, BLOCK_EPB, &epb));
        file.extend_from_slice(&good[28..]);
        let mut r = CaptureReader::new(&file[..]).expect("header");
        let mut n = 0;
        while r.next_packet().is_some() {
            n += 1;
        }
        assert_eq!(n, 2, "the packets before the bad block");
        let damage = r.damage().expect("damage");
        assert!(
            damage.contains(&format!("at byte {}", good.len()))
                && damage.contains("interface 7")
                && damage.contains("describes 1 interface"),
            "{damage}"
        );
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
    fn microsecond_default_power_of_two_resolutions_and_offsets() {
        let iface = |resolution, offset_secs| Interface {
            name: None,
            linktype: 1,
            resolution,
            offset_secs,
        };
        assert_eq!(iface((10, 6), 1).nanos(3), 1_000_003_000);
        assert_eq!(iface((2, 1), 0).nanos(3), 1_500_000_000);
        assert_eq!(iface((10, 12), 0).nanos(3_000), 3);
        assert_eq!(iface((10, 9), -5).nanos(3), 0, "clamped at the epoch");
    }

    #[test]
    fn every_section_of_a_concatenation_is_read_in_either_byte_order() {
        for (first, second) in [(false, false), (false, true), (true, false)] {
            let mut file = pcapng(first);
            file.extend(pcapng(second));
            let mut r = CaptureReader::new(&file[..]).expect("header");
            let mut seen = Vec::new();
            while let Some(p) = r.next_packet() {
                seen.push((p.section, p.interface.map(str::to_owned), p.data.to_vec()));
            }
            assert!(r.damage().is_none(), "{:?}", r.damage());
            assert_eq!(r.sections(), 2);
            assert_eq!(seen.len(), 4, "{seen:?}");
            assert_eq!(seen[2].0, 1);
            assert_eq!(seen[2].1.as_deref(), Some("client leg"));
            assert_eq!(seen[3].2, b"abc");
        }
    }

    #[test]
    fn a_cut_last_block_keeps_every_complete_packet_and_names_the_byte() {
        let mut file = pcapng(false);
        let whole = file.len();
        file.extend(pcapng(false));
        file.truncate(file.len() - 5);
        let mut r = CaptureReader::new(&file[..]).expect("header");
        let mut n = 0;
        while r.next_packet().is_some() {
            n += 1;
        }
        assert_eq!(n, 3, "both packets of section 1, the EPB of section 2");
        let damage = r.damage().expect("damage");
        assert!(damage.contains("cut"), "{damage}");
        let spb_at = file.len() + 5 - 20;
        assert!(
            damage.contains(&format!("at byte {spb_at}")),
            "{damage} (first section: {whole} bytes)"
        );
    }
}

#[cfg(test)]
mod section_comment_tests {
    use super::*;

    /// A little-endian section header block carrying `comment`, then nothing else.
    fn section(comment: &str) -> Vec<u8> {
        let mut body = PCAPNG_BOM.to_le_bytes().to_vec();
        body.extend_from_slice(&1u16.to_le_bytes());
        body.extend_from_slice(&0u16.to_le_bytes());
        body.extend_from_slice(&[0xff; 8]);
        body.extend_from_slice(&1u16.to_le_bytes()); // opt_comment
        body.extend_from_slice(&(comment.len() as u16).to_le_bytes());
        body.extend_from_slice(comment.as_bytes());
        while body.len() % 4 != 0 {
            body.push(0);
        }
        body.extend_from_slice(&[0, 0, 0, 0]); // opt_endofopt
        let len = body.len() as u32 + 12;
        let mut out = PCAPNG_SHB.to_le_bytes().to_vec();
        out.extend_from_slice(&len.to_le_bytes());
        out.extend_from_slice(&body);
        out.extend_from_slice(&len.to_le_bytes());
        out
    }

    #[test]
    fn section_comments_of_every_section_are_kept_in_order() {
        let mut file = section("faultline 0.1.0; scenario a; seed 7; command: faultline demo");
        file.extend(section("second"));
        let mut r = CaptureReader::new(&file[..]).expect("header");
        assert_eq!(
            r.section_comments().len(),
            1,
            "the first, read with the header"
        );
        while r.next_packet().is_some() {}
        assert!(r.damage().is_none(), "{:?}", r.damage());
        assert_eq!(
            r.section_comments(),
            [
                "faultline 0.1.0; scenario a; seed 7; command: faultline demo".to_string(),
                "second".to_string()
            ]
        );
    }
}
