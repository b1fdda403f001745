"""Start the production stack for real and check it end to end (``make compose-test``).

1. build every image locally (deploy/images.py: debootstrap base, Maven Central jars, PyPI);
2. bring docker-compose.yml up under its own project name, env file and free host ports,
   with the CPU worker profile, and wait until every service reports healthy;
3. produce the bundled sample posts (two of them invalid on purpose) from the host through
   Kafka's published host listener;
4. through the published Bolt port, wait until every valid post is in Neo4j, check its
   facts are exactly those the same shipped extractor finds on the host, that the two
   invalid sample posts were dead-lettered, and that the worker's /metrics counted it all;
5. through the published Airflow port, unpause ``detect_novelty``, trigger a run and wait
   for it to succeed (it reads Kafka and writes Neo4j from the Airflow containers);
6. check Airflow's user can write the model volume the workers read; recreate the Kafka
   container and check the topic and the workers' committed offsets survived (the log dir
   is the volume);
7. tear everything down (volumes included) and record ``benchmarks/results/compose.json``.

Needs root for the Docker engine: when none answers, Debian's ``dockerd`` is started here
(its PID saved, stopped again at the end). Compose is Debian's ``docker-compose`` (v1.29)
or ``docker compose`` (v2), whichever exists.
"""
from __future__ import annotations

import argparse
import base64
import json
import logging
import os
import secrets
import shutil
import socket
import subprocess
import tempfile
import time
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Iterator

from .images import ROOT, build_images

log = logging.getLogger("mkg.deploy.compose_test")
SAMPLE_POSTS = ROOT / "pipeline" / "data" / "sample_posts.jsonl"
DAG_ID = "detect_novelty"


@dataclass
class StackResult:
    build_s: float = 0.0
    up_s: float = 0.0
    posts_produced: int = 0
    invalid_posts: int = 0
    posts_found: int = 0
    triples_found: int = 0
    triples_expected: int = 0
    facts_match_host: bool = False
    dead_letters: int = 0
    ingest_s: float = 0.0
    dag_run_state: str = ""
    dag_run_s: float = 0.0
    posts_written_metric: float = 0.0
    shared_volume_writable: bool = False
    offsets_survived_restart: bool = False
    build_seconds: dict[str, float] = field(default_factory=dict)
    healthy_services: list[str] = field(default_factory=list)
    console_needs_login: bool = False  # the console answers on its host port and sends strangers to /login
    console_shows_dead_letters: bool = False  # after login, its stream page lists the invalid posts


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def compose_cli() -> list[str]:
    if subprocess.run(["docker", "compose", "version"], capture_output=True).returncode == 0:
        return ["docker", "compose"]
    if shutil.which("docker-compose"):
        return ["docker-compose"]
    raise RuntimeError("neither `docker compose` (v2) nor `docker-compose` (v1) is installed")


@contextmanager
def docker_engine(log_path: Path) -> Iterator[None]:
    """A reachable Docker engine for the block: the running one, or a dockerd started here."""
    if subprocess.run(["docker", "info"], capture_output=True).returncode == 0:
        yield
        return
    dockerd = shutil.which("dockerd")
    if not dockerd or os.geteuid() != 0:
        raise RuntimeError("no Docker engine answers; as root, install Debian's docker.io (dockerd)")
    with open(log_path, "ab") as out:
        proc = subprocess.Popen([dockerd], stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    log.info("started dockerd (pid %d), log %s", proc.pid, log_path)
    try:
        deadline = time.monotonic() + 60
        while subprocess.run(["docker", "info"], capture_output=True).returncode != 0:
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"dockerd did not come up; see {log_path}")
            time.sleep(1)
        yield
    finally:
        proc.terminate()  # by the PID we started, never by name
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()


