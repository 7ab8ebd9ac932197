//! Read-only HPACK decoding (RFC 7541), one decoder per direction, so rules can see headers that pass untouched.
//!
//! Why hand-written rather than a crate: `hpack` (0.3) panics on one hostile byte
//! (RUSTSEC-2023-0085), `httlib-hpack` 0.1.3 panics on a one-byte block (`[0x4e]`, found by a
//! random-input run), `loona-hpack` 0.4.3 is correct but builds a 257-entry hash map for every
//! Huffman string (~35 µs per string measured, several per gRPC call: more than the whole latency
//! budget of an h2 rule), and the HPACK code of `h2` is private. Decoding is small (integers,
//! strings, two tables), the fuzz target drives it with arbitrary bytes, and tests cover RFC 7541
//! Appendix C and real grpcio/curl traffic.

use thiserror::Error;

use super::headers::{HeaderField, HeaderList};
use super::hpack_encode::{encode_integer, encode_literal, encode_string};
use super::hpack_table::{DynamicTable, STATIC_TABLE};
use super::huffman;

/// SETTINGS_HEADER_TABLE_SIZE before a peer says otherwise.
pub const DEFAULT_TABLE_SIZE: usize = 4096;

/// The largest dynamic table faultline will mirror, whatever a peer advertises: bounds memory per
/// connection direction. Real stacks advertise 4 KiB–64 KiB.
pub const MAX_TABLE_SIZE: usize = 16 << 20;

/// The largest header list a block may decode to, counted as RFC 9113 §6.5.2 counts
/// SETTINGS_MAX_HEADER_LIST_SIZE (each field's name + value + 32 octets). A block over it is an
/// error, found before the field that crosses the limit is copied: one byte can reference a
/// 4 KB dynamic entry, so a 16 KB HEADERS frame of such references decodes to 64 MB (an "HPACK
/// bomb": 3.2 MB sent once took a proxy to 750 MB). 256 KiB is far above what real stacks send
/// or accept (grpc 8 KiB of metadata, nginx 32 KiB of header buffers, Go 1 MB of wire bytes)
/// and bounds a decoded list, and its detached form, per block. The limit is fixed rather than
/// the smaller one a peer advertised: the setting is advisory (a peer may accept more), and a
/// middlebox that gave up on lists its peer would have taken would stop following traffic that
/// works.
pub const DEFAULT_MAX_LIST_SIZE: usize = 256 << 10;

/// Why a header block could not be decoded. Any of these is a COMPRESSION_ERROR at a real peer,
/// which then closes the connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum HpackError {
    /// An integer or string runs past the end of the block.
    #[error("header block ends inside a field")]
    Truncated,
    /// An integer needs more than 32 bits.
    #[error("integer too large")]
    IntegerOverflow,
    /// An index names no static or dynamic entry.
    #[error("index {0} names no table entry")]
    BadIndex(usize),
    /// A Huffman string has EOS inside or invalid padding.
    #[error("invalid Huffman-coded string")]
    BadHuffman,
    /// A dynamic table size update exceeds what the receiving peer allowed.
    #[error("dynamic table size update to {size} exceeds the allowed {max}")]
    TableSizeTooLarge {
        /// Requested size.
        size: usize,
        /// Allowed size.
        max: usize,
    },
    /// A dynamic table size update after the first field of a block (RFC 7541 §4.2).
    #[error("dynamic table size update after a header field")]
    LateTableSizeUpdate,
    /// The block decodes to a header list larger than the decoder accepts (name + value + 32
    /// octets per field, RFC 9113 §6.5.2): decoding stopped before materializing it.
    #[error("header list exceeds {limit} bytes (RFC 9113 §6.5.2 size) after {fields} fields")]
    ListTooLarge {
        /// The decoder's limit.
        limit: usize,
        /// Fields decoded before the one that crossed the limit.
        fields: usize,
    },
}

/// A decoded block.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Decoded {
    /// The fields, in order.
    pub headers: HeaderList,
    /// Whether the block changed the dynamic table (an insertion or a size update). A block that
    /// did cannot be dropped without desynchronizing the receiver's decoder.
    pub touches_table: bool,
    /// The same block without the dynamic table (see [`Decoder::with_detached_forms`]): `None`
    /// when the block neither references nor inserts a dynamic entry (its own bytes are that
    /// form), or when the decoder does not make detached forms.
    pub detached: Option<Vec<u8>>,
    /// The dynamic table size updates the block starts with, in order.
    pub size_updates: Vec<usize>,
}

