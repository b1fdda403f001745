"""The embedded FalkorDB server's lifecycle under hostile conditions (issue #15).

Real processes, real signals, a real full disk (a small tmpfs, as root): the
server dies with its owner, a dead server comes back with its data, a full
disk is a transient, clearly worded error that heals by itself, start-up
failures are one line, and a stale pid file never gets a stranger killed.
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from graph_store.base import GraphRejected, GraphUnavailable
from graph_store.embedded import EmbeddedGraphStore, live_server_pid

REPO = Path(__file__).resolve().parents[2]
ENV = {**os.environ, "PYTHONPATH": str(REPO), "PYTHONUNBUFFERED": "1"}

OWNER = """
import sys, time
from pathlib import Path
from graph_store.embedded import EmbeddedGraphStore
store = EmbeddedGraphStore(sys.argv[1])
print(Path(sys.argv[1], "falkordb.pid").read_text().strip(), flush=True)
time.sleep(600)
"""

ATTACHER = """
import sys
from graph_store.embedded import EmbeddedGraphStore
store = EmbeddedGraphStore(sys.argv[1])
print("ready", store.owns_server, flush=True)
sys.stdin.readline()
count = store.query("MATCH (n:Probe) RETURN count(n)").rows[0][0]
print("queried", count, store.owns_server, flush=True)
sys.stdin.readline()
store.close()
"""


def gone(pid: int) -> bool:
    """Dead or a zombie (its new parent, PID 1 here, may never reap it)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return True
    return stat.rsplit(")", 1)[-1].split()[0] in ("Z", "X")


def wait_gone(pid: int, timeout: float = 10) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if gone(pid):
            return True
        time.sleep(0.05)
    return gone(pid)


def servers_for(socket_path: Path) -> list[int]:
    """Every live redis-server whose command line names this socket."""
    pids = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            cmdline = (proc / "cmdline").read_bytes().decode(errors="replace")
        except OSError:
            continue
        if "redis-server" in cmdline and str(socket_path) in cmdline and not gone(int(proc.name)):
            pids.append(int(proc.name))
    return pids


def kill_leftover(pid: int | None) -> None:
    """Last resort for a server this test caused (its pid was saved from our own store)."""
    if pid is not None and not gone(pid):
        os.kill(pid, signal.SIGKILL)


def owner_process(graph: Path) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", OWNER, str(graph)], cwd=REPO, env=ENV,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


@pytest.fixture
def root_mount(short_tmp):
    """mount(dir, *options) of a small tmpfs, unmounted afterwards; skips loudly without root."""
    if os.geteuid() != 0:
        pytest.skip("DISK TESTS SKIPPED: not root, cannot mount a small tmpfs to fill")
    mounted = []

    def mount(name: str, *options: str) -> Path:
        path = short_tmp / name
        path.mkdir()
        proc = subprocess.run(["mount", "-t", "tmpfs", "-o", ",".join(options), "tmpfs", str(path)],
                              capture_output=True, text=True)
        if proc.returncode != 0:
            pytest.skip(f"DISK TESTS SKIPPED: mount -t tmpfs failed even as root: {proc.stderr.strip()}")
        mounted.append(path)
        return path

    yield mount
    for path in mounted:
        if subprocess.run(["umount", str(path)]).returncode != 0:
            subprocess.run(["umount", "-l", str(path)])


# -- the server dies with its owner -----------------------------------------
def test_kill_9_of_the_owner_takes_its_server_down(short_tmp):
    graph = short_tmp / "graph"
    child = owner_process(graph)
    server = None
    try:
        server = int(child.stdout.readline())
        assert not gone(server) and live_server_pid(graph) == server
        os.kill(child.pid, signal.SIGKILL)
        child.wait(timeout=10)
        assert wait_gone(server), f"redis-server {server} outlived its owner's kill -9"
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
        kill_leftover(server)


def test_sigterm_while_the_owner_is_starting_takes_its_server_down(short_tmp):
    graph = short_tmp / "graph"
    pid_file = graph / "falkordb.pid"
    child = owner_process(graph)
    server = None
    try:
        deadline = time.monotonic() + 60
        while server is None and time.monotonic() < deadline and child.poll() is None:
            try:
                server = int(pid_file.read_text())
            except (FileNotFoundError, ValueError):  # not there yet, or being written
                time.sleep(0.001)
        assert server is not None, child.stderr.read() if child.poll() is not None else "no pid file in 60 s"
        os.kill(child.pid, signal.SIGTERM)  # still in the constructor, waiting for the server to answer
        assert child.wait(timeout=10) == -signal.SIGTERM
        assert wait_gone(server), f"redis-server {server} outlived its owner's SIGTERM during start-up"
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
        kill_leftover(server)


