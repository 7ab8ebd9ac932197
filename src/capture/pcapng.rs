//! Encodes the pcapng blocks faultline writes: section header, one interface per leg, packets.
//!
//! Every function appends one complete block to a buffer, so the writer can hand whole records to the
//! file in one `write_all` and a killed process leaves at worst one truncated trailing block.

use super::batch::Batch;
use super::event::Leg;
use super::flow::{PacketDirection, Record};

const SHB: u32 = 0x0A0D_0D0A;
const IDB: u32 = 0x0000_0001;
const EPB: u32 = 0x0000_0006;
const ISB: u32 = 0x0000_0005;
const BYTE_ORDER_MAGIC: u32 = 0x1A2B_3C4D;
const LINKTYPE_RAW: u16 = 101;
const OPT_END: u16 = 0;
const OPT_COMMENT: u16 = 1;
const SHB_USERAPPL: u16 = 4;
const IF_NAME: u16 = 2;
const IF_TSRESOL: u16 = 9;
const EPB_FLAGS: u16 = 2;
/// if_tsresol value: 10^-9 s. Without it readers assume microseconds and dates land in year 55840.
const NANOSECONDS: u8 = 9;

/// Interfaces in the order `interfaces` writes them; EPBs refer to them by this index.
fn interface_id(leg: Leg) -> u32 {
    match leg {
        Leg::Client => 0,
        Leg::Upstream => 1,
    }
}

fn pad4(out: &mut Vec<u8>) {
    while out.len() % 4 != 0 {
        out.push(0);
    }
}

fn option(out: &mut Vec<u8>, code: u16, value: &[u8]) {
    // Option lengths are 16-bit; longer values (absurd comments) are cut rather than corrupting the block.
    let value = &value[..value.len().min(usize::from(u16::MAX) - 3)];
    out.extend_from_slice(&code.to_le_bytes());
    out.extend_from_slice(&(value.len() as u16).to_le_bytes());
    out.extend_from_slice(value);
    pad4(out);
}

/// Writes `block_type`, a length placeholder, lets `body` append, then patches both lengths.
fn block(out: &mut Vec<u8>, block_type: u32, body: impl FnOnce(&mut Vec<u8>)) {
    let start = out.len();
    out.extend_from_slice(&block_type.to_le_bytes());
    out.extend_from_slice(&[0; 4]);
    body(out);
    pad4(out);
    let total = (out.len() - start + 4) as u32;
    out.extend_from_slice(&total.to_le_bytes());
    out[start + 4..start + 8].copy_from_slice(&total.to_le_bytes());
}

/// Section header block whose comments name the run (scenario, seed, command line) and carry
/// its scenario text, one `opt_comment` each.
pub(crate) fn section_header(out: &mut Vec<u8>, comments: &[String], user_appl: &str) {
    block(out, SHB, |out| {
        out.extend_from_slice(&BYTE_ORDER_MAGIC.to_le_bytes());
        out.extend_from_slice(&1u16.to_le_bytes());
        out.extend_from_slice(&0u16.to_le_bytes());
        out.extend_from_slice(&u64::MAX.to_le_bytes()); // section length unknown
        for comment in comments {
            option(out, OPT_COMMENT, comment.as_bytes());
        }
        option(out, SHB_USERAPPL, user_appl.as_bytes());
        option(out, OPT_END, &[]);
    });
}

/// The section comment of a capture being written: the writer overwrites it in place with
/// [`FINISHED_STATE`] (the same length) when its run ends. A process killed with SIGKILL
/// leaves only whole blocks (each is written in one piece), so without this mark such a capture,
/// or one still being written, read as finished and clean. A mark in the section header, not a
/// block at the end: `editcap` and Wireshark copy section comments, and drop statistics blocks.
pub(crate) const UNFINISHED_STATE: &str =
    "faultline capture state: UNFINISHED (its run is still writing it, or was killed)";

