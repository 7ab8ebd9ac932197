//! Decodes one captured frame (raw IP, Ethernet, Linux cooked or BSD loopback) down to its TCP segment.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

/// Link-layer types the reader understands (pcap LINKTYPE_* values).
pub mod linktype {
    /// BSD loopback: 4-byte address family in host byte order.
    pub const NULL: u32 = 0;
    /// Ethernet II, with optional 802.1Q / 802.1ad VLAN tags.
    pub const ETHERNET: u32 = 1;
    /// Raw IP, the version nibble says IPv4 or IPv6 (what faultline writes).
    pub const RAW: u32 = 101;
    /// Linux cooked capture v1 (`tcpdump -i any`).
    pub const LINUX_SLL: u32 = 113;
    /// OpenBSD loopback: 4-byte address family in network byte order.
    pub const LOOP: u32 = 108;
    /// Raw IPv4 only.
    pub const IPV4: u32 = 228;
    /// Raw IPv6 only.
    pub const IPV6: u32 = 229;
}

/// TCP flag bits, in header order.
pub mod tcp_flags {
    /// No more data from the sender.
    pub const FIN: u8 = 0x01;
    /// Synchronize sequence numbers (opens a connection).
    pub const SYN: u8 = 0x02;
    /// Abort the connection.
    pub const RST: u8 = 0x04;
    /// The acknowledgment field is significant.
    pub const ACK: u8 = 0x10;
}

/// One TCP segment as it appeared in a frame; `payload` borrows from the frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TcpSegment<'a> {
    /// Sender address and port.
    pub src: SocketAddr,
    /// Receiver address and port.
    pub dst: SocketAddr,
    /// Sequence number of the first payload byte (or of the SYN/FIN).
    pub seq: u32,
    /// Acknowledgment number.
    pub ack: u32,
    /// TCP flag bits (see [`tcp_flags`]).
    pub flags: u8,
    /// Payload bytes, trimmed to the IP length (link-layer padding removed).
    pub payload: &'a [u8],
}

impl TcpSegment<'_> {
    /// True when `flag` (a [`tcp_flags`] bit) is set.
    pub fn has(&self, flag: u8) -> bool {
        self.flags & flag != 0
    }
}

const ETHERTYPE_IPV4: u16 = 0x0800;
const ETHERTYPE_IPV6: u16 = 0x86DD;
const ETHERTYPE_VLAN: u16 = 0x8100;
const ETHERTYPE_QINQ: u16 = 0x88A8;
const PROTO_TCP: u8 = 6;

/// Whether `decode` reads frames of `linktype` at all (any other link type, 802.11 say, is
/// skipped whole, which the report must say).
pub fn is_supported(linktype: u32) -> bool {
    matches!(
        linktype,
        linktype::RAW
            | linktype::IPV4
            | linktype::IPV6
            | linktype::ETHERNET
            | linktype::LINUX_SLL
            | linktype::NULL
            | linktype::LOOP
    )
}

/// Decodes a frame of link type `linktype`; `None` for anything that is not a whole, unfragmented
/// IPv4/IPv6 TCP segment (ARP, UDP, IP fragments, damaged headers). Never panics on any input.
pub fn decode(linktype: u32, frame: &[u8]) -> Option<TcpSegment<'_>> {
    let ip = ip_layer(linktype, frame)?;
    match ip.first()? >> 4 {
        4 => ipv4(ip),
        6 => ipv6(ip),
        _ => None,
    }
}

