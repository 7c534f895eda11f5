"""Each layer against the real loopback sshd and GTW stand-in: all pass, then each one broken
for real, and exactly that layer fails (later layers that depend on it are skipped)."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

from bot.audit.report import LAYER_IDS
from bot.deploy.layout import RemoteLayout
from tests.audit.conftest import Inf, only_failure, statuses
from tests.audit.hostlayout import lay_out_release, point_current, site_packages
from tests.conftest import require
from tests.fakes.sshd import free_port


def test_good_release_passes_all_nine(inf: Inf) -> None:
    report = inf.audit()
    assert statuses(report) == dict.fromkeys(LAYER_IDS, "pass"), report.model_dump_json(indent=1)
    assert report.passed
    assert [layer.id for layer in report.layers] == list(LAYER_IDS)
    assert report.release == inf.release_id
    assert report.sha == inf.sha
    gtw = report.layer("gtw")
    assert gtw.data["replies"] == 5 and gtw.data["p50_ms"] < 50
    assert inf.gtw.requests >= 5
    assert report.layer("network").data["connect_ms"] >= 0
    assert all(layer.duration_ms > 0 for layer in report.layers)


def test_audits_the_live_sha_when_none_is_expected(inf: Inf) -> None:
    report = inf.audit(expected_sha=None)
    assert report.passed, report.model_dump_json(indent=1)
    assert report.sha == inf.sha


def test_wrong_port_fails_network_and_skips_the_rest(inf: Inf) -> None:
    report = inf.audit(target=inf.target(port=free_port()))
    assert only_failure(report) == "network"
    assert "cannot reach 127.0.0.1" in report.layer("network").detail
    assert all(report.layer(i).status == "skip" for i in LAYER_IDS[1:])
    assert report.layer("ssh").detail == "skipped: network failed"
    assert report.layer("gtw").detail == "skipped: ssh was skipped"
    assert not report.passed


def test_wrong_host_key_fails_ssh(inf: Inf, tmp_path: Path) -> None:
    other = tmp_path / "wrong_known_hosts"
    pub = (inf.server.root / "id_ed25519.pub").read_text().split()
    other.write_text(f"[127.0.0.1]:{inf.server.port} {pub[0]} {pub[1]}\n")
    report = inf.audit(target=inf.target(known_hosts_file=str(other)))
    assert only_failure(report) == "ssh"
    assert "does not match the pinned" in report.layer("ssh").detail
    assert report.layer("network").status == "pass"
    assert {report.layer(i).status for i in LAYER_IDS[2:]} == {"skip"}


def test_too_little_disk_old_python_and_missing_binary_fail_host(inf: Inf) -> None:
    free_mb = shutil.disk_usage(inf.root).free // (1024 * 1024)
    report = inf.audit(
        min_free_disk_mb=free_mb + 10_000_000,
        binaries=["sh", "gatebot-no-such-tool"],
        min_python="9.9",
    )
    assert only_failure(report) == "host"
    detail = report.layer("host").detail
    assert "min_free_disk_mb" in detail
    assert "gatebot-no-such-tool" in detail and "below audit.min_python 9.9" in detail
    assert report.layer("host").data["missing_binaries"] == ["gatebot-no-such-tool"]
    assert report.layer("gtw").status == "pass"


def test_current_pointing_elsewhere_fails_release(inf: Inf) -> None:
    other_sha = inf.repo.commit({"app/adapter.py": "VERSION = 2\n"}, message="v2")
    other = lay_out_release(inf.root, inf.repo.path, other_sha, shared=("logs",), switch=False)
    point_current(inf.root, other)
    report = inf.audit()
    assert only_failure(report) == "release"
    detail = report.layer("release").detail
    assert other in detail and inf.sha[:7] in detail
    assert f"--to {inf.release_id}" in detail  # names the release that holds the expected sha
    for layer_id in ("integrity", "dependencies", "imports"):
        assert report.layer(layer_id).status == "skip"
        assert report.layer(layer_id).detail == "skipped: release failed"
    assert report.layer("service").status == "pass"
    assert report.layer("gtw").status == "pass"
    assert report.release == other


def test_missing_marker_fails_release(inf: Inf) -> None:
    (Path(RemoteLayout(str(inf.root)).marker(inf.release_id))).unlink()
    report = inf.audit()
    assert only_failure(report) == "release"
    assert "no completion marker" in report.layer("release").detail


def test_file_changed_on_remote_fails_integrity(inf: Inf) -> None:
    release = Path(RemoteLayout(str(inf.root)).release(inf.release_id))
    (release / "app" / "adapter.py").write_text("import json\nimport zmq\n\nVERSION = 666\n")
    (release / "stray.txt").write_text("left behind\n")
    # Not counted: what the service writes into the shared entry, and its bytecode caches.
    (inf.root / "shared" / "logs" / "app.log").write_text("log line\n")
    (release / "app" / "__pycache__").mkdir()
    (release / "app" / "__pycache__" / "adapter.cpython-311.pyc").write_bytes(b"\x00")
    report = inf.audit()
    assert only_failure(report) == "integrity"
    layer = report.layer("integrity")
    assert "app/adapter.py" in layer.detail and "stray.txt" in layer.detail
    assert layer.data["changed"] == 1 and layer.data["extra"] == 1
    assert "app.log" not in layer.detail and "__pycache__" not in layer.detail


def test_unmet_requirement_fails_dependencies(inf: Inf) -> None:
    venv = (Path(RemoteLayout(str(inf.root)).release(inf.release_id)) / ".venv").resolve()
    dist = site_packages(venv) / "gatebot_fake_broken-1.0.dist-info"
    dist.mkdir(parents=True)
    (dist / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: gatebot-fake-broken\nVersion: 1.0\n"
        "Requires-Dist: gatebot-missing-dependency>=1\n"
    )
    (dist / "RECORD").write_text("")
    report = inf.audit()
    assert only_failure(report) == "dependencies"
    detail = report.layer("dependencies").detail
    assert "gatebot-missing-dependency" in detail and "pip check" in detail
    assert report.layer("imports").status == "pass"


def test_incomplete_venv_fails_dependencies(inf: Inf) -> None:
    venv = (Path(RemoteLayout(str(inf.root)).release(inf.release_id)) / ".venv").resolve()
    (venv / ".gatebot-complete").unlink()
    report = inf.audit()
    assert only_failure(report) == "dependencies"
    assert "install was cut short" in report.layer("dependencies").detail
    assert report.layer("imports").detail == "the release's venv is not usable (see dependencies)"


def test_module_that_fails_to_import_fails_imports(inf: Inf) -> None:
    report = inf.audit(imports=["app.adapter", "app.broken"])
    assert only_failure(report) == "imports"
    detail = report.layer("imports").detail
    assert "app.broken" in detail and "gatebot_module_that_does_not_exist" in detail
    assert "app.adapter:" not in detail


def test_stopped_service_fails_service(inf: Inf) -> None:
    inf.service.close()
    report = inf.audit(service={"port": inf.service.port, "wait_s": 0.5})
    assert only_failure(report) == "service"
    detail = report.layer("service").detail
    assert f"127.0.0.1:{inf.service.port}" in detail and "waited" in detail


def test_service_coming_up_after_the_restart_is_waited_for(inf: Inf) -> None:
    inf.service.close()
    late: list[socket.socket] = []

    def come_up() -> None:
        # Late enough that the service layer (which starts right after the SSH handshake) finds
        # the port closed at first, whatever the load on the machine.
        time.sleep(2.5)
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", inf.service.port))
        sock.listen(4)
        late.append(sock)

    starter = threading.Thread(target=come_up)
    starter.start()
    try:
        report = inf.audit(service={"port": inf.service.port, "wait_s": 8})
    finally:
        starter.join()
        for sock in late:
            sock.close()
    service = report.layer("service")
    assert service.status == "pass", service.detail
    # It passed only because it waited: the first probe found nothing listening.
    assert service.data["waited_s"] > 0


def test_pidfile_service_alive_then_dead(inf: Inf) -> None:
    proc = subprocess.Popen(["sleep", "60"])
    try:
        (inf.root / "shared" / "logs" / "app.pid").write_text(f"{proc.pid}\n")
        report = inf.audit(service={"pidfile": "shared/logs/app.pid"})
        assert report.layer("service").status == "pass", report.layer("service").detail
    finally:
        proc.kill()
        proc.wait()
    report = inf.audit(service={"pidfile": "shared/logs/app.pid", "wait_s": 0})
    assert only_failure(report) == "service"
    assert f"process {proc.pid} is not running" in report.layer("service").detail


def test_systemd_unit_not_active_fails_service(inf: Inf) -> None:
    if shutil.which("systemctl") is None:
        require("systemctl to ask for a unit", "apt-get install systemd")
    report = inf.audit(service={"systemd": "gatebot-no-such-unit", "wait_s": 0})
    assert only_failure(report) == "service"
    detail = report.layer("service").detail
    assert "gatebot-no-such-unit" in detail and "systemctl start gatebot-no-such-unit" in detail


def test_nothing_configured_is_skipped_and_passes(inf: Inf) -> None:
    report = inf.audit(service=None, gtw=None, imports=[])
    assert report.passed
    for layer_id in ("imports", "service", "gtw"):
        assert report.layer(layer_id).status == "skip"
    assert "audit.gtw" in report.layer("gtw").detail


def _probe_processes() -> list[str]:
    out = subprocess.run(["ps", "-eo", "pid,args"], capture_output=True, text=True).stdout
    return [line for line in out.splitlines() if "gatebot-gtw-probe" in line]


def test_stopped_gtw_fails_gtw_within_timeout(inf: Inf) -> None:
    inf.gtw.set_mode("stopped")
    start = time.monotonic()
    report = inf.audit(timeouts={"gtw": 6})
    assert only_failure(report) == "gtw"
    assert time.monotonic() - start < 20
    layer = report.layer("gtw")
    assert "never connected" in layer.detail and inf.gtw.endpoint in layer.detail
    assert layer.duration_ms < 6000
    assert _probe_processes() == []


def test_slow_gtw_fails_the_budget(inf: Inf) -> None:
    inf.gtw.delay_s = 0.12
    inf.gtw.set_mode("slow")
    report = inf.audit(gtw={"endpoint": inf.gtw.endpoint, "budget_ms": 50, "pings": 3})
    assert only_failure(report) == "gtw"
    layer = report.layer("gtw")
    assert "too slowly" in layer.detail and "budget_ms 50" in layer.detail
    assert layer.data["p50_ms"] >= 100


def test_garbage_gtw_fails(inf: Inf) -> None:
    inf.gtw.set_mode("garbage")
    report = inf.audit()
    assert only_failure(report) == "gtw"
    assert "not JSON" in report.layer("gtw").detail
    inf.gtw.garbage_json = True
    report = inf.audit()
    assert only_failure(report) == "gtw"
    assert "unexpected reply" in report.layer("gtw").detail


def test_silent_gtw_is_bounded_by_the_layer_and_leaves_nothing(inf: Inf) -> None:
    # Tries of 5 s each would take 15 s; the layer has 2 s: the probe's deadline ends it.
    inf.gtw.set_mode("silent")
    gtw = {"endpoint": inf.gtw.endpoint, "timeout_ms": 5000, "retries": 3}
    start = time.monotonic()
    report = inf.audit(gtw=gtw, timeouts={"gtw": 2})
    elapsed = time.monotonic() - start
    assert only_failure(report) == "gtw"
    assert report.layer("gtw").duration_ms < 2000 + 1500
    assert elapsed < 10
    assert _probe_processes() == []


def test_dealer_socket_against_router(inf: Inf, gtw_router: object) -> None:
    from tests.fakes.gtw import GtwServer

    assert isinstance(gtw_router, GtwServer)
    report = inf.audit(gtw={"endpoint": gtw_router.endpoint, "socket": "DEALER", "pings": 3})
    assert report.passed, report.layer("gtw").detail
    assert "(DEALER)" in report.layer("gtw").detail
    assert gtw_router.requests == 3


def test_probe_without_pyzmq_says_so(inf: Inf) -> None:
    # A venv without system site-packages has no pyzmq: the probe reports instead of hanging.
    venv = (Path(RemoteLayout(str(inf.root)).release(inf.release_id)) / ".venv").resolve()
    shutil.rmtree(venv)
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    (venv / ".gatebot-complete").write_text("ok\n")
    report = inf.audit(imports=[])
    gtw = report.layer("gtw")
    assert gtw.status == "fail"
    assert "pyzmq is not importable" in gtw.detail
    # Nor has it pip: the dependencies layer says why it cannot run `pip check`.
    deps = report.layer("dependencies")
    assert deps.status == "fail" and "has no pip" in deps.detail, deps.detail
    assert os.path.exists(venv)