# -- a dead server is started again -------------------------------------------
def test_a_killed_server_is_restarted_with_its_data(short_tmp):
    graph = short_tmp / "graph"
    owner = EmbeddedGraphStore(graph)
    attached = EmbeddedGraphStore(graph)
    first = owner._proc.pid
    second = None
    try:
        assert owner.owns_server and not attached.owns_server
        owner.query("CREATE (:Probe {name: 'kept'})")
        os.kill(first, signal.SIGKILL)  # a crash of our own child
        assert wait_gone(first)
        # the attached store finds it dead and starts it again (then owns it), from the AOF
        assert attached.query("MATCH (n:Probe) RETURN n.name").rows == [["kept"]]
        assert attached.owns_server
        second = attached._proc.pid
        assert second != first and servers_for(attached._socket) == [second]
        # the first owner uses the new server without starting another one
        owner.query("CREATE (:Probe {name: 'after'})")
        assert not owner.owns_server and servers_for(owner._socket) == [second]
        assert sorted(attached.query("MATCH (n:Probe) RETURN n.name").rows) == [["after"], ["kept"]]
        # a server its owner stopped on purpose is not started again behind its back
        attached.close()
        with pytest.raises(GraphUnavailable, match="stopped by the process that started it"):
            owner.query("MATCH (n) RETURN count(n)")
        assert servers_for(owner._socket) == []
    finally:
        owner.close()
        attached.close()
        kill_leftover(second)


def test_a_server_that_answers_and_then_dies_is_started_again_when_opening(short_tmp, monkeypatch):
    """The race CI met: a killed worker's server still answered PING, then reset the
    client's first connection. Here the server is killed, for real, in that gap."""
    import graph_store.embedded as embedded

    graph = short_tmp / "graph"
    first = EmbeddedGraphStore(graph)
    first.query("CREATE (:Probe {name: 'kept'})")
    doomed = first._proc.pid
    real_client = embedded.FalkorDB
    connects = []

    def dies_after_the_probe(*args, **kwargs):
        connects.append(live_server_pid(graph))
        if len(connects) == 1:
            os.kill(doomed, signal.SIGKILL)
            assert wait_gone(doomed)
        return real_client(*args, **kwargs)

    monkeypatch.setattr(embedded, "FalkorDB", dies_after_the_probe)
    second = None
    try:
        opened = EmbeddedGraphStore(graph)
        second = opened._proc.pid if opened._proc else None
        assert connects[0] == doomed and len(connects) == 2 and second not in (None, doomed)
        assert opened.query("MATCH (n:Probe) RETURN n.name").rows == [["kept"]]
        opened.close()
    finally:
        first.close()
        kill_leftover(second)