class Stack:
    """One compose project: its own name, env file and host ports, so it never meets a
    user's stack (or a user's Neo4j on :7687)."""

    def __init__(self, workdir: Path, tag: str) -> None:
        self.project = f"mkgtest{os.getpid()}"
        self.ports = {"bolt": free_port(), "kafka": free_port(), "airflow": free_port(), "console": free_port()}
        self.neo4j_password = secrets.token_hex(12)
        self.admin_password = secrets.token_hex(12)
        self.console_password = secrets.token_hex(12)
        self.env_file = workdir / "compose.env"
        self.env_file.write_text("".join(f"{k}={v}\n" for k, v in {
            "NEO4J_PASSWORD": self.neo4j_password,
            "POSTGRES_PASSWORD": secrets.token_hex(12),
            "AIRFLOW_JWT_SECRET": secrets.token_hex(24),
            "AIRFLOW_ADMIN_PASSWORD": self.admin_password,
            "COMPOSE_PROFILES": "cpu",
            "MKG_TAG": tag,
            "NEO4J_BOLT_PORT": self.ports["bolt"],
            "KAFKA_HOST_PORT": self.ports["kafka"],
            "AIRFLOW_PORT": self.ports["airflow"],
            "MKG_UI_PASSWORD": self.console_password,
            "MKG_UI_SECRET_KEY": secrets.token_hex(24),
            "CONSOLE_PORT": self.ports["console"],
        }.items()))
        self.cli = [*compose_cli(), "-p", self.project, "--env-file", str(self.env_file),
                    "-f", str(ROOT / "docker-compose.yml")]

    def compose(self, *args: str, check: bool = True) -> str:
        env = {**os.environ, "COMPOSE_PROFILES": "cpu"}
        done = subprocess.run([*self.cli, *args], cwd=ROOT, env=env, capture_output=True, text=True)
        if check and done.returncode != 0:
            raise RuntimeError(f"{' '.join(args)} failed ({done.returncode}):\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}")
        return done.stdout

    def containers(self) -> dict[str, str]:
        """service name -> container id, for the services that have a container."""
        ids = self.compose("ps", "-q").split()
        out = {}
        for cid in ids:
            labels = json.loads(subprocess.run(["docker", "inspect", "--format", "{{json .Config.Labels}}", cid],
                                               capture_output=True, text=True, check=True).stdout)
            out[labels["com.docker.compose.service"]] = cid
        return out

    def health(self) -> dict[str, str]:
        """service -> health (or state when it has no health check, e.g. the one-shot init)."""
        states = {}
        for service, cid in self.containers().items():
            state = json.loads(subprocess.run(["docker", "inspect", "--format", "{{json .State}}", cid],
                                              capture_output=True, text=True, check=True).stdout)
            states[service] = state.get("Health", {}).get("Status") or (
                f"exited {state['ExitCode']}" if state["Status"] == "exited" else state["Status"])
        return states

    def wait_healthy(self, timeout_s: float) -> dict[str, str]:
        deadline = time.monotonic() + timeout_s
        while True:
            states = self.health()
            pending = {s: h for s, h in states.items() if h not in ("healthy", "exited 0")}
            if not pending:
                return states
            failed = {s: h for s, h in pending.items() if h.startswith("exited") or h == "unhealthy"}
            if failed or time.monotonic() > deadline:
                raise RuntimeError(f"stack not healthy: {pending}\n{self.compose('logs', '--tail', '60', check=False)[-8000:]}")
            time.sleep(5)

    def exec(self, service: str, *cmd: str) -> subprocess.CompletedProcess:
        return subprocess.run(["docker", "exec", self.containers()[service], *cmd], capture_output=True, text=True)

    def down(self) -> None:
        self.compose("down", "-v", "--remove-orphans", "--timeout", "30", check=False)


