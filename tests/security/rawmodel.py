"""A model endpoint that misbehaves at the HTTP level, for the transport tests.

`RawModel` answers models.list/models.get and generateContent like the loopback Gemini
(tests/fakes/gemini.py supplies the content), but a test's `shape` decides the wire: any
status and headers (a redirect's Location, Content-Encoding), and the body as chunks sent
with or without a Content-Length (chunked transfer: nothing says in advance how big it is).
`Recorder` is a second origin that only records what reaches it.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import parse_qs

from tests.fakes.gemini import FakeGemini
from tests.fakes.loopback_http import LoopbackHTTPServer


@dataclass
class Reply:
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    chunks: Iterable[bytes] = ()
    length: bool = True  # send Content-Length (else chunked transfer encoding)


# (model, the request JSON, the loopback Gemini's own answer body) -> what goes on the wire
Shape = Callable[[str, dict[str, Any], dict[str, Any]], Reply]


def as_is(model: str, request: dict[str, Any], body: dict[str, Any]) -> Reply:
    return Reply(chunks=[json.dumps(body).encode()])


@dataclass
class Seen:
    method: str
    path: str
    headers: dict[str, str]


class Recorder:
    """Another origin: records every request (and its headers), answers 404."""

    def __init__(self) -> None:
        self.seen: list[Seen] = []
        self._http = LoopbackHTTPServer()

    @property
    def url(self) -> str:
        return self._http.url

    def start(self) -> Recorder:
        recorder = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                return

            def _any(self) -> None:
                recorder.seen.append(Seen(self.command, self.path, dict(self.headers)))
                self.send_response(404)
                self.send_header("Content-Length", "0")
                self.end_headers()

            do_GET = do_POST = _any

        self._http.serve(Handler)
        return self

    def stop(self) -> None:
        self._http.shutdown()


class RawModel:
    def __init__(self, shape: Shape = as_is) -> None:
        self.logic = FakeGemini()  # the content; never started: only its methods are used
        self.api_key = self.logic.api_key
        self.shape = shape
        self.generate_calls = 0
        self._lock = threading.Lock()
        self._http = LoopbackHTTPServer()

    @property
    def url(self) -> str:
        return self._http.url

    def start(self) -> RawModel:
        model = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                return

            def handle(self) -> None:
                try:
                    super().handle()
                except (BrokenPipeError, ConnectionResetError):
                    return  # the client refused the rest of the answer: the point of the test

            def _reply(self, reply: Reply) -> None:
                try:
                    self.send_response(reply.status)
                    self.send_header("Content-Type", "application/json; charset=UTF-8")
                    for k, v in reply.headers.items():
                        self.send_header(k, v)
                    chunks = list(reply.chunks) if reply.length else reply.chunks
                    if reply.length:
                        total = sum(len(c) for c in chunks)
                        self.send_header("Content-Length", str(total))
                        self.end_headers()
                        for c in chunks:
                            self.wfile.write(c)
                    else:
                        self.send_header("Transfer-Encoding", "chunked")
                        self.end_headers()
                        for c in chunks:
                            self.wfile.write(f"{len(c):x}\r\n".encode() + c + b"\r\n")
                        self.wfile.write(b"0\r\n\r\n")
                except (BrokenPipeError, ConnectionResetError):
                    self.close_connection = True  # the client stopped reading: the point

            def do_GET(self) -> None:
                path, _, query = self.path.partition("?")
                if path.rstrip("/").endswith("/models"):
                    body = model.logic.list_page(parse_qs(query))
                    self._reply(Reply(chunks=[json.dumps(body).encode()]))
                else:
                    self._reply(Reply(404, chunks=[b'{"error": {"code": 404}}']))

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                request = json.loads(self.rfile.read(length) or b"{}")
                name = self.path.split("?")[0].rsplit("/", 1)[-1]
                model_id, _, method = name.partition(":")
                if method != "generateContent":
                    self._reply(Reply(404, chunks=[b'{"error": {"code": 404}}']))
                    return
                with model._lock:
                    model.generate_calls += 1
                _, body, _ = model.logic.generate(model_id, request)
                self._reply(model.shape(model_id, request, body))

        self._http.serve(Handler)
        return self

    def stop(self) -> None:
        self._http.shutdown()
