//! HPACK Huffman decoding (RFC 7541 §5.2, Appendix B) by canonical code lengths, without tables to build at run time.
//!
//! The HPACK code is canonical: codes of one length are consecutive numbers, ordered by symbol, and
//! each length's first code follows from the shorter ones. So the 257 code lengths below are the
//! whole code; [`CANON`] is derived from them at compile time, and decoding walks one bit at a
//! time comparing against the first code of each length. That is a few operations per bit and no
//! allocation besides the output, which matters because every header block on a connection is
//! decoded (a decoder that builds a hash map per string cost ~35 µs per string when measured).

use super::hpack::HpackError;

/// Code length in bits of every symbol 0..=255 and of EOS (256), from RFC 7541 Appendix B.
const LENGTHS: [u8; 257] = [
    13, 23, 28, 28, 28, 28, 28, 28, 28, 24, 30, 28, 28, 30, 28, 28, 28, 28, 28, 28, 28, 28, 30, 28,
    28, 28, 28, 28, 28, 28, 28, 28, 6, 10, 10, 12, 13, 6, 8, 11, 10, 10, 8, 11, 8, 6, 6, 6, 5, 5,
    5, 6, 6, 6, 6, 6, 6, 6, 7, 8, 15, 6, 12, 10, 13, 6, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7,
    7, 7, 7, 7, 7, 7, 7, 7, 8, 7, 8, 13, 19, 13, 14, 6, 15, 5, 6, 5, 6, 5, 6, 6, 6, 5, 7, 7, 6, 6,
    6, 5, 6, 7, 6, 5, 5, 6, 7, 7, 7, 7, 7, 15, 11, 14, 13, 28, 20, 22, 20, 20, 22, 22, 22, 23, 22,
    23, 23, 23, 23, 23, 24, 23, 24, 24, 22, 23, 24, 23, 23, 23, 23, 21, 22, 23, 22, 23, 23, 24, 22,
    21, 20, 22, 22, 23, 23, 21, 23, 22, 22, 24, 21, 22, 23, 23, 21, 21, 22, 21, 23, 22, 23, 23, 20,
    22, 22, 22, 23, 22, 22, 23, 26, 26, 20, 19, 22, 23, 22, 25, 26, 26, 26, 27, 27, 26, 24, 25, 19,
    21, 26, 27, 27, 26, 27, 24, 21, 21, 26, 26, 28, 27, 27, 27, 20, 24, 20, 21, 22, 21, 21, 23, 22,
    22, 25, 25, 24, 24, 26, 23, 26, 27, 26, 26, 27, 27, 27, 27, 27, 28, 27, 27, 27, 27, 27, 26, 30,
];

/// The end-of-string symbol; finding it inside a string is an error (RFC 7541 §5.2).
const EOS: u16 = 256;

/// Longest code length (EOS and a few control bytes).
const MAX_LEN: usize = 30;

/// Per length: first code, number of codes, and where its symbols start in `symbols`.
struct Canon {
    first_code: [u32; MAX_LEN + 1],
    count: [u32; MAX_LEN + 1],
    start: [u16; MAX_LEN + 1],
    /// Symbols sorted by (code length, symbol): canonical order.
    symbols: [u16; 257],
}

const fn build() -> Canon {
    let mut count = [0u32; MAX_LEN + 1];
    let mut i = 0;
    while i < 257 {
        count[LENGTHS[i] as usize] += 1;
        i += 1;
    }
    let mut first_code = [0u32; MAX_LEN + 1];
    let mut start = [0u16; MAX_LEN + 1];
    let mut code = 0u32;
    let mut at = 0u16;
    let mut len = 1;
    while len <= MAX_LEN {
        // Canonical assignment: the first code of a length follows the last code of the shorter
        // lengths, shifted left by one bit per length step.
        code = (code + count[len - 1]) << 1;
        first_code[len] = code;
        start[len] = at;
        at += count[len] as u16;
        len += 1;
    }
    let mut symbols = [0u16; 257];
    let mut filled = [0u16; MAX_LEN + 1];
    let mut symbol = 0;
    while symbol < 257 {
        let len = LENGTHS[symbol] as usize;
        symbols[(start[len] + filled[len]) as usize] = symbol as u16;
        filled[len] += 1;
        symbol += 1;
    }
    Canon {
        first_code,
        count,
        start,
        symbols,
    }
}

/// The decoding tables, computed once by the compiler.
const CANON: Canon = build();

