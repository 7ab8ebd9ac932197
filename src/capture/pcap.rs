//! Encodes classic libpcap files (nanosecond magic, LINKTYPE_RAW) for tools that predate pcapng.
//!
//! Classic pcap has no interfaces, directions or comments: those exist only in pcapng captures.

use super::batch::Batch;
use super::flow::Record;

/// Nanosecond-resolution magic, written in our (little-endian) byte order.
const MAGIC_NANOS: u32 = 0xa1b2_3c4d;
const LINKTYPE_RAW: u32 = 101;
/// Larger than any packet we build (IPv4 total length is 16-bit).
const SNAPLEN: u32 = 262_144;

/// The 24-byte file header.
pub(crate) fn file_header(out: &mut Vec<u8>) {
    out.extend_from_slice(&MAGIC_NANOS.to_le_bytes());
    out.extend_from_slice(&2u16.to_le_bytes());
    out.extend_from_slice(&4u16.to_le_bytes());
    out.extend_from_slice(&0i32.to_le_bytes()); // thiszone
    out.extend_from_slice(&0u32.to_le_bytes()); // sigfigs
    out.extend_from_slice(&SNAPLEN.to_le_bytes());
    out.extend_from_slice(&LINKTYPE_RAW.to_le_bytes());
}

/// One record: 16-byte header (seconds, nanoseconds, lengths) then the IP packet, whose payload
/// goes into the batch by reference; `payload_sum` is its checksum sum.
pub(crate) fn packet(batch: &mut Batch, record: &Record, payload_sum: u64) {
    let len = record.packet.len() as u32;
    let secs = (record.at_nanos / 1_000_000_000) as u32;
    let nanos = (record.at_nanos % 1_000_000_000) as u32;
    let mut head = Vec::with_capacity(16 + 60);
    head.extend_from_slice(&secs.to_le_bytes());
    head.extend_from_slice(&nanos.to_le_bytes());
    head.extend_from_slice(&len.to_le_bytes());
    head.extend_from_slice(&len.to_le_bytes());
    record.packet.write_headers(&mut head, payload_sum);
    batch.put(&head);
    batch.payload(&record.packet.payload);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_uses_nanosecond_magic_and_raw_ip() {
        let mut out = Vec::new();
        file_header(&mut out);
        assert_eq!(out.len(), 24);
        assert_eq!(&out[..4], &[0x4d, 0x3c, 0xb2, 0xa1]);
        assert_eq!(&out[20..], &101u32.to_le_bytes());
    }
}
