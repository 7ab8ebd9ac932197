#!/usr/bin/env python3
"""A real grpcio google.bytestream.ByteStream server and readers, for faultline's HTTP/2 tests.

Messages are encoded by hand (the three ByteStream messages have a handful of scalar fields),
so no generated code and no protobuf package are needed: grpcio alone, from
tests/install-grpc.sh.

    bytestream.py serve [--ignore-offset] [--chunk N] [--barrier N] [--pace-ms N]
                        [--blobs K --size S] [--tls-cert PEM --tls-key PEM]
        Prints "listening on 127.0.0.1:PORT" on stderr, then serves Read, Write and
        QueryWriteStatus until SIGTERM. Every call is logged on stderr, one line each
        ("read BLOB offset=K limit=L sent=N status=S"). --ignore-offset serves every Read from
        byte 0 (a server bug); a Write is committed only with finish_write; --barrier N holds the first N Reads until N are open at once, so
        they really run concurrently on one connection; --pace-ms N sleeps N ms between two
        messages of a Read (a slow stream); --tls-cert and --tls-key serve TLS (grpcio's
        ssl_server_credentials, ALPN h2) instead of cleartext HTTP/2.

    bytestream.py read --target HOST:PORT [--blobs K --size S] [--mode resume|restart]
                       [--attempts N] [--retry-policy] [--rounds R] [--deadline SECONDS]
                       [--no-bdp] [--pause-ms N] [--root-cert PEM [--server-name NAME]]
        Reads the K blobs concurrently on one channel (one TCP connection), R rounds in a row.
        A Read that fails is tried again, up to N attempts: `resume` asks for read_offset = the
        bytes it already has (correct), `restart` asks for offset 0 and appends what comes to what
        it had (a client bug). --retry-policy enables grpcio's own retries of UNAVAILABLE;
        --no-bdp keeps grpcio's flow-control windows at their initial 64 KiB; --pause-ms N
        waits N ms between rounds (the channel idle). --root-cert speaks TLS trusting only
        that certificate (grpc.ssl_channel_credentials); --server-name is the name the
        certificate is checked against and sent as SNI (the target stays an address).
        Each Read has a deadline (default 20 s). Prints one JSON object on stdout: per blob, each
        attempt (offset, status, bytes, seconds) and
        whether the assembled bytes match the sha256 and size in the resource name. Exit 0 when
        every blob verifies, 1 otherwise.

    bytestream.py write --target HOST:PORT [--blobs K --size S] [--attempts N] [--piece P]
                        [--root-cert PEM [--server-name NAME]]
        Uploads each blob with Write in P-byte requests (write_offset in order, finish_write on
        the last), a fresh upload id per attempt, starting again at 0 after a failure. Prints
        {"writes": [{resource, attempts: [{status, committed}]}]}. The server logs each Write it
        completed with whether the bytes match the digest and size in the name.

Blobs are reproducible: blob i of size S is random.Random(i).randbytes(S), named
"main/blobs/{sha256}/{S}" as REAPI does.
"""
import argparse
import hashlib
import json
import random
import sys
import threading
import time
import uuid
from concurrent import futures

import grpc

from protobuf import field_bytes, field_varint, parse
from serving import log, serve_until_sigterm

SERVICE = "google.bytestream.ByteStream"
READ = f"/{SERVICE}/Read"
WRITE = f"/{SERVICE}/Write"
QUERY = f"/{SERVICE}/QueryWriteStatus"
# Every wait is bounded: a barrier that never fills, a call that never ends.
LIMIT_SECONDS = 20


def read_request(name, offset=0, limit=0):
    return field_bytes(1, name.encode()) + field_varint(2, offset) + field_varint(3, limit)


# ---------------------------------------------------------------------------------------- blobs


def blob(index, size):
    return random.Random(index).randbytes(size)


def resource_name(data):
    return f"main/blobs/{hashlib.sha256(data).hexdigest()}/{len(data)}"


def blobs(count, size):
    """{resource name: bytes} of blobs 0..count."""
    return {resource_name(b): b for b in (blob(i, size) for i in range(count))}


# --------------------------------------------------------------------------------------- server