/// Appends the decoded form of a Huffman-coded string to `out`.
///
/// Errors (RFC 7541 §5.2): EOS inside the string, padding longer than 7 bits, or padding that is
/// not the most significant bits of EOS (all ones).
pub fn decode(coded: &[u8], out: &mut Vec<u8>) -> Result<(), HpackError> {
    let mut code: u32 = 0;
    let mut len: usize = 0;
    out.reserve(coded.len() * 8 / 5);
    for &byte in coded {
        for shift in (0..8).rev() {
            code = (code << 1) | u32::from((byte >> shift) & 1);
            len += 1;
            if len > MAX_LEN {
                return Err(HpackError::BadHuffman);
            }
            let first = CANON.first_code[len];
            let count = CANON.count[len];
            if count > 0 && code >= first && code - first < count {
                let symbol = CANON.symbols[(u32::from(CANON.start[len]) + code - first) as usize];
                if symbol == EOS {
                    return Err(HpackError::BadHuffman);
                }
                out.push(symbol as u8);
                code = 0;
                len = 0;
            }
        }
    }
    if len > 7 || code != (1u32 << len) - 1 {
        return Err(HpackError::BadHuffman);
    }
    Ok(())
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// The canonical code of `symbol`, for the test encoder.
    fn code_of(symbol: usize) -> (u32, u8) {
        let len = LENGTHS[symbol] as usize;
        let rank = (CANON.start[len] as usize..)
            .zip(&CANON.symbols[CANON.start[len] as usize..])
            .find(|(_, s)| **s as usize == symbol)
            .map(|(i, _)| i - CANON.start[len] as usize)
            .expect("every symbol has a code");
        (CANON.first_code[len] + rank as u32, len as u8)
    }

    /// Huffman-encodes `plain` (tests only: faultline itself never Huffman-encodes).
    pub(crate) fn encode(plain: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        let mut acc: u64 = 0;
        let mut bits = 0;
        for &byte in plain {
            let (code, len) = code_of(byte as usize);
            acc = (acc << len) | u64::from(code);
            bits += len as u32;
            while bits >= 8 {
                bits -= 8;
                out.push((acc >> bits) as u8);
            }
        }
        if bits > 0 {
            let pad = 8 - bits;
            out.push(((acc << pad) as u8) | ((1u8 << pad) - 1));
        }
        out
    }

    #[test]
    fn known_codes_match_rfc_7541_appendix_b() {
        assert_eq!(code_of(b'0' as usize), (0x0, 5));
        assert_eq!(code_of(b'a' as usize), (0x3, 5));
        assert_eq!(code_of(b' ' as usize), (0x14, 6));
        assert_eq!(code_of(0), (0x1ff8, 13));
        assert_eq!(code_of(256), (0x3fff_ffff, 30));
    }

    #[test]
    fn rfc_7541_appendix_c4_strings_decode() {
        let cases: [(&[u8], &[u8]); 4] = [
            (
                &[
                    0xf1, 0xe3, 0xc2, 0xe5, 0xf2, 0x3a, 0x6b, 0xa0, 0xab, 0x90, 0xf4, 0xff,
                ],
                b"www.example.com",
            ),
            (&[0xa8, 0xeb, 0x10, 0x64, 0x9c, 0xbf], b"no-cache"),
            (
                &[0x25, 0xa8, 0x49, 0xe9, 0x5b, 0xa9, 0x7d, 0x7f],
                b"custom-key",
            ),
            (
                &[0x25, 0xa8, 0x49, 0xe9, 0x5b, 0xb8, 0xe8, 0xb4, 0xbf],
                b"custom-value",
            ),
        ];
        for (coded, plain) in cases {
            let mut out = Vec::new();
            decode(coded, &mut out).expect("valid");
            assert_eq!(out, plain);
            assert_eq!(encode(plain), coded);
        }
    }

    #[test]
    fn every_byte_value_round_trips() {
        let all: Vec<u8> = (0..=255).collect();
        let mut out = Vec::new();
        decode(&encode(&all), &mut out).expect("valid");
        assert_eq!(out, all);
    }

    #[test]
    fn bad_padding_and_eos_are_errors() {
        // 'a' (00011) padded with zeros instead of ones.
        assert_eq!(
            decode(&[0b0001_1000], &mut Vec::new()),
            Err(HpackError::BadHuffman)
        );
        // A whole byte of padding (8 ones) after a complete symbol.
        assert_eq!(
            decode(&[0b0001_1111, 0xff], &mut Vec::new()),
            Err(HpackError::BadHuffman)
        );
        // EOS itself (30 ones) inside the string.
        assert_eq!(
            decode(&[0xff, 0xff, 0xff, 0xfc], &mut Vec::new()),
            Err(HpackError::BadHuffman)
        );
        assert_eq!(decode(&[], &mut Vec::new()), Ok(()));
    }
}
