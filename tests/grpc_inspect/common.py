"""What the ByteStream test server and clients share: reproducible blobs, REAPI resource names and
the few protobuf fields of google.bytestream, encoded by hand (grpcio alone, no generated code)."""
import hashlib
import random


def blob(seed, size):
    """`size` reproducible bytes for `seed` (the server and the clients derive the same blob)."""
    return random.Random(seed).randbytes(size)


def read_name(data, instance="ci/cas"):
    return f"{instance}/blobs/{hashlib.sha256(data).hexdigest()}/{len(data)}"


def upload_name(data, upload_id, instance="ci/cas"):
    return f"{instance}/uploads/{upload_id}/blobs/{hashlib.sha256(data).hexdigest()}/{len(data)}"


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
    """proto3 fields as {number: value} (the last occurrence wins)."""
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
            raise ValueError(f"wire type {wire}")
    return fields