/// Whether the TCP checksum of a whole IPv4/IPv6 TCP frame verifies; `None` when it cannot be
/// told (not TCP, IPv6 extension headers, a frame shorter than its IP length). faultline writes
/// every checksum right, so in its captures a wrong one means the file was damaged after it was
/// written (a trial flipped one bit and read CORRUPT blaming the client).
pub fn tcp_checksum_ok(linktype: u32, frame: &[u8]) -> Option<bool> {
    use crate::capture::packet::{fold, sum_words};
    let ip = ip_layer(linktype, frame)?;
    let (addresses, tcp) = match ip.first()? >> 4 {
        4 => {
            let ihl = usize::from(ip.first()? & 0x0f) * 4;
            let total = usize::from(u16::from_be_bytes([*ip.get(2)?, *ip.get(3)?]));
            if ihl < 20 || *ip.get(9)? != PROTO_TCP {
                return None;
            }
            (ip.get(12..20)?, ip.get(ihl..total)?)
        }
        6 => {
            let payload_len = usize::from(u16::from_be_bytes([*ip.get(4)?, *ip.get(5)?]));
            if *ip.get(6)? != PROTO_TCP {
                return None;
            }
            (ip.get(8..40)?, ip.get(40..40 + payload_len)?)
        }
        _ => return None,
    };
    // The pseudo-header: both addresses, the protocol and the TCP length (RFC 793, RFC 8200).
    let len = u32::try_from(tcp.len()).ok()?;
    let mut rest = [0u8; 8];
    rest[..4].copy_from_slice(&len.to_be_bytes());
    rest[7] = PROTO_TCP;
    let sum = sum_words(tcp, sum_words(&rest, sum_words(addresses, 0)));
    Some(fold(sum) == 0xffff)
}

/// The IP packet a frame of `linktype` carries.
fn ip_layer(linktype: u32, frame: &[u8]) -> Option<&[u8]> {
    let ip = match linktype {
        linktype::RAW | linktype::IPV4 | linktype::IPV6 => frame,
        linktype::ETHERNET => ethernet_payload(frame)?,
        linktype::LINUX_SLL => {
            let proto = u16::from_be_bytes([*frame.get(14)?, *frame.get(15)?]);
            if proto != ETHERTYPE_IPV4 && proto != ETHERTYPE_IPV6 {
                return None;
            }
            frame.get(16..)?
        }
        // The family field's byte order differs between writers; the IP version nibble does not.
        linktype::NULL | linktype::LOOP => frame.get(4..)?,
        _ => return None,
    };
    Some(ip)
}

fn ethernet_payload(frame: &[u8]) -> Option<&[u8]> {
    let mut at = 12;
    loop {
        let ethertype = u16::from_be_bytes([*frame.get(at)?, *frame.get(at + 1)?]);
        match ethertype {
            ETHERTYPE_VLAN | ETHERTYPE_QINQ => at += 4,
            ETHERTYPE_IPV4 | ETHERTYPE_IPV6 => return frame.get(at + 2..),
            _ => return None,
        }
    }
}

fn ipv4(ip: &[u8]) -> Option<TcpSegment<'_>> {
    let ihl = usize::from(ip.first()? & 0x0f) * 4;
    let total = usize::from(u16::from_be_bytes([*ip.get(2)?, *ip.get(3)?]));
    if ihl < 20 || total < ihl {
        return None;
    }
    let frag = u16::from_be_bytes([*ip.get(6)?, *ip.get(7)?]);
    // More-fragments set or a non-zero offset: a piece of a datagram we do not reassemble.
    if frag & 0x3fff != 0 || *ip.get(9)? != PROTO_TCP {
        return None;
    }
    let src = Ipv4Addr::new(*ip.get(12)?, *ip.get(13)?, *ip.get(14)?, *ip.get(15)?);
    let dst = Ipv4Addr::new(*ip.get(16)?, *ip.get(17)?, *ip.get(18)?, *ip.get(19)?);
    // A snapped frame may be shorter than the IP length; padding may make it longer.
    let end = total.min(ip.len());
    tcp(IpAddr::V4(src), IpAddr::V4(dst), ip.get(ihl..end)?)
}

