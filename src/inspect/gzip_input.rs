//! Reads a gzip-compressed capture (`x.pcapng.gz`, as captures are attached to issues) as the capture it holds.
//!
//! Only gzip is read transparently: Wireshark writes it, `gzip -c` makes it, and GitHub issues
//! take `.gz` attachments. Other compressions (zstd, xz, bzip2, lz4) are still refused by
//! `pcap_reader` with the command that uncompresses them. Members of a concatenated gzip file
//! (`cat a.gz b.gz`) are read one after another, as `gunzip` does. Damage inside the compressed
//! stream (a cut or corrupt file) surfaces as a read error of the capture, so the packets before
//! it still count, as for an uncompressed capture cut short.

use std::io::{self, BufReader, Chain, Cursor, Read};

use flate2::read::MultiGzDecoder;

/// gzip's leading bytes (RFC 1952: ID1 ID2).
const GZIP_MAGIC: [u8; 2] = [0x1f, 0x8b];

/// The capture bytes of `input`: uncompressed when it starts with the gzip magic, as they are
/// otherwise (the bytes peeked to decide are given back first).
pub fn uncompressed<'a, R: Read + 'a>(mut input: R) -> io::Result<Box<dyn Read + 'a>> {
    let mut head = Vec::with_capacity(2);
    (&mut input).take(2).read_to_end(&mut head)?;
    let gzip = head == GZIP_MAGIC;
    let whole: Chain<Cursor<Vec<u8>>, R> = Cursor::new(head).chain(input);
    Ok(if gzip {
        Box::new(MultiGzDecoder::new(BufReader::with_capacity(
            1 << 16,
            whole,
        )))
    } else {
        Box::new(whole)
    })
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use flate2::write::GzEncoder;
    use flate2::Compression;

    use super::*;
    use crate::inspect::capture_loss_tests::{pcap, put};
    use crate::inspect::{inspect_bytes, InspectOptions};

    fn gzip(bytes: &[u8]) -> Vec<u8> {
        let mut encoder = GzEncoder::new(Vec::new(), Compression::default());
        encoder.write_all(bytes).expect("in memory");
        encoder.finish().expect("in memory")
    }

    /// `gzip -c x.pcapng > x.pcapng.gz` was refused ("gzip-compressed … gunzip it first"):
    /// the gzipped capture now reads as the capture itself, with the same verdict and packets.
    #[test]
    fn a_gzipped_capture_reads_as_the_capture_it_holds() {
        let plain = pcap(&put(None), 65_535);
        let zipped = gzip(&plain);
        assert_eq!(zipped[..2], GZIP_MAGIC);
        let options = InspectOptions::default();
        let want = inspect_bytes(&plain, &options).expect("readable");
        let got = inspect_bytes(&zipped, &options).expect("a gzipped capture is read");
        assert_eq!(got.capture.packets, want.capture.packets);
        assert!(got.capture.packets > 0);
        assert_eq!(got.render_text(), want.render_text());
    }

    /// Two gzip members one after another (`cat a.gz b.gz`) are read whole, as gunzip does.
    #[test]
    fn concatenated_gzip_members_are_read_one_after_another() {
        let plain = pcap(&put(None), 65_535);
        let (a, b) = plain.split_at(100);
        let mut zipped = gzip(a);
        zipped.extend_from_slice(&gzip(b));
        let mut got = Vec::new();
        uncompressed(&zipped[..])
            .expect("in memory")
            .read_to_end(&mut got)
            .expect("valid gzip");
        assert_eq!(got, plain);
    }

    /// A gzipped capture cut short keeps what was read before the cut and says it is damaged;
    /// it never panics and is not refused as a whole.
    #[test]
    fn a_cut_gzipped_capture_reports_damage_not_a_panic() {
        let plain = pcap(&put(None), 65_535);
        let zipped = gzip(&plain);
        for cut in [3, 10, zipped.len() / 2, zipped.len() - 4] {
            let options = InspectOptions::default();
            match inspect_bytes(&zipped[..cut], &options) {
                Ok(report) => assert!(
                    report.render_text().contains("damage")
                        || report.render_text().contains("cut")
                        || report.render_text().contains("read error"),
                    "cut at {cut}: {}",
                    report.render_text()
                ),
                Err(e) => assert_eq!(e.exit_code(), 2, "cut at {cut}: {e}"),
            }
        }
    }

    /// Bytes that are not gzip pass through untouched, the peeked bytes included.
    #[test]
    fn other_input_passes_through_byte_for_byte() {
        for bytes in [&b""[..], b"\x1f", b"\x1f\x00abc", b"\xd4\xc3\xb2\xa1rest"] {
            let mut got = Vec::new();
            uncompressed(bytes)
                .expect("in memory")
                .read_to_end(&mut got)
                .expect("in memory");
            assert_eq!(got, bytes);
        }
    }
}
