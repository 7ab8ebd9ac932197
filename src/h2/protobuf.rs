//! A minimal protobuf wire-format reader and writer (varints, length-delimited and fixed fields), enough for `google.bytestream`.
//!
//! Why not `prost`: the six ByteStream messages have eleven scalar fields between them; prost
//! would add code generation (protoc or checked-in generated code) and would copy a ReadResponse's
//! `data` (up to megabytes) into a new buffer, while `inspect` needs to know *where* those bytes
//! lie in the stream to compare offsets. This reader borrows: a length-delimited field is a slice
//! of the message, with its position.

use thiserror::Error;

/// Why bytes are not a protobuf message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum ProtobufError {
    /// A varint or field runs past the end of the message.
    #[error("message ends inside a field")]
    Truncated,
    /// A varint longer than 10 bytes.
    #[error("varint longer than 64 bits")]
    VarintTooLong,
    /// Field number 0 or a wire type protobuf does not define (3/4 are deprecated groups).
    #[error("invalid field key {0:#x}")]
    BadKey(u64),
}

/// One field's value as on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Value<'a> {
    /// Wire type 0.
    Varint(u64),
    /// Wire type 1.
    Fixed64(u64),
    /// Wire type 2, with the offset of its first byte in the message.
    Bytes {
        /// The bytes.
        bytes: &'a [u8],
        /// Where they start in the message.
        at: usize,
    },
    /// Wire type 5.
    Fixed32(u32),
}

/// Reads one varint at the start of `buf`: (value, bytes used).
pub fn read_varint(buf: &[u8]) -> Result<(u64, usize), ProtobufError> {
    let mut value = 0u64;
    for (i, &byte) in buf.iter().enumerate() {
        if i == 10 {
            return Err(ProtobufError::VarintTooLong);
        }
        value |= u64::from(byte & 0x7f) << (7 * i);
        if byte & 0x80 == 0 {
            return Ok((value, i + 1));
        }
    }
    if buf.len() >= 10 {
        return Err(ProtobufError::VarintTooLong);
    }
    Err(ProtobufError::Truncated)
}

/// Iterates over `(field number, value)` pairs of a message, in wire order.
pub fn fields(message: &[u8]) -> Fields<'_> {
    Fields {
        message,
        pos: 0,
        failed: false,
    }
}

/// Iterator returned by [`fields`]; yields one error and then stops on malformed input.
#[derive(Debug, Clone)]
pub struct Fields<'a> {
    message: &'a [u8],
    pos: usize,
    failed: bool,
}

impl<'a> Fields<'a> {
    fn next_field(&mut self) -> Result<(u32, Value<'a>), ProtobufError> {
        let rest = &self.message[self.pos..];
        let (key, used) = read_varint(rest)?;
        let number = key >> 3;
        if number == 0 || number > u64::from(u32::MAX >> 3) {
            return Err(ProtobufError::BadKey(key));
        }
        let mut pos = self.pos + used;
        let take = |pos: usize, n: usize| -> Result<&'a [u8], ProtobufError> {
            self.message
                .get(pos..pos.checked_add(n).ok_or(ProtobufError::Truncated)?)
                .ok_or(ProtobufError::Truncated)
        };
        let value = match key & 7 {
            0 => {
                let (value, used) = read_varint(&self.message[pos..])?;
                pos += used;
                Value::Varint(value)
            }
            1 => {
                let raw = take(pos, 8)?;
                pos += 8;
                Value::Fixed64(u64::from_le_bytes(raw.try_into().expect("8 bytes")))
            }
            2 => {
                let (len, used) = read_varint(&self.message[pos..])?;
                pos += used;
                let len = usize::try_from(len).map_err(|_| ProtobufError::Truncated)?;
                let bytes = take(pos, len)?;
                let at = pos;
                pos += len;
                Value::Bytes { bytes, at }
            }
            5 => {
                let raw = take(pos, 4)?;
                pos += 4;
                Value::Fixed32(u32::from_le_bytes(raw.try_into().expect("4 bytes")))
            }
            _ => return Err(ProtobufError::BadKey(key)),
        };
        self.pos = pos;
        Ok((number as u32, value))
    }
}

impl<'a> Iterator for Fields<'a> {
    type Item = Result<(u32, Value<'a>), ProtobufError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.failed || self.pos >= self.message.len() {
            return None;
        }
        let item = self.next_field();
        self.failed = item.is_err();
        Some(item)
    }
}

/// Appends a varint.
pub fn write_varint(mut value: u64, out: &mut Vec<u8>) {
    while value >= 0x80 {
        out.push((value as u8) | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
}

/// Appends a varint field (skipped when zero, as proto3 does for defaults).
pub fn write_varint_field(number: u32, value: u64, out: &mut Vec<u8>) {
    if value != 0 {
        write_varint(u64::from(number) << 3, out);
        write_varint(value, out);
    }
}

/// Appends a length-delimited field (skipped when empty, as proto3 does for defaults).
pub fn write_bytes_field(number: u32, bytes: &[u8], out: &mut Vec<u8>) {
    if !bytes.is_empty() {
        write_varint((u64::from(number) << 3) | 2, out);
        write_varint(bytes.len() as u64, out);
        out.extend_from_slice(bytes);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn varints_round_trip() {
        for value in [0u64, 1, 127, 128, 300, 1 << 35, u64::MAX] {
            let mut out = Vec::new();
            write_varint(value, &mut out);
            assert_eq!(read_varint(&out), Ok((value, out.len())));
        }
        assert_eq!(read_varint(&[0x80]), Err(ProtobufError::Truncated));
        assert_eq!(read_varint(&[0xff; 11]), Err(ProtobufError::VarintTooLong));
    }

    #[test]
    fn fields_of_every_wire_type_are_read_in_order() {
        let mut message = Vec::new();
        write_bytes_field(1, b"name", &mut message);
        write_varint_field(2, 300, &mut message);
        message.extend([(3 << 3) | 1]);
        message.extend(7u64.to_le_bytes());
        message.extend([(4 << 3) | 5]);
        message.extend(9u32.to_le_bytes());
        let read: Vec<_> = fields(&message).collect::<Result<_, _>>().expect("valid");
        assert_eq!(
            read,
            vec![
                (
                    1,
                    Value::Bytes {
                        bytes: b"name",
                        at: 2
                    }
                ),
                (2, Value::Varint(300)),
                (3, Value::Fixed64(7)),
                (4, Value::Fixed32(9)),
            ]
        );
    }

    #[test]
    fn malformed_messages_yield_one_error() {
        let truncated = [0x0a, 0x05, b'a'];
        let items: Vec<_> = fields(&truncated).collect();
        assert_eq!(items, vec![Err(ProtobufError::Truncated)]);
        let group = [0x0b];
        assert_eq!(
            fields(&group).next(),
            Some(Err(ProtobufError::BadKey(0x0b)))
        );
        let zero = [0x00, 0x01];
        assert_eq!(fields(&zero).next(), Some(Err(ProtobufError::BadKey(0))));
    }
}