fn ipv6(ip: &[u8]) -> Option<TcpSegment<'_>> {
    let payload_len = usize::from(u16::from_be_bytes([*ip.get(4)?, *ip.get(5)?]));
    let mut next = *ip.get(6)?;
    let src: [u8; 16] = ip.get(8..24)?.try_into().ok()?;
    let dst: [u8; 16] = ip.get(24..40)?.try_into().ok()?;
    let end = (40 + payload_len).min(ip.len());
    let mut at = 40;
    loop {
        match next {
            PROTO_TCP => break,
            // Hop-by-hop, routing, destination options: skip by their length field.
            0 | 43 | 60 => {
                next = *ip.get(at)?;
                at += (usize::from(*ip.get(at + 1)?) + 1) * 8;
            }
            // Fragment header: only an unfragmented "atomic fragment" is usable.
            44 => {
                let off = u16::from_be_bytes([*ip.get(at + 2)?, *ip.get(at + 3)?]);
                if off & 0xfff9 != 0 {
                    return None;
                }
                next = *ip.get(at)?;
                at += 8;
            }
            _ => return None,
        }
    }
    let src = IpAddr::V6(Ipv6Addr::from(src));
    let dst = IpAddr::V6(Ipv6Addr::from(dst));
    tcp(src, dst, ip.get(at..end)?)
}

