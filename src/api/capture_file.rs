//! The readable part of a capture that is still being written: its longest prefix made of whole
//! pcapng blocks (or classic pcap records), so `GET /faultline/proxies/{name}/capture` always
//! hands out a file tshark and `faultline inspect` read without complaint.

use std::io::{self, Read, Seek, SeekFrom};

/// pcapng's block type of a section header, and its byte-order magic.
const SECTION_HEADER: u32 = 0x0A0D_0D0A;
const BYTE_ORDER_MAGIC: u32 = 0x1A2B_3C4D;
/// Classic pcap magics (microseconds, nanoseconds), as written in the file's byte order.
const PCAP_MAGICS: [u32; 2] = [0xA1B2_C3D4, 0xA1B2_3C4D];

/// How many bytes of the file, from its start, are whole blocks or records.
pub fn complete_len<R: Read + Seek>(file: &mut R, len: u64) -> io::Result<u64> {
    let mut head = [0u8; 4];
    file.seek(SeekFrom::Start(0))?;
    if len < 24 || file.read_exact(&mut head).is_err() {
        return Ok(0);
    }
    let magic_le = u32::from_le_bytes(head);
    let magic_be = u32::from_be_bytes(head);
    if PCAP_MAGICS.contains(&magic_le) || PCAP_MAGICS.contains(&magic_be) {
        let little = PCAP_MAGICS.contains(&magic_le);
        return walk(file, len, 24, little, Layout::Pcap);
    }
    if magic_le == SECTION_HEADER {
        return walk(file, len, 0, true, Layout::Pcapng);
    }
    // Not a capture faultline writes: hand it out as it is.
    Ok(len)
}

#[derive(Clone, Copy, PartialEq)]
enum Layout {
    Pcap,
    Pcapng,
}

fn walk<R: Read + Seek>(
    file: &mut R,
    len: u64,
    mut at: u64,
    mut little: bool,
    layout: Layout,
) -> io::Result<u64> {
    let word = |bytes: [u8; 4], little: bool| {
        if little {
            u32::from_le_bytes(bytes)
        } else {
            u32::from_be_bytes(bytes)
        }
    };
    loop {
        let header = match layout {
            Layout::Pcap => 16,
            Layout::Pcapng => 12,
        };
        if at + header > len {
            return Ok(at);
        }
        file.seek(SeekFrom::Start(at))?;
        let mut buf = [0u8; 16];
        file.read_exact(&mut buf[..header as usize])?;
        let size = match layout {
            Layout::Pcap => 16 + u64::from(word([buf[8], buf[9], buf[10], buf[11]], little)),
            Layout::Pcapng => {
                let kind = u32::from_le_bytes([buf[0], buf[1], buf[2], buf[3]]);
                if kind == SECTION_HEADER {
                    // Each section says its own byte order.
                    little =
                        u32::from_le_bytes([buf[8], buf[9], buf[10], buf[11]]) == BYTE_ORDER_MAGIC;
                }
                u64::from(word([buf[4], buf[5], buf[6], buf[7]], little))
            }
        };
        if size < header || at + size > len {
            return Ok(at);
        }
        at += size;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Cursor;

    fn block(kind: u32, body: usize) -> Vec<u8> {
        let total = (12 + body) as u32;
        let mut out = kind.to_le_bytes().to_vec();
        out.extend(total.to_le_bytes());
        out.extend(vec![0u8; body]);
        out.extend(total.to_le_bytes());
        out
    }

    #[test]
    fn a_cut_last_block_is_left_out() {
        let mut shb = block(SECTION_HEADER, 16);
        shb[8..12].copy_from_slice(&BYTE_ORDER_MAGIC.to_le_bytes());
        let mut file = shb.clone();
        file.extend(block(6, 40));
        let whole = file.len() as u64;
        file.extend(&block(6, 40)[..30]);
        let len = file.len() as u64;
        assert_eq!(complete_len(&mut Cursor::new(file), len).ok(), Some(whole));
    }

    #[test]
    fn classic_records_are_walked_too() {
        let mut file = 0xA1B2_C3D4u32.to_le_bytes().to_vec();
        file.extend([0u8; 20]);
        let mut record = vec![0u8; 16];
        record[8..12].copy_from_slice(&5u32.to_le_bytes());
        record.extend([1u8; 5]);
        file.extend(&record);
        let whole = file.len() as u64;
        file.extend(&record[..10]);
        let len = file.len() as u64;
        assert_eq!(complete_len(&mut Cursor::new(file), len).ok(), Some(whole));
    }
}
