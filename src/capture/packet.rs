//! Builds raw IPv4/IPv6 + TCP packets (LINKTYPE_RAW) with valid checksums.

use std::net::{IpAddr, SocketAddr};

use bytes::Bytes;

/// Largest payload per segment: as large as IPv4's 16-bit total length allows (65535 minus a 20-byte
/// IP and a 20-byte TCP header), far above a wire MSS, so a bulk transfer costs half the packets
/// (and headers, and per-packet work) that 32 KiB segments did. IPv6's length field excludes its own
/// header, so the same MSS fits there too. Only SYNs carry options, and they carry no payload.
pub(crate) const MSS: usize = 65535 - IPV4_HEADER - TCP_HEADER;
/// Window scale shift advertised in both SYNs: lets the peer keep megabytes in flight, as real
/// stacks do, so tshark never reports a full window between our ACKs.
pub(crate) const WINDOW_SHIFT: u8 = 7;
/// Raw window field of every segment (unscaled in SYNs, scaled by `WINDOW_SHIFT` afterwards).
const WINDOW: u16 = 65535;
const TTL: u8 = 64;
const IPV4_HEADER: usize = 20;
const IPV6_HEADER: usize = 40;
const TCP_HEADER: usize = 20;
/// MSS option (4 bytes) + NOP + window scale option (3 bytes).
const SYN_OPTIONS: usize = 8;
const PROTO_TCP: u8 = 6;

/// TCP flag bits, in header order.
pub(crate) mod flags {
    pub(crate) const FIN: u8 = 0x01;
    pub(crate) const SYN: u8 = 0x02;
    pub(crate) const RST: u8 = 0x04;
    pub(crate) const PSH: u8 = 0x08;
    pub(crate) const ACK: u8 = 0x10;
}

/// One TCP segment to put on the (synthetic) wire; addresses of one family (see `flow`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct TcpPacket {
    pub(crate) src: SocketAddr,
    pub(crate) dst: SocketAddr,
    pub(crate) seq: u32,
    pub(crate) ack: u32,
    pub(crate) flags: u8,
    pub(crate) ip_id: u16,
    pub(crate) payload: Bytes,
}

impl TcpPacket {
    fn ip_header_len(&self) -> usize {
        match self.src.ip() {
            IpAddr::V4(_) => IPV4_HEADER,
            IpAddr::V6(_) => IPV6_HEADER,
        }
    }

    fn tcp_header_len(&self) -> usize {
        if self.flags & flags::SYN != 0 {
            TCP_HEADER + SYN_OPTIONS
        } else {
            TCP_HEADER
        }
    }

    /// Length of the IP packet `write_to` produces, so record headers can be written first.
    pub(crate) fn len(&self) -> usize {
        self.ip_header_len() + self.tcp_header_len() + self.payload.len()
    }

    /// Appends the whole IP packet (headers and payload) to `out`, checksums filled in.
    #[cfg(test)]
    pub(crate) fn write_to(&self, out: &mut Vec<u8>) {
        self.write_headers(out, payload_sum(&self.payload));
        out.extend_from_slice(&self.payload);
    }

