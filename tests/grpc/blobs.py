"""What the inspect tests' ByteStream server and clients share: reproducible blobs and REAPI
resource names (the protobuf pieces are in protobuf.py)."""
import hashlib
import random

# The words text blobs are made of: few enough that gzip finds them again and again.
WORDS = "alpha bravo charlie delta echo foxtrot golf hotel india juliet kilo lima mike".split()


def blob(seed, size):
    """`size` reproducible bytes for `seed` (the server and the clients derive the same blob)."""
    return random.Random(seed).randbytes(size)


def text_blob(seed, size):
    """`size` reproducible bytes of numbered lines of words for `seed`: compressible, unlike
    blob() (grpcio sends a message that gzip does not shrink uncompressed), yet no two lines
    alike, so a misplaced piece does not go unnoticed."""
    rng = random.Random(seed)
    out = bytearray()
    line = 0
    while len(out) < size:
        words = " ".join(rng.choice(WORDS) for _ in range(rng.randint(4, 12)))
        out += f"{line:08d} {words} {rng.randint(0, 99999)}\n".encode()
        line += 1
    return bytes(out[:size])


def blob_of_spec(spec):
    """The blob a `SEED:SIZE` (random bytes) or `SEED:SIZE:text` (text_blob) argument names."""
    seed, size, *kind = spec.split(":")
    if kind == ["text"]:
        return text_blob(int(seed), int(size))
    if kind:
        raise ValueError(f"blob {spec!r}: the kind after SEED:SIZE is 'text' or nothing")
    return blob(int(seed), int(size))


def read_name(data, instance="ci/cas"):
    return f"{instance}/blobs/{hashlib.sha256(data).hexdigest()}/{len(data)}"


def upload_name(data, upload_id, instance="ci/cas"):
    return f"{instance}/uploads/{upload_id}/blobs/{hashlib.sha256(data).hexdigest()}/{len(data)}"
