#!/usr/bin/env python3
"""grpcio ByteStream clients for faultline's inspect tests; print one JSON line of what happened.

    inspect_client.py read ADDR SEED:SIZE[:text] --parallel N   # N concurrent Reads of one blob on one channel;
                                                 # a failed Read resumes with read_offset = bytes it has
    inspect_client.py write ADDR SEED:SIZE --chunk BYTES --pace MS
                                                 # Write in messages of BYTES, one every MS (a slow
                                                 # uploader); a failed Write asks QueryWriteStatus
                                                 # and resumes at committed_size

A blob is SEED:SIZE (random bytes) or SEED:SIZE:text (compressible lines, blobs.text_blob). With
--gzip the channel compresses what the client sends (`grpc-encoding: gzip`). Every call has a deadline; at most 4 attempts per transfer. The JSON says per transfer the offsets
each attempt started at, the status codes of failed attempts and whether the result verified.
"""
import argparse
import hashlib
import json
import threading
import time
import uuid

import grpc

from blobs import blob_of_spec, read_name, upload_name
from protobuf import field_bytes, field_varint, parse

DEADLINE = 30
ATTEMPTS = 4


def read(channel, data, name, out):
    call = channel.unary_stream("/google.bytestream.ByteStream/Read")
    received = bytearray()
    offsets, failures = [], []
    for _ in range(ATTEMPTS):
        offsets.append(len(received))
        request = field_bytes(1, name.encode()) + field_varint(2, len(received))
        try:
            for message in call(request, timeout=DEADLINE):
                received += parse(message).get(10, b"")
            break
        except grpc.RpcError as error:
            failures.append(error.code().name)
    out.append(
        {
            "offsets": offsets,
            "failures": failures,
            "length": len(received),
            "verified": hashlib.sha256(received).hexdigest() == hashlib.sha256(data).hexdigest(),
        }
    )


def write(channel, data, chunk, pace):
    call = channel.stream_unary("/google.bytestream.ByteStream/Write")
    query = channel.unary_unary("/google.bytestream.ByteStream/QueryWriteStatus")
    name = upload_name(data, uuid.UUID(int=len(data)))
    offsets, failures, committed = [], [], 0
    for _ in range(ATTEMPTS):
        offsets.append(committed)

        def requests(start=committed):
            for at in range(start, len(data), chunk):
                piece = data[at : at + chunk]
                last = at + len(piece) == len(data)
                if at > start:
                    time.sleep(pace / 1000)
                yield (
                    (field_bytes(1, name.encode()) if at == start else b"")
                    + field_varint(2, at)
                    + field_varint(3, 1 if last else 0)
                    + field_bytes(10, piece)
                )

        try:
            committed = parse(call(requests(), timeout=DEADLINE)).get(1, 0)
            if committed == len(data):
                break
        except grpc.RpcError as error:
            failures.append(error.code().name)
            committed = parse(query(field_bytes(1, name.encode()), timeout=DEADLINE)).get(1, 0)
    return {"offsets": offsets, "failures": failures, "committed": committed, "name": name}


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("mode", choices=["read", "write"])
    parser.add_argument("address")
    parser.add_argument("blob")
    parser.add_argument("--parallel", type=int, default=1)
    parser.add_argument("--chunk", type=int, default=64 * 1024)
    parser.add_argument("--pace", type=float, default=0)
    parser.add_argument("--gzip", action="store_true")
    args = parser.parse_args()
    data = blob_of_spec(args.blob)
    compression = grpc.Compression.Gzip if args.gzip else None
    with grpc.insecure_channel(args.address, compression=compression) as channel:
        if args.mode == "read":
            results = []
            threads = [
                threading.Thread(target=read, args=(channel, data, read_name(data), results))
                for _ in range(args.parallel)
            ]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
            print(json.dumps({"name": read_name(data), "reads": results}))
        else:
            print(json.dumps(write(channel, data, args.chunk, args.pace)))


if __name__ == "__main__":
    main()
