"""What the grpcio test servers share: whole log lines on stderr, and serving until SIGTERM."""

import signal
import sys
import threading

_LOG_LOCK = threading.Lock()


def log(line):
    """One write per line under a lock: handlers log from several server threads, and print()'s
    separate writes of the text and the newline ran two lines together (a test failed on it)."""
    with _LOG_LOCK:
        sys.stderr.write(line + "\n")
        sys.stderr.flush()


def serve_until_sigterm(server, port):
    """Starts `server`, says "listening on 127.0.0.1:PORT" (what the tests wait for), serves until
    SIGTERM, then stops it with a one-second grace."""
    server.start()
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    log(f"listening on 127.0.0.1:{port}")
    stop.wait()
    server.stop(grace=1).wait(5)
