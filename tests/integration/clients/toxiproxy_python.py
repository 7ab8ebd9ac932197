"""Drives `faultline serve` with the real Python client (toxiproxy-python, pinned by
tests/install-toxiproxy-clients.sh) as a Python test suite would, and checks that its toxics act
on real traffic. Run by tests/integration/api.rs with API_HOST, API_PORT and UPSTREAM (an echo
server's HOST:PORT); prints "ok" and exits 0, or raises."""

import os
import socket
import time

from toxiproxy import Toxiproxy
from toxiproxy.api import APIConsumer
from toxiproxy.exceptions import InvalidToxic, NotFound, ProxyExists

UPSTREAM = os.environ["UPSTREAM"]


def host_port(listen):
    host, port = listen.rsplit(":", 1)
    return host.strip("[]"), int(port)


def round_trip(listen, payload, half_close=True, limit=5.0):
    """What came back through the proxy, how the connection ended, and the first byte's delay."""
    started = time.monotonic()
    data = b""
    first = None
    end = "close"
    with socket.create_connection(host_port(listen), timeout=limit) as sock:
        sock.sendall(payload)
        if half_close:
            sock.shutdown(socket.SHUT_WR)
        try:
            while True:
                chunk = sock.recv(65536)
                if not chunk:
                    break
                if first is None:
                    first = time.monotonic() - started
                data += chunk
        except ConnectionResetError:
            end = "reset"
    return data, end, first


def raises(exception, call):
    try:
        call()
    except exception:
        return
    raise AssertionError(f"{call} did not raise {exception.__name__}")


def main():
    server = Toxiproxy()
    server.update_api_consumer(os.environ["API_HOST"], int(os.environ["API_PORT"]))
    assert server.running()
    assert b'"version"' in server.version()

    proxy = server.create(upstream=UPSTREAM, name="py_echo", listen="127.0.0.1:0")
    assert proxy.enabled is True
    assert host_port(proxy.listen)[1] != 0, proxy.listen
    raises(ProxyExists, lambda: server.create(upstream=UPSTREAM, name="py_echo"))
    raises(ProxyExists, lambda: APIConsumer.post(
        "/proxies", json={"name": "py_echo", "upstream": UPSTREAM, "listen": "127.0.0.1:0"}))
    raises(NotFound, lambda: APIConsumer.get("/proxies/nope"))
    assert list(server.proxies()) == ["py_echo"]
    assert server.get_proxy("py_echo").listen == proxy.listen

    assert round_trip(proxy.listen, b"hello")[0] == b"hello"

    # 2 s: a round trip under it proves the toxic gone even on a busy machine (latency
    # numbers themselves are the benches' job).
    latency_ms = 2000
    proxy.add_toxic(type="latency", attributes={"latency": latency_ms, "jitter": 0})
    assert list(proxy.toxics()) == ["latency_downstream"]
    data, _, first = round_trip(proxy.listen, b"ping")
    assert data == b"ping"
    assert first >= latency_ms / 1000, f"latency {latency_ms} ms took {first:.3f} s"
    proxy.destroy_toxic("latency_downstream")
    assert proxy.toxics() == {}
    lifted = round_trip(proxy.listen, b"ping")[2]
    assert lifted < latency_ms / 1000, f"removed latency still there: {lifted:.3f} s"

    proxy.add_toxic(type="limit_data", stream="downstream", attributes={"bytes": 1000})
    data, end, _ = round_trip(proxy.listen, b"\x07" * 5000, half_close=False)
    assert len(data) == 1000, len(data)
    assert end == "close"
    raises(InvalidToxic, lambda: proxy.add_toxic(type="no_such_toxic"))
    raises(InvalidToxic, lambda: proxy.add_toxic(type="latency", name="neg", attributes={"latency": -1}))
    raises(ProxyExists, lambda: proxy.add_toxic(type="limit_data", stream="downstream"))
    raises(NotFound, lambda: proxy.destroy_toxic("nope"))

    assert server.reset()
    assert proxy.toxics() == {}
    assert len(round_trip(proxy.listen, b"\x07" * 5000)[0]) == 5000

    proxy.add_toxic(type="reset_peer", stream="upstream", attributes={"timeout": 0})
    data, end, _ = round_trip(proxy.listen, b"boom", half_close=False)
    assert (data, end) == (b"", "reset"), (data, end)
    assert server.reset()

    with proxy.down():
        try:
            round_trip(proxy.listen, b"x", limit=1.0)
            raise AssertionError("a disabled proxy still accepts")
        except ConnectionRefusedError:
            pass
    assert round_trip(proxy.listen, b"up")[0] == b"up"

    created = server.populate([
        {"name": "py_echo", "listen": proxy.listen, "upstream": UPSTREAM},
        {"name": "py_two", "listen": "127.0.0.1:0", "upstream": UPSTREAM},
    ])
    assert [p.name for p in created] == ["py_two"]
    server.destroy_all()
    assert server.proxies() == {}
    print("ok")


main()
