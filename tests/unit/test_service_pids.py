"""A PID file names the suite's server only while that very process lives: a reused PID (another
program that got the number after a crash or a reboot) is never taken for the server, so it is never
wiped or killed. Real processes, no mocks: a `sleep` stands in for a server."""
from __future__ import annotations

import json
import subprocess
import sys
import time

import pytest

from pipeline.services.base import Service
from pipeline.services.manager import ServiceManager, process_identity


class _Sleeper(Service):
    """A 'server' that is a sleep in its own session, healthy while it runs."""

    def __init__(self) -> None:
        self.proc: subprocess.Popen | None = None

    def resolve(self, cache_dir):
        pass

    def launch(self, cache_dir, run_dir, log):
        self.proc = subprocess.Popen(["sleep", "120"], stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        return self.proc

    def is_healthy(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    @property
    def address(self) -> str:
        return "127.0.0.1:0"


@pytest.fixture
def manager(tmp_path):
    svc = _Sleeper()
    mgr = ServiceManager(run_dir=tmp_path / "run", cache_dir=tmp_path / "cache", services={"fake": svc})
    yield mgr, svc
    if svc.proc is not None and svc.proc.poll() is None:
        svc.proc.kill()
        svc.proc.wait()


def test_the_recorded_process_is_ours_and_down_stops_it(manager):
    mgr, svc = manager
    mgr.up(["fake"], timeout_s=10)
    assert mgr.pid("fake") == svc.proc.pid
    recorded = json.loads((mgr.run_dir / "fake" / "pid").read_text())
    assert recorded["cmdline"] == ["sleep", "120"] and recorded["started"] > 0
    mgr.down(["fake"], timeout_s=10)
    assert svc.proc.poll() is not None and mgr.pid("fake") is None


def test_a_reused_pid_is_not_taken_for_the_server_and_is_never_killed(manager):
    mgr, svc = manager
    mgr.up(["fake"], timeout_s=10)
    pid_file = mgr.run_dir / "fake" / "pid"
    recorded = json.loads(pid_file.read_text())
    # another live program now has the number (here: a python process this test starts)
    stranger = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"], start_new_session=True)
    try:
        pid_file.write_text(json.dumps({**recorded, "pid": stranger.pid}))
        assert mgr.pid("fake") is None  # another command line and start time: not ours
        mgr.down(["fake"], timeout_s=10)
        assert stranger.poll() is None  # never signalled
        assert svc.proc.poll() is not None  # the child this manager started is stopped all the same
        # the same command line started at another time is not ours either. Start times count in
        # clock ticks (10 ms): a PID is reused only after its process is gone, so never within one
        # tick of it; here the twin is started a few ticks later, as a reuse would be
        time.sleep(0.1)
        twin = subprocess.Popen(["sleep", "120"], start_new_session=True)
        try:
            pid_file.write_text(json.dumps({**recorded, "pid": twin.pid}))
            assert mgr.pid("fake") is None
        finally:
            twin.kill()
            twin.wait()
        # a process that has since replaced its program (exec) keeps PID and start time: the command
        # line tells it apart
        shell = subprocess.Popen(["sh", "-c", "read _; exec sleep 121"], stdin=subprocess.PIPE,
                                 start_new_session=True)
        try:
            started, cmdline = process_identity(shell.pid)
            pid_file.write_text(json.dumps({**recorded, "pid": shell.pid, "started": started, "cmdline": cmdline}))
            assert mgr.pid("fake") == shell.pid  # recorded as it is: taken for ours
            shell.stdin.write(b"go\n")
            shell.stdin.flush()
            deadline = time.monotonic() + 10
            while process_identity(shell.pid)[1] == cmdline and time.monotonic() < deadline:
                time.sleep(0.05)
            assert process_identity(shell.pid) == (started, ["sleep", "121"])
            assert mgr.pid("fake") is None
        finally:
            shell.kill()
            shell.wait()
        # a PID file from before identities were recorded names no process of ours
        pid_file.write_text(json.dumps({"pid": svc.proc.pid, "address": recorded["address"]}))
        assert mgr.pid("fake") is None
    finally:
        stranger.kill()
        stranger.wait()
