"""A TCP proxy on 127.0.0.1 for fault injection at the wire: delay, cut, or truncate.

    proxy = TcpProxy(upstream_port).start()
    proxy.cut_after(200_000)        # the NEXT connection is reset after 200 kB client->server
    ... connect to ("127.0.0.1", proxy.port) ...
    proxy.stop()

Modes (each applies to connections accepted after it is set, one-shot unless `sticky`):
- `delay(seconds)`: every chunk in both directions is held back this long;
- `cut_after(n)`: once n bytes went client->server, both sides are closed abruptly (RST);
- `truncate_after(n)`: client->server bytes beyond n are silently dropped, the connection
  stays open (a stalled upload).
Runs in its own thread with its own asyncio loop, so tests can drive blocking or async clients.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import struct
import threading
from dataclasses import dataclass, field


@dataclass
class Fault:
    delay_s: float = 0.0
    cut_after: int | None = None
    truncate_after: int | None = None


@dataclass
class ConnStats:
    up: int = 0  # client -> server bytes forwarded
    down: int = 0
    cut: bool = False
    errors: list[str] = field(default_factory=list)  # socket errors seen while pumping


@dataclass
class TcpProxy:
    upstream_port: int
    upstream_host: str = "127.0.0.1"
    port: int = 0
    sticky: bool = False
    connections: list[ConnStats] = field(default_factory=list)
    _fault: Fault = field(default_factory=Fault)
    _loop: asyncio.AbstractEventLoop | None = None
    _thread: threading.Thread | None = None
    _server: asyncio.AbstractServer | None = None
    _open: list[tuple[ConnStats, tuple[asyncio.StreamWriter, ...]]] = field(default_factory=list)

    # -- configuration (thread-safe enough: read once per accepted connection) ----------------

    def delay(self, seconds: float) -> TcpProxy:
        self._fault = Fault(delay_s=seconds)
        return self

    def cut_after(self, n: int) -> TcpProxy:
        self._fault = Fault(cut_after=n)
        return self

    def truncate_after(self, n: int) -> TcpProxy:
        self._fault = Fault(truncate_after=n)
        return self

    def clear(self) -> TcpProxy:
        self._fault = Fault()
        return self

    def cut_now(self) -> None:
        """Cut every open connection with RST, from any thread (a cut at a chosen moment)."""
        loop = self._loop
        assert loop is not None, "the proxy is not running"
        for stats, writers in list(self._open):
            stats.cut = True
            for w in writers:
                loop.call_soon_threadsafe(_abort, w)

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self) -> TcpProxy:
        ready = threading.Event()

        def run() -> None:
            loop = asyncio.new_event_loop()
            self._loop = loop
            asyncio.set_event_loop(loop)

            async def boot() -> None:
                self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
                self.port = self._server.sockets[0].getsockname()[1]
                ready.set()

            loop.run_until_complete(boot())
            loop.run_forever()
            loop.close()

        self._thread = threading.Thread(target=run, name="tcpproxy", daemon=True)
        self._thread.start()
        if not ready.wait(10):
            raise RuntimeError("tcp proxy did not start")
        return self

    def stop(self) -> None:
        loop = self._loop
        if loop is None:
            return

        async def shutdown() -> None:
            if self._server is not None:
                self._server.close()
            for task in [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]:
                task.cancel()

        asyncio.run_coroutine_threadsafe(shutdown(), loop).result(5)
        loop.call_soon_threadsafe(loop.stop)
        if self._thread is not None:
            self._thread.join(5)
        self._loop = None

    # -- the pump ----------------------------------------------------------------------------

    async def _handle(self, creader: asyncio.StreamReader, cwriter: asyncio.StreamWriter) -> None:
        fault = self._fault
        if not self.sticky:
            self._fault = Fault()
        stats = ConnStats()
        self.connections.append(stats)
        try:
            sreader, swriter = await asyncio.open_connection(self.upstream_host, self.upstream_port)
        except OSError:
            _abort(cwriter)
            return
        self._open.append((stats, (cwriter, swriter)))

        async def pump(
            src: asyncio.StreamReader, dst: asyncio.StreamWriter, upstream: bool
        ) -> None:
            try:
                while True:
                    data = await src.read(65536)
                    if not data:
                        break
                    if fault.delay_s:
                        await asyncio.sleep(fault.delay_s)
                    if upstream and fault.cut_after is not None:
                        room = fault.cut_after - stats.up
                        if len(data) >= room:
                            dst.write(data[: max(room, 0)])
                            stats.up += max(room, 0)
                            stats.cut = True
                            _abort(cwriter)
                            _abort(swriter)
                            return
                    if upstream and fault.truncate_after is not None:
                        room = fault.truncate_after - stats.up
                        data = data[: max(room, 0)]
                        if not data:
                            continue  # swallow: the upload stalls
                    dst.write(data)
                    await dst.drain()
                    if upstream:
                        stats.up += len(data)
                    else:
                        stats.down += len(data)
            except (ConnectionError, OSError) as exc:
                stats.errors.append(f"{type(exc).__name__}: {exc}")
            finally:
                if not stats.cut:
                    try:
                        dst.close()
                    except (ConnectionError, OSError, RuntimeError) as exc:
                        stats.errors.append(f"close: {exc}")

        await asyncio.gather(
            pump(creader, swriter, True), pump(sreader, cwriter, False), return_exceptions=True
        )


def _abort(writer: asyncio.StreamWriter) -> None:
    """Close with RST (SO_LINGER 0), like a network cut rather than a polite shutdown."""
    sock = writer.get_extra_info("socket")
    if sock is not None:
        # A socket already gone cannot linger; abort() below still drops the transport.
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()