/// One direction's HPACK decoder: mirrors the dynamic table the receiving peer keeps.
#[derive(Debug, Clone)]
pub struct Decoder {
    table: DynamicTable,
    /// Largest size update accepted: the largest SETTINGS_HEADER_TABLE_SIZE the receiver advertised.
    allowed: usize,
    max_list_size: usize,
    /// Also make each block's detached form.
    detach: bool,
}

impl Default for Decoder {
    fn default() -> Decoder {
        Decoder::new()
    }
}

impl Decoder {
    /// A decoder with RFC defaults (4096-byte table).
    pub fn new() -> Decoder {
        Decoder {
            table: DynamicTable::new(DEFAULT_TABLE_SIZE),
            allowed: DEFAULT_TABLE_SIZE,
            max_list_size: DEFAULT_MAX_LIST_SIZE,
            detach: false,
        }
    }

    /// Also makes, for every block, its *detached* form ([`Decoded::detached`]): the same header
    /// list in representations that neither read nor change the dynamic table. A static
    /// reference, a literal string and a size update are kept byte for byte (Huffman coding
    /// too); a dynamic reference becomes a literal without indexing; a literal with incremental
    /// indexing becomes one without indexing; a never-indexed literal stays never indexed
    /// (RFC 7541 §6.2.3). A middlebox that had to withhold a block that changed the receiver's
    /// table (a late answer on a stream the receiver saw closed) sends every later block in this
    /// form: it decodes to the same list whatever the receiver's table holds.
    pub fn with_detached_forms(mut self) -> Decoder {
        self.detach = true;
        self
    }

    /// Sets the list size (RFC 9113 §6.5.2 count) beyond which a block is an error.
    pub fn with_max_list_size(mut self, size: usize) -> Decoder {
        self.max_list_size = size;
        self
    }

    /// The receiving peer advertised SETTINGS_HEADER_TABLE_SIZE = `size`. Like the frame size,
    /// the allowance only grows (an encoder may still use the old one until it sees the SETTINGS)
    /// and is capped at [`MAX_TABLE_SIZE`]. The table itself changes only with size updates.
    pub fn allow_table_size(&mut self, size: u32) {
        let size = (size as usize).min(MAX_TABLE_SIZE);
        self.allowed = self.allowed.max(size);
    }

    /// The dynamic table as it stands.
    pub fn table(&self) -> &DynamicTable {
        &self.table
    }

    /// The list size beyond which a block is an error.
    pub fn max_list_size(&self) -> usize {
        self.max_list_size
    }

    /// Decodes one complete header block, updating the dynamic table as the receiver does.
    pub fn decode(&mut self, block: &[u8]) -> Result<Decoded, HpackError> {
        self.decode_within(block, usize::MAX)
    }