    /// Appends the IP and TCP headers to `out`, checksums filled in; the payload itself is the
    /// caller's to append (or to hand to `writev` without copying). `payload_sum` is
    /// [`payload_sum`] of the payload, which the caller may have computed once for two legs.
    pub(crate) fn write_headers(&self, out: &mut Vec<u8>, payload_sum: u64) {
        let start = out.len();
        let tcp_len = self.tcp_header_len() + self.payload.len();
        out.reserve(self.len() - self.payload.len());
        let pseudo = match (self.src.ip(), self.dst.ip()) {
            (IpAddr::V4(s), IpAddr::V4(d)) => {
                out.push(0x45);
                out.push(0);
                out.extend_from_slice(&(self.len() as u16).to_be_bytes());
                out.extend_from_slice(&self.ip_id.to_be_bytes());
                out.extend_from_slice(&0x4000u16.to_be_bytes()); // DF
                out.push(TTL);
                out.push(PROTO_TCP);
                out.extend_from_slice(&[0, 0]);
                out.extend_from_slice(&s.octets());
                out.extend_from_slice(&d.octets());
                let sum = fold(sum_words(&out[start..start + IPV4_HEADER], 0));
                out[start + 10..start + 12].copy_from_slice(&(!sum).to_be_bytes());
                let mut p = sum_words(&s.octets(), 0);
                p = sum_words(&d.octets(), p);
                p + u64::from(PROTO_TCP) + tcp_len as u64
            }
            (src, dst) => {
                let s = to_v6(src).octets();
                let d = to_v6(dst).octets();
                out.extend_from_slice(&0x6000_0000u32.to_be_bytes());
                out.extend_from_slice(&(tcp_len as u16).to_be_bytes());
                out.push(PROTO_TCP);
                out.push(TTL);
                out.extend_from_slice(&s);
                out.extend_from_slice(&d);
                let mut p = sum_words(&s, 0);
                p = sum_words(&d, p);
                p + u64::from(PROTO_TCP) + tcp_len as u64
            }
        };
        let tcp_start = out.len();
        out.extend_from_slice(&self.src.port().to_be_bytes());
        out.extend_from_slice(&self.dst.port().to_be_bytes());
        out.extend_from_slice(&self.seq.to_be_bytes());
        out.extend_from_slice(&self.ack.to_be_bytes());
        out.push(((self.tcp_header_len() / 4) as u8) << 4);
        out.push(self.flags);
        out.extend_from_slice(&WINDOW.to_be_bytes());
        out.extend_from_slice(&[0, 0, 0, 0]); // checksum, urgent pointer
        if self.flags & flags::SYN != 0 {
            out.extend_from_slice(&[2, 4]);
            out.extend_from_slice(&(MSS as u16).to_be_bytes());
            out.extend_from_slice(&[1, 3, 3, WINDOW_SHIFT]);
        }
        // The header has an even length, so the payload's words line up with a sum taken apart.
        let sum = fold(add(sum_words(&out[tcp_start..], pseudo), payload_sum));
        out[tcp_start + 16..tcp_start + 18].copy_from_slice(&(!sum).to_be_bytes());
    }
}

/// The one's complement sum of a payload, to pass to [`TcpPacket::write_headers`]: the hottest
/// loop of the capture, so the writer computes it once per segment even when both legs carry it.
pub(crate) fn payload_sum(payload: &[u8]) -> u64 {
    sum_words(payload, 0)
}

/// One's complement addition of two partial sums.
fn add(a: u64, b: u64) -> u64 {
    let (s, carry) = a.overflowing_add(b);
    s + u64::from(carry)
}

fn to_v6(ip: IpAddr) -> std::net::Ipv6Addr {
    match ip {
        IpAddr::V4(v4) => v4.to_ipv6_mapped(),
        IpAddr::V6(v6) => v6,
    }
}

/// One's complement sum of big-endian 16-bit words, added to `acc`, because checksumming the
/// payload is the writer's hottest loop.
///
/// Two facts of the one's complement sum (RFC 1071) make it fast: a 32-bit word `hi·2^16 + lo` adds
/// up to the same as its halves `hi + lo` (2^16 ≡ 1), so 32-bit words are summed into a 64-bit
/// accumulator with no carry handling (2^32 of them would be needed to overflow); and the sum is
/// byte-order independent, so words are loaded in native order and the folded sum swapped once.
/// The compiler vectorizes the loop. `inspect` verifies checksums with it too.
pub(crate) fn sum_words(data: &[u8], acc: u64) -> u64 {
    let mut chunks = data.chunks_exact(4);
    let mut native: u64 = 0;
    for c in &mut chunks {
        native += u64::from(u32::from_ne_bytes([c[0], c[1], c[2], c[3]]));
    }
    let folded = fold(native);
    let mut be = u64::from(if cfg!(target_endian = "little") {
        folded.swap_bytes()
    } else {
        folded
    });
    for pair in chunks.remainder().chunks(2) {
        let hi = u64::from(pair[0]) << 8;
        let lo = pair.get(1).copied().map(u64::from).unwrap_or(0);
        be += hi | lo;
    }
    add(acc, be)
}

