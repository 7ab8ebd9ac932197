"""The few protobuf wire-format pieces the gRPC test programs need (ByteStream's messages have a
handful of scalar and bytes fields), so grpcio alone suffices: no generated code, no protobuf
package."""

def varint(value):
    out = bytearray()
    while value >= 0x80:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def field_bytes(number, data):
    return varint(number << 3 | 2) + varint(len(data)) + data


def field_varint(number, value):
    return varint(number << 3) + varint(value) if value else b""


def read_varint(data, pos):
    value = shift = 0
    while True:
        byte = data[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        shift += 7
        if not byte & 0x80:
            return value, pos


def parse(message):
    """proto3 fields as {number: value} (last one wins): enough for ByteStream messages."""
    fields, pos = {}, 0
    while pos < len(message):
        key, pos = read_varint(message, pos)
        number, wire = key >> 3, key & 7
        if wire == 0:
            fields[number], pos = read_varint(message, pos)
        elif wire == 2:
            length, pos = read_varint(message, pos)
            fields[number] = message[pos : pos + length]
            pos += length
        else:
            raise ValueError(f"unexpected wire type {wire}")
    return fields