fn tcp(src: IpAddr, dst: IpAddr, t: &[u8]) -> Option<TcpSegment<'_>> {
    let sport = u16::from_be_bytes([*t.first()?, *t.get(1)?]);
    let dport = u16::from_be_bytes([*t.get(2)?, *t.get(3)?]);
    let seq = u32::from_be_bytes(t.get(4..8)?.try_into().ok()?);
    let ack = u32::from_be_bytes(t.get(8..12)?.try_into().ok()?);
    let data_offset = usize::from(t.get(12)? >> 4) * 4;
    if data_offset < 20 {
        return None;
    }
    let flags = *t.get(13)?;
    Some(TcpSegment {
        src: SocketAddr::new(src, sport),
        dst: SocketAddr::new(dst, dport),
        seq,
        ack,
        flags,
        payload: t.get(data_offset..)?,
    })
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// What faultline's capture writer makes verifies; one flipped bit anywhere in the TCP
    /// segment does not; frames it cannot judge are `None`.
    #[test]
    fn tcp_checksums_of_written_packets_verify_and_a_flipped_bit_does_not() {
        use crate::capture::packet::TcpPacket;
        for (src, dst) in [
            ("127.0.0.1:40000", "127.0.0.1:3030"),
            ("[::1]:40000", "[::1]:3030"),
        ] {
            for payload in [&b""[..], b"hello", b"odd length payload!"] {
                let packet = TcpPacket {
                    src: src.parse().expect("address"),
                    dst: dst.parse().expect("address"),
                    seq: 7,
                    ack: 9,
                    flags: tcp_flags::ACK,
                    ip_id: 1,
                    payload: bytes::Bytes::copy_from_slice(payload),
                };
                let mut frame = Vec::new();
                packet.write_to(&mut frame);
                assert_eq!(tcp_checksum_ok(linktype::RAW, &frame), Some(true), "{src}");
                let last = frame.len() - 1;
                frame[last] ^= 0x10;
                assert_eq!(tcp_checksum_ok(linktype::RAW, &frame), Some(false), "{src}");
                // Cut short of its IP length: cannot be told.
                assert_eq!(tcp_checksum_ok(linktype::RAW, &frame[..last]), None);
            }
        }
        assert_eq!(tcp_checksum_ok(linktype::RAW, b"\x45"), None);
    }

    /// A minimal IPv4 + TCP packet (checksums left zero: the decoder does not verify them).
    pub(crate) fn ipv4_tcp(
        src: [u8; 4],
        sport: u16,
        dst: [u8; 4],
        dport: u16,
        seq: u32,
        flags: u8,
        payload: &[u8],
    ) -> Vec<u8> {
        let total = 40 + payload.len();
        let mut p = vec![0x45, 0];
        p.extend_from_slice(&(total as u16).to_be_bytes());
        p.extend_from_slice(&[0, 0, 0x40, 0, 64, 6, 0, 0]);
        p.extend_from_slice(&src);
        p.extend_from_slice(&dst);
        p.extend_from_slice(&sport.to_be_bytes());
        p.extend_from_slice(&dport.to_be_bytes());
        p.extend_from_slice(&seq.to_be_bytes());
        p.extend_from_slice(&0u32.to_be_bytes());
        p.extend_from_slice(&[0x50, flags, 0xff, 0xff, 0, 0, 0, 0]);
        p.extend_from_slice(payload);
        p
    }

    #[test]
    fn decodes_raw_ipv4_and_trims_padding() {
        let mut p = ipv4_tcp(
            [10, 0, 0, 1],
            1234,
            [10, 0, 0, 2],
            80,
            7,
            tcp_flags::ACK,
            b"hello",
        );
        p.extend_from_slice(&[0, 0, 0]); // Ethernet-style trailer padding
        let s = decode(linktype::RAW, &p).expect("tcp");
        assert_eq!(s.src, "10.0.0.1:1234".parse().expect("addr"));
        assert_eq!(s.dst.port(), 80);
        assert_eq!((s.seq, s.payload), (7, &b"hello"[..]));
        assert!(s.has(tcp_flags::ACK) && !s.has(tcp_flags::SYN));
    }

    #[test]
    fn decodes_ethernet_with_vlan_sll_and_loopback() {
        let ip = ipv4_tcp([1, 1, 1, 1], 1, [2, 2, 2, 2], 2, 9, 0, b"x");
        let mut eth = vec![0u8; 12];
        eth.extend_from_slice(&[0x81, 0x00, 0, 5, 0x08, 0x00]);
        eth.extend_from_slice(&ip);
        assert_eq!(
            decode(linktype::ETHERNET, &eth).map(|s| s.payload),
            Some(&b"x"[..])
        );
        let mut sll = vec![0u8; 14];
        sll.extend_from_slice(&[0x08, 0x00]);
        sll.extend_from_slice(&ip);
        assert_eq!(decode(linktype::LINUX_SLL, &sll).map(|s| s.seq), Some(9));
        let mut null = 2u32.to_le_bytes().to_vec();
        null.extend_from_slice(&ip);
        assert!(decode(linktype::NULL, &null).is_some());
        assert!(decode(linktype::LOOP, &null).is_some());
        assert!(decode(999, &ip).is_none());
    }

    #[test]
    fn rejects_fragments_udp_and_garbage_without_panicking() {
        let mut p = ipv4_tcp([1, 1, 1, 1], 1, [2, 2, 2, 2], 2, 9, 0, b"x");
        p[6] = 0x20; // more fragments
        assert!(decode(linktype::RAW, &p).is_none());
        let mut p = ipv4_tcp([1, 1, 1, 1], 1, [2, 2, 2, 2], 2, 9, 0, b"x");
        p[9] = 17;
        assert!(decode(linktype::RAW, &p).is_none());
        let p = ipv4_tcp([1, 1, 1, 1], 1, [2, 2, 2, 2], 2, 9, 0, b"xyz");
        for cut in 0..p.len() {
            let _ = decode(linktype::RAW, &p[..cut]);
            let _ = decode(linktype::ETHERNET, &p[..cut]);
        }
    }

    #[test]
    fn decodes_ipv6_with_extension_header() {
        let mut p = vec![0x60, 0, 0, 0];
        let tcp_part = &ipv4_tcp([0; 4], 5, [0; 4], 6, 42, tcp_flags::SYN, b"")[20..];
        p.extend_from_slice(&((8 + tcp_part.len()) as u16).to_be_bytes());
        p.push(60); // destination options first
        p.push(64);
        p.extend_from_slice(&[0; 15]);
        p.push(1);
        p.extend_from_slice(&[0; 15]);
        p.push(2);
        p.extend_from_slice(&[6, 0, 0, 0, 0, 0, 0, 0]);
        p.extend_from_slice(tcp_part);
        let s = decode(linktype::RAW, &p).expect("tcp over ipv6");
        assert_eq!(s.src, "[::1]:5".parse().expect("addr"));
        assert_eq!(s.dst, "[::2]:6".parse().expect("addr"));
        assert!(s.has(tcp_flags::SYN));
    }
}
