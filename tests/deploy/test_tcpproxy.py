"""The fault-injecting TCP proxy itself, against a plain loopback TCP sink."""

from __future__ import annotations

import socket
import threading
import time

from tests.fakes.tcpproxy import TcpProxy


def _sink() -> tuple[socket.socket, list[bytes]]:
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen()
    got: list[bytes] = []

    def serve() -> None:
        while True:
            try:
                conn, _ = srv.accept()
            except OSError:
                return  # the test closed the listener
            with conn:
                try:
                    while data := conn.recv(65536):
                        got.append(data)
                        conn.sendall(b"ok")
                except ConnectionResetError:
                    got.append(b"<reset>")

    threading.Thread(target=serve, daemon=True).start()
    return srv, got


def test_truncate_swallows_bytes_beyond_the_limit() -> None:
    srv, got = _sink()
    proxy = TcpProxy(srv.getsockname()[1]).start()
    try:
        proxy.truncate_after(10)
        with socket.create_connection(("127.0.0.1", proxy.port)) as c:
            c.sendall(b"0123456789ABCDEF")
            time.sleep(0.3)
        time.sleep(0.2)
        assert b"".join(got) == b"0123456789"
        assert proxy.connections[0].up == 10
    finally:
        proxy.stop()
        srv.close()


def test_delay_holds_each_chunk_back() -> None:
    srv, got = _sink()
    proxy = TcpProxy(srv.getsockname()[1]).start()
    try:
        proxy.delay(0.2)
        with socket.create_connection(("127.0.0.1", proxy.port)) as c:
            start = time.monotonic()
            c.sendall(b"ping")
            assert c.recv(10) == b"ok"
            # Up and down are each held back once.
            assert time.monotonic() - start >= 0.4
        assert b"".join(got) == b"ping"
    finally:
        proxy.stop()
        srv.close()


def test_cut_resets_the_connection_after_n_bytes() -> None:
    srv, got = _sink()
    proxy = TcpProxy(srv.getsockname()[1]).start()
    try:
        proxy.cut_after(4)
        with socket.create_connection(("127.0.0.1", proxy.port)) as c:
            c.sendall(b"abcdefgh")
            c.settimeout(2)
            try:
                data = c.recv(10)
            except ConnectionResetError:
                data = b""
            assert data == b""  # reset or closed, never an answer
        assert proxy.connections[0].cut
        time.sleep(0.2)
        assert b"".join(got).startswith(b"abcd") and b"efgh" not in b"".join(got)
        # One-shot: the next connection passes untouched.
        with socket.create_connection(("127.0.0.1", proxy.port)) as c:
            c.sendall(b"x")
            assert c.recv(10) == b"ok"
    finally:
        proxy.stop()
        srv.close()