    /// Like [`Decoder::decode`], with the list limit lowered to `limit` for this block (what is
    /// left of a connection's budget): [`HpackError::ListTooLarge`] names the limit applied.
    pub fn decode_within(&mut self, block: &[u8], limit: usize) -> Result<Decoded, HpackError> {
        let max_list_size = self.max_list_size.min(limit);
        let mut decoded = Decoded::default();
        let mut list_size = 0usize;
        let mut pos = 0;
        let mut seen_field = false;
        // The detached form, and whether it differs from the block.
        let mut detached = Vec::new();
        let mut differs = false;
        while pos < block.len() {
            let first = block[pos];
            let from = pos;
            if first & 0x80 != 0 {
                // Indexed field (§6.1).
                let (index, used) = integer(&block[pos..], 7)?;
                pos += used;
                let (name, value) = self.entry(index)?;
                count(&decoded, &mut list_size, max_list_size, name, value)?;
                if self.detach {
                    if index > STATIC_TABLE.len() {
                        differs = true;
                        encode_literal(name, value, &mut detached);
                    } else {
                        detached.extend_from_slice(&block[from..pos]);
                    }
                }
                seen_field = true;
                decoded.headers.fields.push(HeaderField {
                    name: name.to_vec(),
                    value: value.to_vec(),
                });
            } else if first & 0xe0 == 0x20 {
                // Dynamic table size update (§6.3).
                if seen_field {
                    return Err(HpackError::LateTableSizeUpdate);
                }
                let (size, used) = integer(&block[pos..], 5)?;
                pos += used;
                if size > self.allowed {
                    return Err(HpackError::TableSizeTooLarge {
                        size,
                        max: self.allowed,
                    });
                }
                self.table.set_max_size(size);
                decoded.touches_table = true;
                decoded.size_updates.push(size);
                if self.detach {
                    detached.extend_from_slice(&block[from..pos]);
                }
            } else {
                // Literal with incremental indexing (01), without indexing (0000), never indexed (0001).
                let indexing = first & 0xc0 == 0x40;
                let prefix = if indexing { 6 } else { 4 };
                let (index, used) = integer(&block[pos..], prefix)?;
                pos += used;
                let name_from = pos;
                let name = if index == 0 {
                    let (name, used) = string(&block[pos..])?;
                    pos += used;
                    name
                } else {
                    self.entry(index)?.0.to_vec()
                };
                let value_from = pos;
                let (value, used) = string(&block[pos..])?;
                pos += used;
                count(&decoded, &mut list_size, max_list_size, &name, &value)?;
                if self.detach {
                    // Without indexing (0000) or never indexed (0001), as the field was.
                    let flags = if indexing { 0x00 } else { first & 0xf0 };
                    differs |= indexing || index > STATIC_TABLE.len();
                    if index == 0 {
                        detached.push(flags);
                        detached.extend_from_slice(&block[name_from..value_from]);
                    } else if index <= STATIC_TABLE.len() {
                        encode_integer(index, 4, flags, &mut detached);
                    } else {
                        detached.push(flags);
                        encode_string(&name, &mut detached);
                    }
                    detached.extend_from_slice(&block[value_from..pos]);
                }
                seen_field = true;
                if indexing {
                    self.table.insert(name.clone(), value.clone());
                    decoded.touches_table = true;
                }
                decoded.headers.fields.push(HeaderField { name, value });
            }
        }
        if differs {
            decoded.detached = Some(detached);
        }
        Ok(decoded)
    }

    fn entry(&self, index: usize) -> Result<(&[u8], &[u8]), HpackError> {
        self.table.get(index).ok_or(HpackError::BadIndex(index))
    }
}

/// Counts one more field toward the list size, before anything of it is copied: an error once
/// the list would exceed `max`.
fn count(
    decoded: &Decoded,
    list_size: &mut usize,
    max: usize,
    name: &[u8],
    value: &[u8],
) -> Result<(), HpackError> {
    *list_size = list_size.saturating_add(name.len() + value.len() + 32);
    if *list_size > max {
        return Err(HpackError::ListTooLarge {
            limit: max,
            fields: decoded.headers.fields.len(),
        });
    }
    Ok(())
}

/// Reads an integer with an N-bit prefix (RFC 7541 §5.1): (value, bytes used).
pub(crate) fn integer(buf: &[u8], prefix_bits: u8) -> Result<(usize, usize), HpackError> {
    let first = *buf.first().ok_or(HpackError::Truncated)?;
    let max_prefix = (1u32 << prefix_bits) - 1;
    let mut value = u32::from(first) & max_prefix;
    if value < max_prefix {
        return Ok((value as usize, 1));
    }
    let mut shift = 0u32;
    for (i, &byte) in buf[1..].iter().enumerate() {
        // Five continuation bytes hold 35 bits: anything longer cannot be a 32-bit value.
        if i >= 5 {
            return Err(HpackError::IntegerOverflow);
        }
        let part = u64::from(byte & 0x7f) << shift;
        let total = u64::from(value) + part;
        value = u32::try_from(total).map_err(|_| HpackError::IntegerOverflow)?;
        shift += 7;
        if byte & 0x80 == 0 {
            return Ok((value as usize, i + 2));
        }
    }
    Err(HpackError::Truncated)
}

