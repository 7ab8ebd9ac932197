"""What the inspect tests' ByteStream server and clients share: reproducible blobs and REAPI
resource names (the protobuf pieces are in protobuf.py)."""
import hashlib
import random


def blob(seed, size):
    """`size` reproducible bytes for `seed` (the server and the clients derive the same blob)."""
    return random.Random(seed).randbytes(size)


def read_name(data, instance="ci/cas"):
    return f"{instance}/blobs/{hashlib.sha256(data).hexdigest()}/{len(data)}"


def upload_name(data, upload_id, instance="ci/cas"):
    return f"{instance}/uploads/{upload_id}/blobs/{hashlib.sha256(data).hexdigest()}/{len(data)}"