def test_a_server_stopped_by_an_owner_that_has_exited_is_restarted(short_tmp):
    graph = short_tmp / "graph"
    script = ("import sys\nfrom graph_store.embedded import EmbeddedGraphStore\n"
              "store = EmbeddedGraphStore(sys.argv[1])\nstore.query(\"CREATE (:Probe {name: 'kept'})\")\n"
              "print('ready', flush=True)\nsys.stdin.readline()\nstore.close()\n")
    child = subprocess.Popen([sys.executable, "-c", script, str(graph)], cwd=REPO, env=ENV, text=True,
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    attached = None
    try:
        assert child.stdout.readline() == "ready\n"
        attached = EmbeddedGraphStore(graph)
        assert not attached.owns_server
        child.communicate("close\n", timeout=30)  # like `mkg worker` finishing while `mkg query` is attached
        assert child.returncode == 0 and servers_for(attached._socket) == []
        assert attached.query("MATCH (n:Probe) RETURN n.name").rows == [["kept"]]
        assert attached.owns_server
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
        if attached is not None:
            attached.close()


def test_processes_racing_to_restart_a_dead_server_start_one(short_tmp):
    graph = short_tmp / "graph"
    owner = EmbeddedGraphStore(graph)
    owner.query("CREATE (:Probe)")
    children = [subprocess.Popen([sys.executable, "-c", ATTACHER, str(graph)], cwd=REPO, env=ENV, text=True,
                                 stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
                for _ in range(4)]
    servers = []
    try:
        assert [c.stdout.readline().split() for c in children] == [["ready", "False"]] * 4
        first = owner._proc.pid
        os.kill(first, signal.SIGKILL)
        assert wait_gone(first)
        for child in children:  # all at once
            child.stdin.write("go\n")
            child.stdin.flush()
        answers = [c.stdout.readline().split() for c in children]
        assert all(a[:2] == ["queried", "1"] for a in answers), answers
        assert sum(a[2] == "True" for a in answers) == 1, f"not exactly one process restarted it: {answers}"
        servers = servers_for(owner._socket)
        assert len(servers) == 1, f"several servers on one data directory: {servers}"
        assert owner.query("MATCH (n:Probe) RETURN count(n)").rows == [[1]]
    finally:
        for child in children:
            if child.poll() is None:
                child.stdin.write("done\n")
                child.stdin.flush()
        for child in children:
            try:
                child.wait(timeout=30)
            except subprocess.TimeoutExpired:
                child.kill()
                child.wait()
        owner.close()
        for pid in servers:
            kill_leftover(pid)


# -- a full disk ----------------------------------------------------------------
def test_a_full_disk_is_unavailable_not_rejected_and_heals_when_space_is_freed(root_mount):
    disk = root_mount("disk", "size=16m")
    graph = disk / "graph"
    store = EmbeddedGraphStore(graph)
    try:
        store.ensure_schema()
        store.query("CREATE (:Probe {name: 'before'})")
        filler = disk / "filler"
        with open(filler, "wb") as fh:
            with pytest.raises(OSError, match="No space left"):
                while True:
                    fh.write(b"\0" * 65536)
        big = {"name": "big", "blob": "x" * 65536}  # more than the slack in the AOF's last page
        with pytest.raises(GraphUnavailable) as err:
            store.query("CREATE (:Probe {name: $name, blob: $blob})", big)
        message = str(err.value)
        assert "disk is full" in message and str(graph) in message and "\n" not in message, message
        assert store.query("MATCH (n:Probe) RETURN n.name").rows == [["before"]]  # reads still work

        filler.unlink()
        deadline = time.monotonic() + 30
        while True:
            try:
                store.query("CREATE (:Probe {name: $name, blob: $blob})", big)
                break
            except GraphUnavailable:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.5)
        assert sorted(store.query("MATCH (n:Probe) RETURN n.name").rows) == [["before"], ["big"]]
    finally:
        store.close()


def test_errors_in_the_statement_are_rejected_not_unavailable(embedded_store):
    with pytest.raises(GraphRejected, match="rejected the statement"):
        embedded_store.query("MATCH (n RETURN n")
    embedded_store.ensure_schema()  # "already indexed" is still fine


# -- start-up failures are one clear line ---------------------------------------
def test_a_graph_folder_under_a_file_is_one_clear_line(short_tmp):
    (short_tmp / "file").write_text("not a folder")
    graph = short_tmp / "file" / "graph"
    with pytest.raises(GraphUnavailable) as err:
        EmbeddedGraphStore(graph)
    message = str(err.value)
    assert f"embedded graph folder {graph} is not writable" in message and "\n" not in message, message


def test_a_read_only_graph_folder_is_one_clear_line(root_mount):
    disk = root_mount("ro", "size=1m")
    (disk / "graph").mkdir()
    subprocess.run(["mount", "-o", "remount,ro", str(disk)], check=True)  # root ignores chmod, not this
    with pytest.raises(GraphUnavailable) as err:
        EmbeddedGraphStore(disk / "graph")
    message = str(err.value)
    assert f"embedded graph folder {disk / 'graph'} is not writable: Read-only file system" in message, message
    assert "\n" not in message


def test_a_server_that_exits_at_start_points_to_its_log(short_tmp):
    graph = short_tmp / "graph"
    EmbeddedGraphStore(graph).close()
    (graph / "appendonlydir" / "appendonly.aof.manifest").write_text("not a manifest\n")
    with pytest.raises(GraphUnavailable) as err:
        EmbeddedGraphStore(graph)
    message = str(err.value)
    assert "exited at start" in message and str(graph / "falkordb.log") in message and "\n" not in message
    assert "manifest" in message  # the reason, from the log
    assert not (graph / "falkordb.pid").exists() and servers_for(graph / "falkordb.sock") == []


# -- a stale pid file ---------------------------------------------------------------
def test_stop_server_never_signals_a_process_that_reused_the_pid(short_tmp):
    graph = short_tmp / "graph"
    graph.mkdir()
    stranger = subprocess.Popen(["sleep", "60"])
    other = EmbeddedGraphStore(short_tmp / "other")  # a redis-server, but for another directory
    try:
        for pid in (stranger.pid, other._proc.pid):
            (graph / "falkordb.pid").write_text(str(pid))
            assert EmbeddedGraphStore.stop_server(graph) is False
            time.sleep(0.2)  # a SIGTERM would have landed by now
            assert not gone(pid), f"stop_server killed unrelated process {pid}"
            assert not (graph / "falkordb.pid").exists()  # the stale file is gone
        assert stranger.poll() is None
        assert other.query("RETURN 1").rows == [[1]]
        # and it still stops the directory's own server
        assert EmbeddedGraphStore.stop_server(short_tmp / "other") is True
        assert wait_gone(other._proc.pid, 5)
    finally:
        stranger.kill()
        stranger.wait()
        other.close()