/// Reads a string literal (RFC 7541 §5.2): (decoded bytes, bytes used).
fn string(buf: &[u8]) -> Result<(Vec<u8>, usize), HpackError> {
    let huffman_coded = buf.first().ok_or(HpackError::Truncated)? & 0x80 != 0;
    let (len, used) = integer(buf, 7)?;
    let raw = buf
        .get(used..used.checked_add(len).ok_or(HpackError::Truncated)?)
        .ok_or(HpackError::Truncated)?;
    if huffman_coded {
        let mut out = Vec::new();
        huffman::decode(raw, &mut out)?;
        Ok((out, used + len))
    } else {
        Ok((raw.to_vec(), used + len))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(text: &str) -> Vec<u8> {
        hex::decode(text.replace([' ', '\n'], "")).expect("hex")
    }

    fn pairs(decoded: &Decoded) -> Vec<(String, String)> {
        decoded
            .headers
            .fields
            .iter()
            .map(|f| {
                (
                    String::from_utf8_lossy(&f.name).into_owned(),
                    String::from_utf8_lossy(&f.value).into_owned(),
                )
            })
            .collect()
    }

    fn owned(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter()
            .map(|(n, v)| (n.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn integers_follow_rfc_7541_c1() {
        assert_eq!(integer(&[0b0000_1010], 5), Ok((10, 1)));
        assert_eq!(
            integer(&[0b0001_1111, 0b1001_1010, 0b0000_1010], 5),
            Ok((1337, 3))
        );
        assert_eq!(integer(&[42], 8), Ok((42, 1)));
        assert_eq!(integer(&[0x1f], 5), Err(HpackError::Truncated));
        assert_eq!(
            integer(&[0x1f, 0xff, 0xff, 0xff, 0xff, 0x7f], 5),
            Err(HpackError::IntegerOverflow)
        );
        assert_eq!(
            integer(&[0x1f, 0x80, 0x80, 0x80, 0x80, 0x80, 0x01], 5),
            Err(HpackError::IntegerOverflow)
        );
        assert_eq!(integer(&[], 5), Err(HpackError::Truncated));
    }

    /// RFC 7541 C.4: three requests with Huffman coding, sharing one dynamic table.
    #[test]
    fn rfc_7541_c4_requests_with_huffman() {
        let mut decoder = Decoder::new();
        let first = decoder
            .decode(&hex("8286 8441 8cf1 e3c2 e5f2 3a6b a0ab 90f4 ff"))
            .expect("valid");
        assert_eq!(
            pairs(&first),
            owned(&[
                (":method", "GET"),
                (":scheme", "http"),
                (":path", "/"),
                (":authority", "www.example.com")
            ])
        );
        assert!(first.touches_table);
        assert_eq!(decoder.table().size(), 57);

        let second = decoder
            .decode(&hex("8286 84be 5886 a8eb 1064 9cbf"))
            .expect("valid");
        assert_eq!(
            pairs(&second),
            owned(&[
                (":method", "GET"),
                (":scheme", "http"),
                (":path", "/"),
                (":authority", "www.example.com"),
                ("cache-control", "no-cache")
            ])
        );
        let third = decoder
            .decode(&hex(
                "8287 85bf 4088 25a8 49e9 5ba9 7d7f 8925 a849 e95b b8e8 b4bf",
            ))
            .expect("valid");
        assert_eq!(
            pairs(&third),
            owned(&[
                (":method", "GET"),
                (":scheme", "https"),
                (":path", "/index.html"),
                (":authority", "www.example.com"),
                ("custom-key", "custom-value")
            ])
        );
        assert_eq!(decoder.table().size(), 164);
    }

    /// RFC 7541 C.5.1-C.5.3: responses with a 256-byte table, forcing evictions.
    #[test]
    fn rfc_7541_c5_responses_with_evictions() {
        let mut decoder = Decoder::new();
        // The receiver advertised 256 and the encoder said so with a size update.
        let mut first = hex("3fe1 01");
        first.extend(hex(
            "4803 3330 3258 0770 7269 7661 7465 611d 4d6f 6e2c 2032 3120 4f63 7420 3230
             3133 2032 303a 3133 3a32 3120 474d 546e 1768 7474 7073 3a2f 2f77 7777 2e65
             7861 6d70 6c65 2e63 6f6d",
        ));
        let decoded = decoder.decode(&first).expect("valid");
        assert_eq!(decoded.headers.status(), Some(302));
        assert_eq!(decoder.table().size(), 222);

        let second = decoder.decode(&hex("4803 3330 37c1 c0bf")).expect("valid");
        assert_eq!(second.headers.status(), Some(307));
        assert_eq!(
            second.headers.get_str("location").as_deref(),
            Some("https://www.example.com")
        );
        assert_eq!(decoder.table().size(), 222);
        assert_eq!(decoder.table().len(), 4);

        let third = decoder
            .decode(&hex(
                "88c1 611d 4d6f 6e2c 2032 3120 4f63 7420 3230 3133 2032 303a 3133 3a32 3220
                 474d 54c0 5a04 677a 6970 7738 666f 6f3d 4153 444a 4b48 514b 425a 584f 5157
                 454f 5049 5541 5851 5745 4f49 553b 206d 6178 2d61 6765 3d33 3630 303b 2076
                 6572 7369 6f6e 3d31",
            ))
            .expect("valid");
        assert_eq!(third.headers.status(), Some(200));
        assert_eq!(
            third.headers.get_str("content-encoding").as_deref(),
            Some("gzip")
        );
        assert_eq!(decoder.table().size(), 215);
    }

    /// The detached form of every block of RFC 7541 C.4 (Huffman requests) and C.6 (Huffman
    /// responses, evictions) decodes, with an empty table that it never changes, to the list the
    /// block decoded to; static references and literal strings keep their bytes.
    #[test]
    fn detached_forms_decode_the_same_without_the_table() {
        let c4 = [
            "8286 8441 8cf1 e3c2 e5f2 3a6b a0ab 90f4 ff",
            "8286 84be 5886 a8eb 1064 9cbf",
        ];
        let c6 = [
            "3fe1 01 4882 6402 5885 aec3 771a 4b61 96d0 7abe 9410 54d4 44a8 2005 9504 0b81 66e0
             82a6 2d1b ff6e 919d 29ad 1718 63c7 8f0b 97c8 e9ae 82ae 43d3",
            "4883 640e ffc1 c0bf",
            "88c1 6196 d07a be94 1054 d444 a820 0595 040b 8166 e084 a62d 1bff c05a 839b d9ab 77ad
             94e7 821d d7f2 e6c7 b335 dfdf cd5b 3960 d5af 2708 7f36 72c1 ab27 0fb5 291f 9587 3160
             65c0 03ed 4ee5 b106 3d50 07",
        ];
        for blocks in [&c4[..], &c6[..]] {
            let mut decoder = Decoder::new().with_detached_forms();
            for (i, text) in blocks.iter().enumerate() {
                let block = hex(text);
                let decoded = decoder.decode(&block).expect("valid");
                let detached = decoded.detached.clone().expect("uses the dynamic table");
                let mut fresh = Decoder::new();
                let again = fresh.decode(&detached).expect("the detached form is valid");
                assert_eq!(again.headers, decoded.headers, "block {i}");
                assert!(fresh.table().is_empty(), "block {i} inserted nothing");
                assert_eq!(again.size_updates, decoded.size_updates, "block {i}");
            }
        }
        // A block with only static references and unindexed literals is its own detached form;
        // a never-indexed literal naming a dynamic entry stays never indexed.
        let mut decoder = Decoder::new().with_detached_forms();
        let plain = [0x82, 0x00, 0x01, b'a', 0x01, b'b', 0x1f, 0x10, 0x01, b'x'];
        assert_eq!(decoder.decode(&plain).expect("valid").detached, None);
        decoder
            .decode(&[0x40, 0x01, b'k', 0x01, b'v'])
            .expect("valid");
        let never = decoder.decode(&[0x1f, 0x2f, 0x01, b'w']).expect("valid");
        assert_eq!(
            never.detached.as_deref(),
            Some(&[0x10, 0x01, b'k', 0x01, b'w'][..])
        );
        assert!(Decoder::new()
            .decode(&[0x82])
            .expect("valid")
            .detached
            .is_none());
    }

    #[test]
    fn a_size_update_above_the_allowance_is_refused_until_allowed() {
        let mut decoder = Decoder::new();
        // Size update to 8192 (0x3f e1 3f).
        let update = [0x3f, 0xe1, 0x3f, 0x82];
        assert_eq!(
            decoder.decode(&update),
            Err(HpackError::TableSizeTooLarge {
                size: 8192,
                max: 4096
            })
        );
        decoder.allow_table_size(8192);
        assert!(decoder.decode(&update).expect("allowed").touches_table);
        assert_eq!(decoder.table().max_size(), 8192);
    }

    #[test]
    fn literal_without_indexing_leaves_the_table_alone() {
        let mut decoder = Decoder::new();
        // Literal without indexing, new name "a" value "b"; then never-indexed with indexed name 31.
        let decoded = decoder
            .decode(&[0x00, 0x01, b'a', 0x01, b'b', 0x1f, 0x10, 0x01, b'x'])
            .expect("valid");
        assert!(!decoded.touches_table);
        assert_eq!(pairs(&decoded), owned(&[("a", "b"), ("content-type", "x")]));
        assert!(decoder.table().is_empty());
    }

    #[test]
    fn malformed_blocks_are_errors_not_panics() {
        let mut decoder = Decoder::new();
        assert_eq!(decoder.decode(&[0x80]), Err(HpackError::BadIndex(0)));
        assert_eq!(decoder.decode(&[0xbe]), Err(HpackError::BadIndex(62)));
        assert_eq!(decoder.decode(&[0x3f]), Err(HpackError::Truncated));
        assert_eq!(decoder.decode(&[0x4e]), Err(HpackError::Truncated));
        assert_eq!(
            decoder.decode(&[0x40, 0x05, b'a']),
            Err(HpackError::Truncated)
        );
        assert_eq!(
            decoder.decode(&[0x82, 0x20]),
            Err(HpackError::LateTableSizeUpdate)
        );
        assert_eq!(
            decoder.decode(&[0x40, 0x81, 0x00, 0x00]),
            Err(HpackError::BadHuffman)
        );
    }

    /// The "HPACK bomb" of the hostile-input trial: one 4,000-byte entry inserted, then a 16 KB
    /// block of one-byte references to it (64 MB decoded). The decoder stops at the limit with
    /// an error, having kept no more than the limit, with or without detached forms.
    #[test]
    fn a_bomb_of_references_to_a_large_entry_stops_at_the_list_limit() {
        let insert = crate::h2::hpack_bomb::large_entry();
        let bomb = crate::h2::hpack_bomb::references_block(16_000);
        for detached in [false, true] {
            let mut decoder = Decoder::new();
            if detached {
                decoder = decoder.with_detached_forms();
            }
            let first = decoder.decode(&insert).expect("one large field is fine");
            assert_eq!(first.headers.fields[0].value.len(), 4000);
            let error = decoder.decode(&bomb).unwrap_err();
            // 3 static fields (42 + 39 + 37 bytes) then 64 references of 4,033 bytes fit.
            assert_eq!(
                error,
                HpackError::ListTooLarge {
                    limit: DEFAULT_MAX_LIST_SIZE,
                    fields: 3 + 64
                },
                "detached forms: {detached}"
            );
        }
    }

    /// A list exactly at the limit decodes; one byte more is an error, whether the crossing
    /// field is a reference or a literal.
    #[test]
    fn the_list_limit_counts_name_value_and_32_octets_per_field() {
        // `a: b` is 34 bytes; three of them are 102.
        let literal = [0x00, 0x01, b'a', 0x01, b'b'];
        let block: Vec<u8> = literal.repeat(3);
        let decoded = Decoder::new()
            .with_max_list_size(102)
            .decode(&block)
            .expect("at the limit");
        assert_eq!(decoded.headers.list_size(), 102);
        assert_eq!(
            Decoder::new().with_max_list_size(101).decode(&block),
            Err(HpackError::ListTooLarge {
                limit: 101,
                fields: 2
            })
        );
        // `:method GET` (static 2) is 42 bytes.
        assert_eq!(
            Decoder::new().with_max_list_size(83).decode(&[0x82, 0x82]),
            Err(HpackError::ListTooLarge {
                limit: 83,
                fields: 1
            })
        );
    }

    /// Random blocks built from references to large entries and literals, decoded by decoders
    /// that share a table: no successful decode returns a list over the limit, and no block
    /// panics (a cheap stand-in for the `h2_reader` fuzz target's HPACK half).
    #[test]
    fn random_blocks_never_decode_past_the_limit() {
        use rand::{Rng, SeedableRng};
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(7);
        let limit = 2048;
        let mut decoder = Decoder::new()
            .with_max_list_size(limit)
            .with_detached_forms();
        let (mut errors, mut fine) = (0, 0);
        for _ in 0..2000 {
            let mut block = Vec::new();
            for _ in 0..rng.gen_range(0..12) {
                match rng.gen_range(0..4) {
                    0 => {
                        // Insert an entry of up to 1,000 bytes.
                        let len = rng.gen_range(0..1000);
                        block.extend([0x40, 0x01, b'k']);
                        encode_integer(len, 7, 0x00, &mut block);
                        block.extend(std::iter::repeat_n(b'v', len));
                    }
                    1 => block.push(0x80 | rng.gen_range(1..70u8)),
                    2 => block.push(rng.gen()),
                    _ => block.extend([0x00, 0x01, b'a', 0x01, b'b']),
                }
            }
            match decoder.decode(&block) {
                Ok(decoded) => {
                    fine += 1;
                    assert!(decoded.headers.list_size() <= limit, "{block:02x?}");
                }
                Err(_) => errors += 1,
            }
        }
        assert!(
            fine > 100 && errors > 100,
            "{fine} decoded, {errors} refused"
        );
    }
}
