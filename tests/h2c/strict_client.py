#!/usr/bin/env python3
"""A strict HTTP/2 client (python-hyper's h2, from tests/install-grpc.sh) for faultline's tests.

python-hyper's h2 enforces RFC 9113 to the letter where curl, grpcio and Go are lenient: a
frame on a stream after its END_STREAM is a connection error for it. Answers faultline writes
itself must keep such clients' connections alive.

    strict_client.py HOST PORT PATH...
        Sends `GET PATH` for each PATH in turn on one prior-knowledge h2c connection (`HEAD:PATH`
        sends a HEAD instead; its line names it so) and prints
        one line per request: "PATH status=S bytes=N", "PATH reset=CODE" when the stream was
        reset, or "PATH connection-error=WHAT" (then stops). Every wait is bounded (10 s).
"""
import socket
import sys

import h2.config
import h2.connection
import h2.events
import h2.exceptions

LIMIT_SECONDS = 10


def request(sock, conn, host, port, path):
    stream = conn.get_next_available_stream_id()
    method, target = ("HEAD", path[5:]) if path.startswith("HEAD:") else ("GET", path)
    headers = [
        (":method", method),
        (":path", target),
        (":scheme", "http"),
        (":authority", f"{host}:{port}"),
    ]
    conn.send_headers(stream, headers, end_stream=True)
    sock.sendall(conn.data_to_send())
    status, received = None, 0
    while True:
        data = sock.recv(65536)
        if not data:
            return f"{path} connection-error=closed by the peer", False
        try:
            events = conn.receive_data(data)
        except h2.exceptions.ProtocolError as error:
            sock.sendall(conn.data_to_send())
            return f"{path} connection-error={type(error).__name__}", False
        sock.sendall(conn.data_to_send())
        for event in events:
            if isinstance(event, h2.events.ConnectionTerminated):
                return f"{path} connection-error=GOAWAY {event.error_code}", False
            if getattr(event, "stream_id", None) != stream:
                continue
            if isinstance(event, h2.events.ResponseReceived):
                status = dict(event.headers)[b":status"].decode()
            elif isinstance(event, h2.events.DataReceived):
                conn.acknowledge_received_data(event.flow_controlled_length, stream)
                received += len(event.data)
            elif isinstance(event, h2.events.StreamReset):
                return f"{path} reset={int(event.error_code)}", True
            elif isinstance(event, h2.events.StreamEnded):
                sock.sendall(conn.data_to_send())
                return f"{path} status={status} bytes={received}", True
        # The credit acknowledging the data just read goes now: a server whose windows are
        # used up sends nothing more until it arrives.
        sock.sendall(conn.data_to_send())


def main():
    host, port, paths = sys.argv[1], int(sys.argv[2]), sys.argv[3:]
    sock = socket.create_connection((host, port), timeout=LIMIT_SECONDS)
    conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
    conn.initiate_connection()
    sock.sendall(conn.data_to_send())
    try:
        for path in paths:
            line, alive = request(sock, conn, host, port, path)
            print(line, flush=True)
            if not alive:
                return 1
    except socket.timeout:
        print("timed out", flush=True)
        return 1
    finally:
        sock.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