/// [`UNFINISHED_STATE`] once the run ended and closed the capture: as long, padded with spaces.
pub(crate) const FINISHED_STATE: &str =
    "faultline capture state: FINISHED (its run ended and closed it)                 ";

/// Comment of the blocks that end a copy served while the run goes on
/// (`GET /faultline/proxies/{name}/capture`): whole, but transfers in flight are cut by its end.
pub(crate) const SNAPSHOT_COMMENT: &str = "faultline: snapshot of a capture still being written";

/// One interface statistics block per leg, marking the end of a snapshot of a capture still being
/// written ([`SNAPSHOT_COMMENT`]).
pub(crate) fn snapshot_blocks(out: &mut Vec<u8>, at_nanos: u64) {
    for leg in [Leg::Client, Leg::Upstream] {
        block(out, ISB, |out| {
            out.extend_from_slice(&interface_id(leg).to_le_bytes());
            out.extend_from_slice(&((at_nanos >> 32) as u32).to_le_bytes());
            out.extend_from_slice(&(at_nanos as u32).to_le_bytes());
            option(out, OPT_COMMENT, SNAPSHOT_COMMENT.as_bytes());
            option(out, OPT_END, &[]);
        });
    }
}

/// One interface description per leg kind, so `frame.interface_name` selects a leg.
pub(crate) fn interfaces(out: &mut Vec<u8>) {
    for leg in [Leg::Client, Leg::Upstream] {
        block(out, IDB, |out| {
            out.extend_from_slice(&LINKTYPE_RAW.to_le_bytes());
            out.extend_from_slice(&0u16.to_le_bytes());
            out.extend_from_slice(&0u32.to_le_bytes()); // no snap length limit
            option(out, IF_NAME, leg.to_string().as_bytes());
            option(out, IF_TSRESOL, &[NANOSECONDS]);
            option(out, OPT_END, &[]);
        });
    }
}

/// Length of an option holding `value_len` bytes, padding included.
fn option_len(value_len: usize) -> usize {
    4 + value_len.min(usize::from(u16::MAX) - 3).next_multiple_of(4)
}