class ByteStream:
    def __init__(self, args):
        self.blobs = blobs(args.blobs, args.size)
        self.chunk = args.chunk
        self.pace = args.pace_ms / 1000
        self.ignore_offset = args.ignore_offset
        self.uploads = {}
        self.barrier_size = args.barrier
        self.arrived = 0
        self.lock = threading.Condition()

    def wait_for_siblings(self):
        with self.lock:
            if self.arrived >= self.barrier_size:
                return
            self.arrived += 1
            self.lock.notify_all()
            self.lock.wait_for(lambda: self.arrived >= self.barrier_size, timeout=LIMIT_SECONDS)

    def read(self, request, context):
        fields = parse(request)
        name = fields.get(1, b"").decode()
        offset = fields.get(2, 0)
        limit = fields.get(3, 0)
        data = self.blobs.get(name)
        if data is None:
            log(f"read {name} offset={offset} limit={limit} sent=0 status=NOT_FOUND")
            context.abort(grpc.StatusCode.NOT_FOUND, f"no blob {name}")
        self.wait_for_siblings()
        start = 0 if self.ignore_offset else offset
        end = len(data) if not limit else min(len(data), start + limit)
        sent = 0
        try:
            for at in range(start, end, self.chunk):
                piece = data[at : min(at + self.chunk, end)]
                if self.pace and at > start:
                    time.sleep(self.pace)
                yield field_bytes(10, piece)
                sent += len(piece)
        finally:
            status = "OK" if sent == end - start else "CANCELLED"
            log(f"read {name} offset={offset} limit={limit} sent={sent} status={status}")

    def write(self, requests, context):
        name, total, finished = None, bytearray(), False
        # A cancelled call may end grpcio's request iterator quietly: only finish_write says
        # the client sent everything.
        for request in requests:
            fields = parse(request)
            name = name or fields.get(1, b"").decode()
            if fields.get(2, 0) != len(total):
                context.abort(grpc.StatusCode.INVALID_ARGUMENT, "write_offset out of order")
            total += fields.get(10, b"")
            finished = bool(fields.get(3, 0))
        if not finished:
            log(f"write {name} bytes={len(total)} unfinished")
            context.abort(grpc.StatusCode.ABORTED, "the upload ended without finish_write")
        self.uploads[name] = bytes(total)
        digest, size = name.split("/")[-2:]
        intact = hashlib.sha256(total).hexdigest() == digest and len(total) == int(size)
        log(f"write {name} bytes={len(total)} intact={intact}")
        return field_varint(1, len(total))

    def query_write_status(self, request, context):
        name = parse(request).get(1, b"").decode()
        size = len(self.uploads.get(name, b""))
        log(f"query {name} committed={size}")
        return field_varint(1, size) + field_varint(2, 1 if size else 0)


def serve(args):
    service = ByteStream(args)
    handlers = {
        "Read": grpc.unary_stream_rpc_method_handler(service.read),
        "Write": grpc.stream_unary_rpc_method_handler(service.write),
        "QueryWriteStatus": grpc.unary_unary_rpc_method_handler(service.query_write_status),
    }
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=16))
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(SERVICE, handlers),))
    if args.tls_cert:
        with open(args.tls_cert, "rb") as cert, open(args.tls_key, "rb") as key:
            credentials = grpc.ssl_server_credentials([(key.read(), cert.read())])
        port = server.add_secure_port("127.0.0.1:0", credentials)
    else:
        port = server.add_insecure_port("127.0.0.1:0")
    serve_until_sigterm(server, port)
    return 0


# --------------------------------------------------------------------------------------- reader


class Reader:
    """Reads one blob to the end, trying again after a failed stream as --mode says."""

    def __init__(self, call, name, expected, args):
        self.call = call
        self.name = name
        self.expected = expected
        self.args = args
        self.have = bytearray()
        self.attempts = []

    def run(self):
        for _ in range(self.args.attempts):
            offset = len(self.have) if self.args.mode == "resume" else 0
            got = 0
            status = "OK"
            detail = ""
            started = time.monotonic()
            try:
                for message in self.call(
                    read_request(self.name, offset), timeout=self.args.deadline
                ):
                    data = parse(message).get(10, b"")
                    self.have += data
                    got += len(data)
            except grpc.RpcError as error:
                status = error.code().name
                detail = error.details() or ""
            self.attempts.append(
                {
                    "offset": offset,
                    "status": status,
                    "bytes": got,
                    "detail": detail,
                    "seconds": round(time.monotonic() - started, 3),
                }
            )
            if status == "OK":
                break
        return self

    def report(self):
        digest = hashlib.sha256(self.have).hexdigest()
        return {
            "resource": self.name,
            "attempts": self.attempts,
            "size": len(self.have),
            "sha256": digest,
            "verified": bytes(self.have) == self.expected,
        }


RETRY_POLICY = json.dumps(
    {
        "methodConfig": [
            {
                "name": [{"service": SERVICE}],
                "retryPolicy": {
                    "maxAttempts": 3,
                    "initialBackoff": "0.05s",
                    "maxBackoff": "0.2s",
                    "backoffMultiplier": 2,
                    "retryableStatusCodes": ["UNAVAILABLE"],
                },
            }
        ]
    }
)