/// `acc` folded to 16 bits (not complemented): 0xffff for data that includes its own checksum.
pub(crate) fn fold(mut acc: u64) -> u16 {
    while acc >> 16 != 0 {
        acc = (acc & 0xffff) + (acc >> 16);
    }
    acc as u16
}

#[cfg(test)]
mod tests {
    use super::*;

    fn packet(src: &str, dst: &str, flags: u8, payload: &'static [u8]) -> TcpPacket {
        TcpPacket {
            src: src.parse().expect("test address"),
            dst: dst.parse().expect("test address"),
            seq: 1000,
            ack: 2000,
            flags,
            ip_id: 7,
            payload: Bytes::from_static(payload),
        }
    }

    fn naive_sum(data: &[u8]) -> u16 {
        let mut acc: u64 = 0;
        for pair in data.chunks(2) {
            acc += (u64::from(pair[0]) << 8) | u64::from(*pair.get(1).unwrap_or(&0));
        }
        fold(acc)
    }

    #[test]
    fn fast_sum_matches_naive_sum_for_every_tail_length() {
        let data: Vec<u8> = (0..200u32).map(|i| (i * 37 + 11) as u8).collect();
        for len in 0..data.len() {
            assert_eq!(
                fold(sum_words(&data[..len], 0)),
                naive_sum(&data[..len]),
                "len {len}"
            );
        }
    }

    #[test]
    fn fast_sum_matches_naive_sum_on_large_and_all_ones_payloads() {
        let mut state = 0x1234_5678u32;
        let noise: Vec<u8> = (0..200_003)
            .map(|_| {
                state ^= state << 13;
                state ^= state >> 17;
                state ^= state << 5;
                state as u8
            })
            .collect();
        let ones = vec![0xFFu8; 65_495];
        for data in [&noise[..], &ones[..]] {
            assert_eq!(fold(sum_words(data, 0)), naive_sum(data));
            // Split at an even offset, as a header and its payload are.
            let (a, b) = data.split_at(20);
            assert_eq!(fold(add(sum_words(a, 0), sum_words(b, 0))), naive_sum(data));
        }
    }

    #[test]
    fn ipv4_checksums_verify_to_zero() {
        let p = packet(
            "127.0.0.1:40000",
            "127.0.0.1:3030",
            flags::ACK | flags::PSH,
            b"hello",
        );
        let mut out = Vec::new();
        p.write_to(&mut out);
        assert_eq!(out.len(), p.len());
        assert_eq!(naive_sum(&out[..20]), 0xffff);
        let mut pseudo = Vec::new();
        pseudo.extend_from_slice(&out[12..20]);
        pseudo.extend_from_slice(&[0, 6, 0, (out.len() - 20) as u8]);
        pseudo.extend_from_slice(&out[20..]);
        assert_eq!(naive_sum(&pseudo), 0xffff);
    }

    #[test]
    fn ipv6_syn_carries_options_and_valid_checksum() {
        let p = packet("[::1]:40000", "[::1]:3030", flags::SYN, b"");
        let mut out = Vec::new();
        p.write_to(&mut out);
        assert_eq!(out.len(), 40 + 28);
        assert_eq!(out[40 + 12] >> 4, 7);
        let mut pseudo = Vec::new();
        pseudo.extend_from_slice(&out[8..40]);
        pseudo.extend_from_slice(&[0, 0, 0, 28, 0, 0, 0, 6]);
        pseudo.extend_from_slice(&out[40..]);
        assert_eq!(naive_sum(&pseudo), 0xffff);
    }
}
