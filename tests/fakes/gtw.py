"""A ZeroMQ GTW stand-in on 127.0.0.1 (REP or ROUTER) served from a thread.

Modes, switchable while running:
- ok:      answers the JSON request with {"type": "pong", "echo": <request>}
- slow:    the same, after `delay_s`
- garbage: answers bytes that are not JSON (or, with `garbage_json`, JSON of the wrong shape)
- silent:  receives and never answers
- stopped: the socket is closed and the port is free (a dead gateway)
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from typing import Literal

import pytest
import zmq

Mode = Literal["ok", "slow", "garbage", "silent", "stopped"]


class GtwServer:
    def __init__(self, kind: Literal["REP", "ROUTER"] = "REP", *, delay_s: float = 0.3) -> None:
        self.kind = kind
        self.delay_s = delay_s
        self.garbage_json = False
        self.mode: Mode = "ok"
        self.port = 0
        self.requests = 0
        self._ctx = zmq.Context()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._error: BaseException | None = None

    @property
    def endpoint(self) -> str:
        return f"tcp://127.0.0.1:{self.port}"

    def start(self) -> GtwServer:
        self._stop.clear()
        self._ready.clear()
        self._thread = threading.Thread(target=self._serve, name="fake-gtw", daemon=True)
        self._thread.start()
        if not self._ready.wait(5):
            raise RuntimeError("fake GTW did not start")
        if self._error is not None:
            raise RuntimeError(f"fake GTW failed to bind: {self._error}")
        return self

    def set_mode(self, mode: Mode) -> None:
        if mode == "stopped":
            self.stop()
        elif self.mode == "stopped" or self._thread is None:
            self.mode = mode
            self.start()
        self.mode = mode

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5)
            self._thread = None
        self.mode = "stopped"

    def close(self) -> None:
        self.stop()
        self._ctx.term()

    def _answer(self, request: bytes) -> bytes | None:
        if self.mode == "silent":
            return None
        if self.mode == "slow":
            time.sleep(self.delay_s)
        if self.mode == "garbage":
            if self.garbage_json:
                return json.dumps({"type": "error", "reason": "unknown"}).encode()
            return b"\x00not json\xff"
        try:
            echo = json.loads(request.decode("utf-8"))
        except ValueError:
            echo = None
        return json.dumps({"type": "pong", "echo": echo}).encode()

    def _serve(self) -> None:
        sock = self._ctx.socket(zmq.REP if self.kind == "REP" else zmq.ROUTER)
        sock.setsockopt(zmq.LINGER, 0)
        try:
            # Re-bind the same port after a stop/start so the endpoint stays valid.
            if self.port:
                sock.bind(self.endpoint)
            else:
                self.port = sock.bind_to_random_port("tcp://127.0.0.1")
        except zmq.ZMQError as exc:
            self._error = exc
            self._ready.set()
            sock.close()
            return
        self._ready.set()
        try:
            while not self._stop.is_set():
                if not sock.poll(50, zmq.POLLIN):
                    continue
                frames = sock.recv_multipart()
                self.requests += 1
                reply = self._answer(frames[-1])
                if reply is None:
                    if self.kind == "ROUTER":
                        continue
                    # A REP must answer before it can receive again: emulate a hung peer by
                    # reading nothing more until the mode changes, then answer late.
                    while self.mode == "silent" and not self._stop.is_set():
                        time.sleep(0.05)
                    if self._stop.is_set():
                        break
                    reply = self._answer(frames[-1]) or b"{}"
                if self.kind == "REP":
                    sock.send(reply)
                else:
                    sock.send_multipart([*frames[:-1], reply])
        finally:
            sock.close(linger=0)


@pytest.fixture
def gtw() -> Iterator[GtwServer]:
    """A running REP stand-in in mode `ok`; tests switch modes with `set_mode`."""
    server = GtwServer("REP").start()
    try:
        yield server
    finally:
        server.close()


@pytest.fixture
def gtw_router() -> Iterator[GtwServer]:
    server = GtwServer("ROUTER").start()
    try:
        yield server
    finally:
        server.close()
