#!/usr/bin/env python3
"""Concurrent grpcio client-streaming uploads, for faultline's HTTP/2 tests.

grpcio alone (tests/install-grpc.sh), generic handlers, raw bytes as messages.

    uploads.py serve
        Prints "listening on 127.0.0.1:PORT" on stderr, then serves /t.Uploads/Upload
        (client-streaming) until SIGTERM: it reads every message of a call and answers
        "BYTES:SHA256" of their concatenation, and logs the same on stderr, one line per call
        ("upload BYTES SHA256").

    uploads.py upload --target HOST:PORT [--calls N] [--messages M] [--size S]
                      [--deadline SECONDS]
        Starts N Upload calls at once on one channel (one TCP connection), each streaming M
        messages of S random bytes. Prints one JSON object on stdout:
        {"uploads": [{status, detail, sent: "BYTES:SHA256", answer, seconds}]}.
        Exit 0 when every call answered what it sent, 1 otherwise.
"""

import argparse
import hashlib
import json
import os
import sys
import threading
import time
from concurrent import futures

import grpc

from serving import log, serve_until_sigterm

METHOD = "/t.Uploads/Upload"


def identity(data):
    return data


def upload(messages, context):
    digest = hashlib.sha256()
    count = 0
    for message in messages:
        digest.update(message)
        count += len(message)
    answer = f"{count}:{digest.hexdigest()}"
    log(f"upload {count} {digest.hexdigest()}")
    return answer.encode()


def serve(_args):
    handler = grpc.method_handlers_generic_handler(
        "t.Uploads",
        {"Upload": grpc.stream_unary_rpc_method_handler(upload, identity, identity)},
    )
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=32))
    server.add_generic_rpc_handlers((handler,))
    port = server.add_insecure_port("127.0.0.1:0")
    serve_until_sigterm(server, port)
    return 0


def run_uploads(args):
    channel = grpc.insecure_channel(args.target, options=[("grpc.enable_retries", 0)])
    call = channel.stream_unary(METHOD, request_serializer=identity, response_deserializer=identity)
    results = [None] * args.calls
    start = threading.Barrier(args.calls)

    def one(index):
        messages = [bytes([index]) + os.urandom(args.size - 1) for _ in range(args.messages)]
        digest = hashlib.sha256(b"".join(messages)).hexdigest()
        sent = f"{args.size * args.messages}:{digest}"
        start.wait()
        began = time.monotonic()
        try:
            answer = call(iter(messages), timeout=args.deadline).decode()
            status, detail = "OK", ""
        except grpc.RpcError as error:
            answer, status, detail = "", error.code().name, error.details() or ""
        results[index] = {
            "status": status,
            "detail": detail,
            "sent": sent,
            "answer": answer,
            "seconds": round(time.monotonic() - began, 3),
        }

    threads = [threading.Thread(target=one, args=(i,)) for i in range(args.calls)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    channel.close()
    print(json.dumps({"uploads": results}))
    return 0 if all(r["status"] == "OK" and r["answer"] == r["sent"] for r in results) else 1


def main():
    parser = argparse.ArgumentParser()
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("serve")
    client = commands.add_parser("upload")
    client.add_argument("--target", required=True)
    client.add_argument("--calls", type=int, default=4)
    client.add_argument("--messages", type=int, default=32)
    client.add_argument("--size", type=int, default=65536)
    client.add_argument("--deadline", type=float, default=20.0)
    args = parser.parse_args()
    return serve(args) if args.command == "serve" else run_uploads(args)


if __name__ == "__main__":
    sys.exit(main())