def channel(args, options=()):
    """A channel to --target: TLS trusting --root-cert alone when given, cleartext otherwise."""
    options = list(options)
    if not args.root_cert:
        return grpc.insecure_channel(args.target, options=options)
    with open(args.root_cert, "rb") as pem:
        credentials = grpc.ssl_channel_credentials(root_certificates=pem.read())
    if args.server_name:
        options.append(("grpc.ssl_target_name_override", args.server_name))
    return grpc.secure_channel(args.target, credentials, options=options)


def read(args):
    options = [("grpc.enable_retries", 1 if args.retry_policy else 0)]
    if args.no_bdp:
        # Windows stay at their initial 64 KiB: credit faultline withholds would starve the rest.
        options.append(("grpc.http2.bdp_probe", 0))
    if args.retry_policy:
        options.append(("grpc.service_config", RETRY_POLICY))
    wanted = blobs(args.blobs, args.size)
    rounds = []
    with channel(args, options) as chan:
        call = chan.unary_stream(READ)
        for round_number in range(args.rounds):
            if round_number:
                time.sleep(args.pause_ms / 1000)
            readers = [Reader(call, name, data, args) for name, data in wanted.items()]
            with futures.ThreadPoolExecutor(max_workers=len(readers)) as pool:
                done = list(pool.map(Reader.run, readers))
            rounds.append([r.report() for r in done])
    ok = all(r["verified"] for one in rounds for r in one)
    print(json.dumps({"rounds": rounds, "verified": ok}))
    return 0 if ok else 1


def write(args):
    """Uploads each blob with Write (one after the other), a fresh upload id per attempt,
    restarting at 0 after a failure; reports each attempt's status."""
    wanted = blobs(args.blobs, args.size)
    report = []
    with channel(args) as chan:
        call = chan.stream_unary(WRITE)
        for name, data in wanted.items():
            digest_size = name.split("/blobs/", 1)[1]
            attempts = []
            for _ in range(args.attempts):
                upload = f"main/uploads/{uuid.uuid4()}/blobs/{digest_size}"

                def requests():
                    for at in range(0, len(data), args.piece):
                        piece = data[at : at + args.piece]
                        last = at + len(piece) == len(data)
                        yield (
                            (field_bytes(1, upload.encode()) if at == 0 else b"")
                            + field_varint(2, at)
                            + field_varint(3, 1 if last else 0)
                            + field_bytes(10, piece)
                        )

                try:
                    committed = parse(call(requests(), timeout=args.deadline)).get(1, 0)
                    attempts.append({"status": "OK", "committed": committed})
                    break
                except grpc.RpcError as error:
                    attempts.append({"status": error.code().name, "committed": 0})
            report.append({"resource": name, "attempts": attempts})
    print(json.dumps({"writes": report}))
    return 0


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    for name in ("serve", "read", "write"):
        p = sub.add_parser(name)
        p.add_argument("--blobs", type=int, default=3)
        p.add_argument("--size", type=int, default=1024 * 1024)
    s = sub.choices["serve"]
    s.add_argument("--ignore-offset", action="store_true")
    s.add_argument("--chunk", type=int, default=64 * 1024)
    s.add_argument("--barrier", type=int, default=0)
    s.add_argument("--pace-ms", type=int, default=0)
    s.add_argument("--tls-cert")
    s.add_argument("--tls-key")
    r = sub.choices["read"]
    r.add_argument("--target", required=True)
    r.add_argument("--mode", choices=("resume", "restart"), default="resume")
    r.add_argument("--attempts", type=int, default=3)
    r.add_argument("--retry-policy", action="store_true")
    r.add_argument("--rounds", type=int, default=1)
    r.add_argument("--deadline", type=float, default=LIMIT_SECONDS)
    r.add_argument("--no-bdp", action="store_true")
    r.add_argument("--pause-ms", type=int, default=0)
    w = sub.choices["write"]
    w.add_argument("--target", required=True)
    w.add_argument("--attempts", type=int, default=3)
    w.add_argument("--piece", type=int, default=64 * 1024)
    w.add_argument("--deadline", type=float, default=LIMIT_SECONDS)
    for client in (r, w):
        client.add_argument("--root-cert")
        client.add_argument("--server-name")
    args = parser.parse_args()
    if args.command == "serve" and bool(args.tls_cert) != bool(args.tls_key):
        parser.error("--tls-cert and --tls-key go together")
    return {"serve": serve, "read": read, "write": write}[args.command](args)


if __name__ == "__main__":
    sys.exit(main())