def produce_posts(bootstrap: str, topic: str) -> tuple[list[dict], int]:
    """The bundled sample posts, as an outside producer sends them (pictures as base64, not
    as paths on its own disk); returns (the valid posts as sent, number of invalid ones).

    The sample holds two invalid posts on purpose (broken JSON, no text): the stack must
    dead-letter exactly those.
    """
    from kafka import KafkaProducer

    from pipeline.post import InvalidPost, parse_post

    valid, invalid, payloads = [], 0, []
    for line in filter(str.strip, SAMPLE_POSTS.read_text().splitlines()):
        try:
            parse_post(line)
        except InvalidPost:
            invalid += 1
            payloads.append(line.encode())
            continue
        post = json.loads(line)
        if post.get("image", {}).get("path"):
            data = (SAMPLE_POSTS.parent / "sample_images" / post["image"]["path"]).read_bytes()
            post["image"] = {"base64": base64.b64encode(data).decode()}
        valid.append(post)
        payloads.append(json.dumps(post).encode())
    producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=5,
                             max_request_size=16 * 1024 * 1024)
    for payload in payloads:
        producer.send(topic, value=payload)
    producer.flush()
    producer.close()
    return valid, invalid


def wait_for_posts(uri: str, password: str, ids: list[str],
                   timeout_s: float) -> tuple[int, dict[tuple[str, str, str], set[str]]]:
    """Poll Neo4j until every post id has a :Post node (or time runs out); return the posts
    found and the graph's facts, (head key, relation, tail key) -> post ids."""
    from neo4j import GraphDatabase

    deadline = time.monotonic() + timeout_s
    with GraphDatabase.driver(uri, auth=("neo4j", password)) as driver:
        while True:
            records, _, _ = driver.execute_query(
                "MATCH (p:Post) WHERE p.id IN $ids RETURN count(p) AS posts", ids=ids)
            found = records[0]["posts"]
            if found == len(ids) or time.monotonic() > deadline:
                break
            time.sleep(3)
        records, _, _ = driver.execute_query(
            "MATCH (h:Entity)-[r]->(t:Entity) WHERE r.post_ids IS NOT NULL "
            "RETURN h.key AS head, type(r) AS rel, t.key AS tail, r.post_ids AS posts")
    return found, {(r["head"], r["rel"], r["tail"]): set(r["posts"]) for r in records}


def host_facts(posts: list[dict]) -> dict[tuple[str, str, str], set[str]]:
    """The facts the shipped extractor finds in ``posts`` here on the host, outside Docker:
    what the stack's graph must hold, exactly."""
    from benchmarks.common import expected_facts
    from pipeline.config import load_config
    from pipeline.runtime import make_extractor

    cfg = load_config(None, environ={})
    cfg.extractor.device = "cpu"
    with tempfile.TemporaryDirectory() as models:
        cfg.extractor.models_dir = Path(models)  # the shipped versions, as a fresh container has
        return expected_facts(make_extractor(cfg), posts)


def count_topic(bootstrap: str, topic: str) -> int:
    from kafka import KafkaConsumer, TopicPartition

    consumer = KafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    try:
        parts = [TopicPartition(topic, p) for p in (consumer.partitions_for_topic(topic) or ())]
        if not parts:
            return 0
        start, end = consumer.beginning_offsets(parts), consumer.end_offsets(parts)
        return sum(end[p] - start[p] for p in parts)
    finally:
        consumer.close()


def committed_offsets(bootstrap: str, group: str) -> dict[str, int]:
    from kafka import KafkaAdminClient

    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    try:
        return {f"{tp.topic}-{tp.partition}": meta.offset
                for tp, meta in admin.list_group_offsets(group).get(group, {}).items()}
    finally:
        admin.close()


