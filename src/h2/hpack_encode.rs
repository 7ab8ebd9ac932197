//! HPACK encoding for faultline's own header blocks: literals without indexing only, so no peer's table changes.
//!
//! Frames faultline injects (a trailers-only gRPC answer, a response of its own) are decoded by a
//! peer whose dynamic table was built by the *other* peer's encoder. A block that inserted
//! anything, or referenced a dynamic entry, would corrupt or depend on that shared state. Literal
//! fields without indexing (RFC 7541 §6.2.2), naming static entries by index where one exists,
//! are understood identically whatever the table holds and leave it untouched.

use super::headers::HeaderList;
use super::hpack_table::static_name_index;

/// Appends an integer with an N-bit prefix (RFC 7541 §5.1); `flags` are the bits above the prefix.
pub fn encode_integer(value: usize, prefix_bits: u8, flags: u8, out: &mut Vec<u8>) {
    let max_prefix = (1usize << prefix_bits) - 1;
    if value < max_prefix {
        out.push(flags | value as u8);
        return;
    }
    out.push(flags | max_prefix as u8);
    let mut rest = value - max_prefix;
    while rest >= 0x80 {
        out.push((rest as u8 & 0x7f) | 0x80);
        rest >>= 7;
    }
    out.push(rest as u8);
}

/// Appends a raw (not Huffman-coded) string literal.
pub fn encode_string(bytes: &[u8], out: &mut Vec<u8>) {
    encode_integer(bytes.len(), 7, 0, out);
    out.extend_from_slice(bytes);
}

/// Appends one field as a literal without indexing, with an indexed static name when the static
/// table has the name.
pub fn encode_literal(name: &[u8], value: &[u8], out: &mut Vec<u8>) {
    match static_name_index(name) {
        Some(index) => encode_integer(index, 4, 0x00, out),
        None => {
            out.push(0x00);
            encode_string(name, out);
        }
    }
    encode_string(value, out);
}

/// Appends a dynamic table size update (RFC 7541 §6.3). An injected block must start with one
/// when the receiver lowered SETTINGS_HEADER_TABLE_SIZE below the table's current maximum and the
/// real encoder has not yet sent its own update: some decoders (nghttp2) refuse a block without it.
/// Shrinking to the advertised size evicts exactly what the real encoder's later update will.
pub fn encode_size_update(size: usize, out: &mut Vec<u8>) {
    encode_integer(size, 5, 0x20, out);
}

/// Encodes a whole header list as one block of literals without indexing, optionally preceded
/// by a dynamic table size update.
pub fn encode_block_with(headers: &HeaderList, size_update: Option<usize>) -> Vec<u8> {
    let mut out = Vec::new();
    if let Some(size) = size_update {
        encode_size_update(size, &mut out);
    }
    for field in &headers.fields {
        encode_literal(&field.name, &field.value, &mut out);
    }
    out
}

/// Encodes a whole header list as one block of literals without indexing.
pub fn encode_block(headers: &HeaderList) -> Vec<u8> {
    let mut out = Vec::new();
    for field in &headers.fields {
        encode_literal(&field.name, &field.value, &mut out);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::h2::hpack::{integer, Decoder};

    #[test]
    fn integers_round_trip_across_prefix_sizes() {
        for prefix in [4u8, 5, 6, 7, 8] {
            for value in [
                0usize,
                1,
                14,
                15,
                16,
                30,
                31,
                127,
                128,
                255,
                256,
                1337,
                70_000,
                1 << 24,
            ] {
                let mut out = Vec::new();
                encode_integer(value, prefix, 0, &mut out);
                assert_eq!(
                    integer(&out, prefix),
                    Ok((value, out.len())),
                    "{value} prefix {prefix}"
                );
            }
        }
    }

    #[test]
    fn blocks_decode_to_the_same_list_and_never_touch_the_table() {
        let headers = HeaderList::from_pairs([
            (":status", "200"),
            ("content-type", "application/grpc"),
            ("grpc-status", "14"),
            ("grpc-message", "faultline: injected"),
        ]);
        let block = encode_block(&headers);
        assert_eq!(&block[..2], &[0x08, 0x03], ":status by static name index 8");
        let mut decoder = Decoder::new();
        let decoded = decoder.decode(&block).expect("valid");
        assert_eq!(decoded.headers, headers);
        assert!(!decoded.touches_table);
        assert!(decoder.table().is_empty());
    }

    #[test]
    fn a_leading_size_update_shrinks_the_receivers_table() {
        let mut decoder = Decoder::new();
        decoder
            .decode(&[0x40, 0x01, b'k', 0x01, b'v'])
            .expect("insert");
        let block = encode_block_with(&HeaderList::from_pairs([(":status", "200")]), Some(0));
        let decoded = decoder.decode(&block).expect("valid");
        assert!(decoded.touches_table);
        assert!(decoder.table().is_empty());
        assert_eq!(decoder.table().max_size(), 0);
    }
}
