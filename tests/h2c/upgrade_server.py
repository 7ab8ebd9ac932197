#!/usr/bin/env python3
"""A real h2c server that accepts HTTP/1.1 `Upgrade: h2c`, for faultline's HTTP/2 tests.

nginx and nghttpd speak h2c with prior knowledge only; this server does what RFC 7540 section 3.2
describes with the h2 package (python-hyper, from tests/install-grpc.sh): it answers an
HTTP/1.1 request carrying `Upgrade: h2c` and `HTTP2-Settings` with `101 Switching Protocols`,
then speaks HTTP/2 on the same connection, the upgraded request being stream 1.

    upgrade_server.py
        Prints "listening on 127.0.0.1:PORT" on stderr, then serves until SIGTERM. Every request
        gets 200 and the body "METHOD PATH stream N from the upgraded server\\n", and is logged
        on stderr ("request stream=N METHOD PATH"). A request without the upgrade gets 400 and
        is logged as "refused METHOD PATH (no h2c upgrade)": a client that did not ask to
        upgrade fails visibly instead of passing through as HTTP/1.1.
"""
import signal
import socket
import sys
import threading

import h2.config
import h2.connection
import h2.events
import h2.exceptions

# Every socket wait is bounded: a peer that stops talking frees its thread.
LIMIT_SECONDS = 20


def log(line):
    print(line, file=sys.stderr, flush=True)


def read_head(sock):
    """The HTTP/1.1 request head (bytes up to and including the blank line) and what followed."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            return None, b""
        data += chunk
        if len(data) > 65536:
            return None, b""
    head, rest = data.split(b"\r\n\r\n", 1)
    return head, rest


def parse_head(head):
    lines = head.decode("latin-1").split("\r\n")
    method, path, _version = lines[0].split(" ", 2)
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return method, path, headers


def respond(conn, stream_id, method, path):
    log(f"request stream={stream_id} {method} {path}")
    body = f"{method} {path} stream {stream_id} from the upgraded server\n".encode()
    conn.send_headers(
        stream_id,
        [(":status", "200"), ("content-type", "text/plain"), ("content-length", str(len(body)))],
    )
    conn.send_data(stream_id, body, end_stream=True)


def connection(sock):
    sock.settimeout(LIMIT_SECONDS)
    with sock:
        head, rest = read_head(sock)
        if head is None:
            return
        method, path, headers = parse_head(head)
        tokens = {t.strip().lower() for t in headers.get("upgrade", "").split(",")}
        if "h2c" not in tokens or "http2-settings" not in headers:
            log(f"refused {method} {path} (no h2c upgrade)")
            body = b"this server speaks HTTP/2 only after Upgrade: h2c\n"
            sock.sendall(
                b"HTTP/1.1 400 Bad Request\r\nConnection: close\r\nContent-Length: "
                + str(len(body)).encode()
                + b"\r\n\r\n"
                + body
            )
            return
        sock.sendall(b"HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: h2c\r\n\r\n")
        conn = h2.connection.H2Connection(config=h2.config.H2Configuration(client_side=False, header_encoding="utf-8"))
        conn.initiate_upgrade_connection(headers["http2-settings"])
        respond(conn, 1, method, path)
        sock.sendall(conn.data_to_send())
        pending = {}
        while True:
            data = rest or sock.recv(65536)
            rest = b""
            if not data:
                return
            events = conn.receive_data(data)
            # A stream the client reset in the same read (faultline cancels a call it answered
            # itself) gets no response: h2 has forgotten it, and answering would reopen it.
            reset = {e.stream_id for e in events if isinstance(e, h2.events.StreamReset)}
            for event in events:
                if getattr(event, "stream_id", None) in reset:
                    continue
                if isinstance(event, h2.events.RequestReceived):
                    fields = dict(event.headers)
                    pending[event.stream_id] = (fields.get(":method"), fields.get(":path"))
                    if event.stream_ended:
                        respond(conn, event.stream_id, *pending.pop(event.stream_id))
                elif isinstance(event, h2.events.DataReceived):
                    conn.acknowledge_received_data(event.flow_controlled_length, event.stream_id)
                elif isinstance(event, h2.events.StreamEnded) and event.stream_id in pending:
                    respond(conn, event.stream_id, *pending.pop(event.stream_id))
                elif isinstance(event, h2.events.ConnectionTerminated):
                    sock.sendall(conn.data_to_send())
                    return
            sock.sendall(conn.data_to_send())


def main():
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("127.0.0.1", 0))
    listener.listen(64)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    log(f"listening on 127.0.0.1:{listener.getsockname()[1]}")
    while True:
        sock, _ = listener.accept()
        threading.Thread(target=serve_logged, args=(sock,), daemon=True).start()


def serve_logged(sock):
    try:
        connection(sock)
    except (OSError, h2.exceptions.ProtocolError) as e:
        log(f"connection ended: {e!r}")


if __name__ == "__main__":
    main()