class AirflowClient:
    """Airflow 3's REST API v2 through the published port, with a JWT from /auth/token."""

    def __init__(self, base: str, password: str) -> None:
        import requests

        self.base, self.session = base.rstrip("/"), requests.Session()
        token = self.session.post(f"{self.base}/auth/token",
                                  json={"username": "admin", "password": password}, timeout=30)
        token.raise_for_status()
        self.session.headers["Authorization"] = f"Bearer {token.json()['access_token']}"

    def call(self, method: str, path: str, **kwargs):
        response = self.session.request(method, f"{self.base}/api/v2{path}", timeout=30, **kwargs)
        response.raise_for_status()
        return response.json()

    def run_dag(self, dag_id: str, conf: dict, timeout_s: float) -> tuple[str, float]:
        deadline = time.monotonic() + timeout_s
        while True:  # the dag-processor parses the file a little after start-up
            try:
                self.call("GET", f"/dags/{dag_id}")
                break
            except Exception:
                if time.monotonic() > deadline:
                    raise
                time.sleep(5)
        self.call("PATCH", f"/dags/{dag_id}", json={"is_paused": False})
        start = time.monotonic()
        run = self.call("POST", f"/dags/{dag_id}/dagRuns", json={"logical_date": None, "conf": conf})
        while True:
            state = self.call("GET", f"/dags/{dag_id}/dagRuns/{run['dag_run_id']}")["state"]
            if state in ("success", "failed") or time.monotonic() > deadline:
                return state, time.monotonic() - start
            time.sleep(5)


def run_stack_check(tag: str = "latest", build: bool = True, timeout_s: float = 900.0,
                    keep: bool = False) -> StackResult:
    """Everything in the module docstring; raises on the first check that fails."""
    result = StackResult()
    with tempfile.TemporaryDirectory(prefix="mkg-compose-") as tmp, docker_engine(Path(tmp) / "dockerd.log"):
        if build:
            start = time.monotonic()
            result.build_seconds = {k: round(v, 1) for k, v in build_images(tag=tag).items()}
            result.build_s = round(time.monotonic() - start, 1)
        stack = Stack(Path(tmp), tag)
        try:
            start = time.monotonic()
            stack.compose("up", "-d")
            states = stack.wait_healthy(timeout_s)
            result.up_s = round(time.monotonic() - start, 1)
            result.healthy_services = sorted(s for s, h in states.items() if h == "healthy")
            log.info("stack healthy in %.0f s: %s", result.up_s, states)

            kafka = f"127.0.0.1:{stack.ports['kafka']}"
            bolt = f"bolt://127.0.0.1:{stack.ports['bolt']}"
            start = time.monotonic()
            posts, result.invalid_posts = produce_posts(kafka, "posts")
            ids = [post["id"] for post in posts]
            result.posts_produced = len(ids)
            result.posts_found, facts = wait_for_posts(bolt, stack.neo4j_password, ids, timeout_s)
            result.ingest_s = round(time.monotonic() - start, 1)
            result.triples_found = len(facts)
            expected = host_facts(posts)
            result.triples_expected = len(expected)
            result.facts_match_host = facts == expected
            result.dead_letters = count_topic(kafka, "posts.dead")
            log.info("graph: %d/%d posts, %d triples, %d dead letters", result.posts_found,
                     len(ids), result.triples_found, result.dead_letters)

            result.console_needs_login, result.console_shows_dead_letters = console_check(
                f"http://127.0.0.1:{stack.ports['console']}", stack.console_password)

            metrics = stack.exec("worker-cpu", "python", "-c", "import urllib.request; print(urllib.request."
                                 "urlopen('http://127.0.0.1:9100/metrics', timeout=10).read().decode())").stdout
            result.posts_written_metric = sum(float(line.split()[-1]) for line in metrics.splitlines()
                                              if line.startswith("mkg_posts_written_total "))
            # what Airflow's user writes on the shared volume (a promoted model), the workers read
            marker = "/var/lib/mkg/models/.compose-test"
            result.shared_volume_writable = (stack.exec("airflow-scheduler", "touch", marker).returncode == 0
                                             and stack.exec("worker-cpu", "test", "-f", marker).returncode == 0)

            airflow = AirflowClient(f"http://127.0.0.1:{stack.ports['airflow']}", stack.admin_password)
            result.dag_run_state, dag_s = airflow.run_dag(DAG_ID, {"window_hours": 24}, timeout_s)
            result.dag_run_s = round(dag_s, 1)
            log.info("%s run: %s in %.0f s", DAG_ID, result.dag_run_state, dag_s)

            before = committed_offsets(kafka, "mkg-worker")
            posts_before = count_topic(kafka, "posts")
            stack.compose("rm", "-s", "-f", "kafka")
            stack.compose("up", "-d", "kafka")
            stack.wait_healthy(timeout_s)
            result.offsets_survived_restart = (count_topic(kafka, "posts") == posts_before
                                               and committed_offsets(kafka, "mkg-worker") == before and bool(before))
        finally:
            if not keep:
                stack.down()
    return result