/// One enhanced packet block: nanosecond timestamp, direction flags, optional fault comment. The
/// payload goes into the batch by reference; `payload_sum` is its checksum sum (see `packet`).
pub(crate) fn packet(batch: &mut Batch, record: &Record, payload_sum: u64) {
    let packet = &record.packet;
    let len = packet.len();
    let comment = record.comment.as_deref().map(str::as_bytes);
    // Block type, total length, interface, timestamp (2), captured and original length; the
    // packet padded to 4; flags; comment; end of options; total length again.
    let total = 28
        + len.next_multiple_of(4)
        + option_len(4)
        + comment.map_or(0, |c| option_len(c.len()))
        + 4
        + 4;
    let mut head = Vec::with_capacity(28 + 60);
    head.extend_from_slice(&EPB.to_le_bytes());
    head.extend_from_slice(&(total as u32).to_le_bytes());
    head.extend_from_slice(&interface_id(record.leg).to_le_bytes());
    head.extend_from_slice(&((record.at_nanos >> 32) as u32).to_le_bytes());
    head.extend_from_slice(&(record.at_nanos as u32).to_le_bytes());
    head.extend_from_slice(&(len as u32).to_le_bytes());
    head.extend_from_slice(&(len as u32).to_le_bytes());
    packet.write_headers(&mut head, payload_sum);
    batch.put(&head);
    batch.payload(&packet.payload);
    let padding = len.next_multiple_of(4) - len;
    batch.put(&[0; 3][..padding]);
    // Options are padded relative to the start of `tail`, which is 4-aligned in the block.
    let mut tail = Vec::with_capacity(32 + comment.map_or(0, <[u8]>::len));
    let direction: u32 = match record.direction {
        PacketDirection::Inbound => 0b01,
        PacketDirection::Outbound => 0b10,
    };
    option(&mut tail, EPB_FLAGS, &direction.to_le_bytes());
    if let Some(comment) = comment {
        option(&mut tail, OPT_COMMENT, comment);
    }
    option(&mut tail, OPT_END, &[]);
    tail.extend_from_slice(&(total as u32).to_le_bytes());
    debug_assert_eq!(
        head.len() + packet.payload.len() + padding + tail.len(),
        total
    );
    batch.put(&tail);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn u32_at(b: &[u8], at: usize) -> u32 {
        u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
    }

    /// Walks blocks by their leading length and checks the trailing copy matches.
    fn blocks(b: &[u8]) -> Vec<u32> {
        let mut types = Vec::new();
        let mut at = 0;
        while at < b.len() {
            let len = u32_at(b, at + 4) as usize;
            assert_eq!(len % 4, 0);
            assert_eq!(u32_at(b, at + len - 4) as usize, len);
            types.push(u32_at(b, at));
            at += len;
        }
        assert_eq!(at, b.len());
        types
    }

    #[test]
    fn header_blocks_are_well_formed() {
        let mut out = Vec::new();
        section_header(
            &mut out,
            &["faultline 0.1.0; scenario x; seed 7; command: faultline run".to_string()],
            "faultline",
        );
        interfaces(&mut out);
        assert_eq!(blocks(&out), vec![SHB, IDB, IDB]);
        // Two comments (the run, then its scenario text) in one well-formed block.
        let mut two = Vec::new();
        section_header(&mut two, &["a".to_string(), "b\nc".repeat(100)], "f");
        assert_eq!(blocks(&two), vec![SHB]);
        assert_eq!(u32_at(&out, 8), BYTE_ORDER_MAGIC);
    }

    #[test]
    fn the_finished_mark_fits_where_the_unfinished_one_was() {
        assert_eq!(UNFINISHED_STATE.len(), FINISHED_STATE.len());
    }

    #[test]
    fn snapshot_blocks_are_one_well_formed_statistics_block_per_leg() {
        let mut out = Vec::new();
        snapshot_blocks(&mut out, 1_700_000_000_000_000_000);
        assert_eq!(blocks(&out), vec![ISB, ISB]);
        assert_eq!(u32_at(&out, 8), 0, "the client leg's interface");
        let second = u32_at(&out, 4) as usize;
        assert_eq!(u32_at(&out, second + 8), 1, "the upstream leg's interface");
    }

    #[test]
    fn packet_blocks_are_well_formed_with_and_without_comments() {
        use crate::capture::event::Leg;
        use crate::capture::packet::{flags, payload_sum, TcpPacket};
        for (payload_len, comment) in [(0, None), (5, Some("odd")), (4000, Some("fault: x"))] {
            let payload = bytes::Bytes::from(vec![9u8; payload_len]);
            let record = Record {
                leg: Leg::Upstream,
                direction: PacketDirection::Outbound,
                at_nanos: 1_790_000_000_000_000_000,
                packet: TcpPacket {
                    src: "127.0.0.1:1".parse().expect("addr"),
                    dst: "127.0.0.1:2".parse().expect("addr"),
                    seq: 1,
                    ack: 2,
                    flags: flags::ACK,
                    ip_id: 3,
                    payload: payload.clone(),
                },
                comment: comment.map(String::from),
            };
            let mut batch = Batch::default();
            packet(&mut batch, &record, payload_sum(&payload));
            let bytes: Vec<u8> = batch.take().concat();
            assert_eq!(blocks(&bytes), vec![EPB]);
            assert_eq!(u32_at(&bytes, 20) as usize, 40 + payload_len);
        }
    }

    #[test]
    fn option_values_are_padded_to_four_bytes() {
        let mut out = Vec::new();
        option(&mut out, OPT_COMMENT, b"abcde");
        assert_eq!(out.len(), 4 + 8);
        assert_eq!(&out[2..4], &5u16.to_le_bytes());
    }
}
