#!/usr/bin/env python3
"""A google.bytestream.ByteStream server on grpcio for faultline's inspect tests.

    inspect_server.py --blob SEED:SIZE[:text] [--blob ...] [--ignore-read-offset] [--chunk BYTES]
                      [--gzip] [--pause-after-first-ms MS]

Serves the given reproducible blobs under `ci/cas/blobs/{sha256}/{size}` and every blob written to
it. Read answers in messages of --chunk bytes; with --ignore-read-offset it answers every Read
from offset 0 (the broken server inspect must catch). Write stores each upload by its resource name,
keeps what arrived when a stream is cut (QueryWriteStatus then reports it), and honours
write_offset. With --gzip the server compresses its messages (`grpc-encoding: gzip`; grpcio
sends a message gzip does not shrink as it is, so pair it with :text blobs). Prints `listening on 127.0.0.1:PORT` on stderr, serves until SIGTERM.
"""
import argparse
import signal
import sys
import threading
import time
from concurrent import futures

import grpc

from blobs import blob_of_spec, read_name
from protobuf import field_bytes, field_varint, parse


def blob_of(upload):
    """`{instance}/uploads/{uuid}/blobs/{hash}/{size}` -> `{instance}/blobs/{hash}/{size}`."""
    return upload.split("/uploads/")[0] + "/blobs/" + upload.split("/blobs/")[-1]


class ByteStream:
    def __init__(self, blobs, chunk, ignore_offset, pause_after_first=0.0):
        self.blobs = {read_name(b): b for b in blobs}
        self.uploads = {}
        self.lock = threading.Condition()
        self.active = {}
        self.chunk = chunk
        self.ignore_offset = ignore_offset
        # Seconds to wait after the first message of a Read from offset 0, so that the client
        # has taken that message before a reset cut later in the stream (grpcio drops messages
        # it received but had not handed over when the stream is reset).
        self.pause_after_first = pause_after_first

    def read(self, request, context):
        fields = parse(request)
        name = fields.get(1, b"").decode()
        with self.lock:
            data = self.blobs.get(name)
        if data is None:
            context.abort(grpc.StatusCode.NOT_FOUND, f"no blob {name}")
        offset = 0 if self.ignore_offset else fields.get(2, 0)
        limit = fields.get(3, 0) or len(data)
        data = data[offset : offset + limit]
        for start in range(0, len(data), self.chunk):
            yield field_bytes(10, data[start : start + self.chunk])
            if start == 0 and fields.get(2, 0) == 0 and self.pause_after_first:
                time.sleep(self.pause_after_first)

    def write(self, requests, context):
        name = None
        try:
            for request in requests:
                fields = parse(request)
                if name is None:
                    name = fields.get(1, b"").decode()
                    with self.lock:
                        self.active[name] = self.active.get(name, 0) + 1
                offset = fields.get(2, 0)
                with self.lock:
                    stored = self.uploads.setdefault(name, bytearray())
                    if offset > len(stored):
                        message = f"write_offset {offset} > {len(stored)}"
                        context.abort(grpc.StatusCode.OUT_OF_RANGE, message)
                    del stored[offset:]
                    stored += fields.get(10, b"")
                    if fields.get(3, 0):
                        self.blobs[blob_of(name)] = bytes(stored)
        except grpc.RpcError:
            pass  # the stream was cut: what arrived stays committed
        finally:
            with self.lock:
                if name is not None:
                    self.active[name] -= 1
                self.lock.notify_all()
        with self.lock:
            return field_varint(1, len(self.uploads.get(name, b"")))

    def query_write_status(self, request, context):
        name = parse(request).get(1, b"").decode()
        with self.lock:
            # A Write of this name still reading its requests has not committed them all yet:
            # answer once it has (bounded), so committed_size is what really arrived.
            self.lock.wait_for(lambda: not self.active.get(name), timeout=10)
            size = len(self.uploads.get(name, b""))
            complete = blob_of(name) in self.blobs
        return field_varint(1, size) + field_varint(2, 1 if complete else 0)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--blob", action="append", default=[])
    parser.add_argument("--chunk", type=int, default=16 * 1024)
    parser.add_argument("--ignore-read-offset", action="store_true")
    parser.add_argument("--gzip", action="store_true")
    parser.add_argument("--pause-after-first-ms", type=float, default=0)
    args = parser.parse_args()
    blobs = [blob_of_spec(b) for b in args.blob]
    service = ByteStream(
        blobs, args.chunk, args.ignore_read_offset, args.pause_after_first_ms / 1000
    )
    handlers = {
        "Read": grpc.unary_stream_rpc_method_handler(service.read),
        "Write": grpc.stream_unary_rpc_method_handler(service.write),
        "QueryWriteStatus": grpc.unary_unary_rpc_method_handler(service.query_write_status),
    }
    compression = grpc.Compression.Gzip if args.gzip else None
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=16), compression=compression)
    server.add_generic_rpc_handlers(
        (grpc.method_handlers_generic_handler("google.bytestream.ByteStream", handlers),)
    )
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    print(f"listening on 127.0.0.1:{port}", file=sys.stderr, flush=True)
    stop.wait()
    server.stop(grace=None)


if __name__ == "__main__":
    main()