def console_check(base: str, password: str) -> tuple[bool, bool]:
    """(a stranger is sent to /login, a logged-in user's stream page lists parse dead letters)."""
    import http.cookiejar
    import re
    import urllib.parse
    import urllib.request

    opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar()))
    with opener.open(f"{base}/stream", timeout=30) as resp:  # redirected to the login form
        needs_login, page = "/login" in resp.url, resp.read().decode()
    token = re.search(r'name="csrf_token" value="([^"]+)"', page)
    if token is None:
        return needs_login, False
    form = urllib.parse.urlencode({"csrf_token": token.group(1), "user": "admin", "password": password}).encode()
    with opener.open(f"{base}/login?next=/stream", data=form, timeout=30) as resp:
        stream = resp.read().decode()
    return needs_login, 'id="dead-letters"' in stream and "parse" in stream


def failures(result: StackResult) -> list[str]:
    """What the run shows to be wrong (empty when the stack works end to end)."""
    problems = []
    if result.posts_found != result.posts_produced:
        problems.append(f"{result.posts_found} of {result.posts_produced} posts reached Neo4j")
    if result.triples_found == 0:
        problems.append("no triples in Neo4j")
    if not result.facts_match_host:
        problems.append(f"the graph's {result.triples_found} facts differ from the {result.triples_expected} "
                        "the same extractor finds on the host")
    if result.dead_letters != result.invalid_posts:
        problems.append(f"{result.dead_letters} dead letters for {result.invalid_posts} invalid posts")
    if result.dag_run_state != "success":
        problems.append(f"{DAG_ID} run ended {result.dag_run_state!r}")
    if result.posts_written_metric != result.posts_produced:
        problems.append(f"the worker's /metrics counts {result.posts_written_metric} posts written")
    if not result.shared_volume_writable:
        problems.append("Airflow cannot write the model volume the workers read")
    if not result.console_needs_login:
        problems.append("the console answered a stranger without a login")
    if not result.console_shows_dead_letters:
        problems.append("the console's stream page did not list the dead letters after a login")
    if not result.offsets_survived_restart:
        problems.append("topic or committed offsets lost when the Kafka container was recreated")
    return problems


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m deploy.compose_test", description=__doc__.split("\n\n")[0],
                                     epilog=__doc__.split("\n\n", 1)[1],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tag", default="latest", help="image tag to build and run (default: latest)")
    parser.add_argument("--no-build", action="store_true", help="use images already built with this tag")
    parser.add_argument("--timeout", type=float, default=900.0, help="seconds allowed per wait (default 900)")
    parser.add_argument("--keep", action="store_true", help="leave the stack running (debugging)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("kafka").setLevel(logging.WARNING)
    result = run_stack_check(args.tag, build=not args.no_build, timeout_s=args.timeout, keep=args.keep)
    problems = failures(result)
    from benchmarks.common import write_result

    write_result("compose", asdict(result), module="deploy.compose_test",
                 notes="passed" if not problems else "FAILED: " + "; ".join(problems))
    for problem in problems:
        log.error(problem)
    return 1 if problems else 0


if __name__ == "__main__":
    raise SystemExit(main())
