"""GTW probe: run ON the Inf host by the live release's interpreter, sent over SSH stdin.

Self-contained on purpose (stdlib + pyzmq only): it is not imported from the package on the
host, it is piped to `<venv>/bin/python - gatebot-gtw-probe '<json config>'`.

Lazy-pirate request/reply (the ZeroMQ guide's reliable REQ pattern): send, poll for the reply
with a timeout, and on timeout close the socket with LINGER 0 and open a fresh one, a bounded
number of times. `IMMEDIATE` is set so nothing is queued toward a peer that is not connected:
a dead GTW is a timeout, not a message parked forever in a queue.

Prints exactly one JSON line on stdout and exits 0 when it could judge the link (the caller
compares the RTTs with the budget), 2 on a usage problem. A last-resort SIGALRM ends the
process even if it is stuck inside libzmq.
"""

from __future__ import annotations

import json
import math
import signal
import sys
import time
from typing import Any

TAG = "gatebot-gtw-probe"


def subset(expected: Any, actual: Any) -> bool:
    """True when every key/value of `expected` is in `actual` (recursively for mappings)."""
    if isinstance(expected, dict):
        return isinstance(actual, dict) and all(
            k in actual and subset(v, actual[k]) for k, v in expected.items()
        )
    return bool(expected == actual)


def _p50(values: list[float]) -> float:
    ordered = sorted(values)
    mid = len(ordered) // 2
    if len(ordered) % 2:
        return ordered[mid]
    return (ordered[mid - 1] + ordered[mid]) / 2


def probe(cfg: dict[str, Any]) -> dict[str, Any]:
    import zmq

    endpoint = str(cfg["endpoint"])
    kind = str(cfg.get("socket", "REQ")).upper()
    pings = int(cfg.get("pings", 5))
    timeout_ms = int(cfg.get("timeout_ms", 1000))
    retries = int(cfg.get("retries", 3))
    expect = cfg.get("expect")
    payload = json.dumps(cfg.get("request")).encode("utf-8")
    deadline = time.monotonic() + float(cfg.get("deadline_s", 10))
    result: dict[str, Any] = {
        "ok": False,
        "endpoint": endpoint,
        "socket": kind,
        "pings": pings,
        "replies": 0,
        "rtt_ms": [],
        "retries": 0,
        "error": None,
        "connected": False,
        "zmq": zmq.zmq_version(),
    }
    ctx = zmq.Context()

    def fresh() -> zmq.Socket[bytes]:
        sock = ctx.socket(zmq.REQ if kind == "REQ" else zmq.DEALER)
        sock.setsockopt(zmq.LINGER, 0)
        sock.setsockopt(zmq.IMMEDIATE, 1)
        sock.connect(endpoint)
        return sock

    sock = fresh()
    try:
        for _ in range(pings):
            tries = 0
            while True:
                left_ms = (deadline - time.monotonic()) * 1000
                if left_ms <= 0:
                    result["error"] = f"probe deadline reached after {result['replies']} replies"
                    return result
                wait_ms = max(1, int(min(timeout_ms, left_ms)))
                start = time.perf_counter()
                frames: list[bytes] | None = None
                # IMMEDIATE: the socket is writable only once a peer is connected.
                if sock.poll(wait_ms, zmq.POLLOUT):
                    sent_at = time.perf_counter()
                    result["connected"] = True
                    if kind == "REQ":
                        sock.send(payload)
                    else:
                        # DEALER talking to REP/ROUTER: the empty delimiter REQ would add.
                        sock.send_multipart([b"", payload])
                    spent = int((sent_at - start) * 1000)
                    if sock.poll(max(1, wait_ms - spent), zmq.POLLIN):
                        frames = sock.recv_multipart()
                        rtt = (time.perf_counter() - sent_at) * 1000
                if frames is not None:
                    break
                # Lazy pirate: the REQ state machine is stuck; throw the socket away.
                sock.close(linger=0)
                tries += 1
                result["retries"] += 1
                if tries >= retries:
                    result["error"] = (
                        f"no reply from {endpoint} after {tries} tries of {timeout_ms} ms"
                        + ("" if result.get("connected") else " (never connected: is it running?)")
                    )
                    return result
                sock = fresh()
            body = frames[-1]
            try:
                reply = json.loads(body.decode("utf-8"))
            except (UnicodeDecodeError, ValueError):
                result["error"] = f"reply is not JSON: {body[:80]!r}"
                return result
            if not subset(expect, reply):
                shown = json.dumps(reply)[:200]
                result["error"] = f"unexpected reply {shown}, expected {json.dumps(expect)}"
                return result
            result["replies"] += 1
            result["rtt_ms"].append(round(rtt, 3))
        result["ok"] = True
        result["p50_ms"] = round(_p50(result["rtt_ms"]), 3)
        result["max_ms"] = round(max(result["rtt_ms"]), 3)
        return result
    finally:
        sock.close(linger=0)
        ctx.term()


def main(argv: list[str]) -> int:
    if not argv:
        print(json.dumps({"ok": False, "error": "usage: gtw_probe [TAG] JSON-CONFIG"}))
        return 2
    try:
        cfg = json.loads(argv[-1])
    except ValueError as exc:
        print(json.dumps({"ok": False, "error": f"bad probe config: {exc}"}))
        return 2
    hard = float(cfg.get("deadline_s", 10)) + 2
    signal.alarm(max(1, math.ceil(hard)))  # default action terminates the process
    try:
        out = probe(cfg)
    except ImportError as exc:
        out = {"ok": False, "error": f"pyzmq is not importable by {sys.executable}: {exc}"}
    except Exception as exc:  # noqa: BLE001 - every failure must still be one JSON line
        out = {"ok": False, "error": f"{type(exc).__name__}: {exc}"}
    print(json.dumps(out), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
