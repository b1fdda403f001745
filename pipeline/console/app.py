"""The web console: a Flask application over the configured graph and model store.

Pages are rendered on the server by Jinja2 with autoescaping on, and no page
carries a script: posts are hostile input, and the Content-Security-Policy sent
with every response (``script-src 'none'``) makes a script that escaped escaping
inert as well. Every write is a POST with a CSRF token (Flask-WTF), and goes
through the same functions as ``mkg candidates`` (continual.candidates.review),
which record who decided and when. Bound to anything but the loopback interface,
the console will not start without a password (:func:`check_binding`).
"""
from __future__ import annotations

import getpass
import hmac
import io
import ipaddress
import logging
import os
import re
from urllib.parse import urlencode

from flask import Flask, Response, abort, flash, redirect, render_template, request, session, url_for
from flask_wtf.csrf import CSRFError, CSRFProtect

from graph_store.schema import IDENTIFIER, is_identifier

from ..config import Config
from . import status
from .drawing import HEIGHT, WIDTH, neighbourhood
from .queries import ENTITY, IN_EDGES, OUT_EDGES, GraphReader

log = logging.getLogger(__name__)

CSP = ("default-src 'none'; script-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; "
       "frame-ancestors 'none'; base-uri 'none'")
# a relation type as the graph stores it; anything else in a URL is refused before a query runs
_HEX64 = re.compile(r"^[0-9a-f]{64}$")


def _local_path(target: str) -> bool:
    """A login's ``next`` may only lead to a page of this console: browsers read "//host" and "/\\host"
    as other sites (an open redirect)."""
    return target.startswith("/") and not target.startswith("//") and "\\" not in target


class ConsoleError(RuntimeError):
    """The console cannot start as configured (the message says what to change)."""


def check_binding(cfg: Config) -> None:
    """Loopback needs nothing; any other address needs ``ui.password`` (MKG_UI_PASSWORD)."""
    host = cfg.ui.host
    try:
        loopback = host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = False
    if not loopback and cfg.ui.password is None:
        raise ConsoleError(f"ui.host is {host!r}, not a loopback address: set ui.password (env MKG_UI_PASSWORD) "
                           "so that every page needs a login, or bind 127.0.0.1")


def create_app(cfg: Config, graph=None) -> Flask:
    """The console over ``graph`` (default: the configured one, opened here and kept open)."""
    from continual.candidates.graph import CONFIRMED, PENDING, RELATION, find_candidate, list_candidates
    from continual.candidates.review import CandidateError, confirm, known_class_names, merge, reject

    from ..jobs.novelty import labelled_store_of
    from ..runtime import open_graph

    app = Flask(__name__)
    secret = cfg.ui.secret_key.get_secret_value() if cfg.ui.secret_key else os.urandom(32).hex()
    app.config.update(SECRET_KEY=secret, SESSION_COOKIE_HTTPONLY=True, SESSION_COOKIE_SAMESITE="Lax",
                      WTF_CSRF_TIME_LIMIT=None, MAX_CONTENT_LENGTH=64 * 1024)
    CSRFProtect(app)
    reader = GraphReader(graph if graph is not None else open_graph(cfg))
    metrics = status.MetricsReader(cfg.ui.metrics_urls)
    password = cfg.ui.password.get_secret_value() if cfg.ui.password else None
    local_user = f"local:{getpass.getuser()}"

    def who() -> str:
        return session.get("user") or local_user

    @app.before_request
    def require_login():
        if password is None or request.endpoint in ("login", "static", "healthz"):
            return None
        if not session.get("user"):
            return redirect(url_for("login", next=request.full_path if request.method == "GET" else "/"))
        return None

    @app.after_request
    def harden(resp: Response) -> Response:
        resp.headers["Content-Security-Policy"] = CSP
        resp.headers["X-Content-Type-Options"] = "nosniff"
        resp.headers["X-Frame-Options"] = "DENY"
        resp.headers["Referrer-Policy"] = "same-origin"
        return resp

    @app.errorhandler(CSRFError)
    def csrf_refused(exc: CSRFError):
        return render_template("error.html", title="Refused", message=f"The form was refused: {exc.description}"), 400

    @app.get("/healthz")
    def healthz():
        return {"ok": True}

    @app.route("/login", methods=["GET", "POST"])
    def login():
        if password is None:
            return redirect(url_for("review"))
        error = None
        if request.method == "POST":
            user_ok = hmac.compare_digest(request.form.get("user", ""), cfg.ui.user)
            pass_ok = hmac.compare_digest(request.form.get("password", "").encode(), password.encode())
            if user_ok and pass_ok:
                session.clear()
                session["user"] = cfg.ui.user
                target = request.args.get("next") or "/"
                return redirect(target if _local_path(target) else "/")
            error = "Wrong user name or password."
            log.warning("console login refused", extra={"remote": request.remote_addr})
        return render_template("login.html", error=error), 401 if error else 200

    @app.post("/logout")
    def logout():
        session.clear()
        return redirect(url_for("login"))

    @app.get("/")
    def index():
        return redirect(url_for("review"))

    # --- review queue -------------------------------------------------------------------------------------------

    @app.get("/review")
    def review():
        wanted = request.args.get("status", PENDING)
        rows = reader.call(list_candidates, None if wanted == "all" else wanted)
        # largest and densest first
        rows.sort(key=lambda d: (-(d.get("size") or 0), -(d.get("density") or 0.0), d["id"]))
        return render_template("review.html", rows=rows, status=wanted, who=who())

    @app.get("/review/<cid>")
    def candidate(cid: str):
        cand = reader.call(find_candidate, cid)
        if cand is None:
            abort(404)
        row = next((r for r in reader.call(list_candidates) if r["id"] == cid), {})
        members = list(cand.members[:12])
        posts = {p.id: p for p in reader.posts(sorted({m["post_id"] for m in members}))}
        known = sorted(reader.call(known_class_names, labelled_store_of(cfg), cand.kind))
        return render_template("candidate.html", cand=cand, row=row, members=members, posts=posts, known=known,
                               is_relation=cand.kind == RELATION, who=who(), confirmed=CONFIRMED)

    def _decide(cid: str, action):
        try:
            result = action()
        except CandidateError as exc:
            flash(str(exc), "error")
            return redirect(url_for("candidate", cid=cid))
        flash(f"{result['id']}: {result['status']}" + (f" as {result['name']}" if result.get("name") else ""), "ok")
        return redirect(url_for("review"))

    @app.post("/review/<cid>/confirm")
    def confirm_candidate(cid: str):
        name = request.form.get("name", "").strip()
        description = request.form.get("description", "").strip() or None
        return _decide(cid, lambda: reader.call(confirm, labelled_store_of(cfg), cid, name,
                                                description=description, by=who()))

    @app.post("/review/<cid>/merge")
    def merge_candidate(cid: str):
        cand = reader.call(find_candidate, cid)
        if cand is None:
            abort(404)
        labelled = labelled_store_of(cfg)
        into = request.form.get("into", "").strip()
        known = reader.call(known_class_names, labelled, cand.kind)
        return _decide(cid, lambda: reader.call(merge, labelled, cid, into, known, by=who()))

    @app.post("/review/<cid>/reject")
    def reject_candidate(cid: str):
        return _decide(cid, lambda: reader.call(reject, cid, by=who()))

    # --- entity explorer ----------------------------------------------------------------------------------------

    @app.get("/entities")
    def entities():
        q = request.args.get("q", "").strip()
        rows = reader.search(q, cfg.ui.page_size) if q else []
        return render_template("entities.html", q=q, rows=rows)

    @app.get("/entity")
    def entity():
        key = request.args.get("key", "")
        view = reader.entity(key, cfg.ui.page_size)
        if view is None:
            abort(404)
        nodes, edges, left_out = neighbourhood(view)
        return render_template("entity.html", view=view, nodes=nodes, edges=edges, left_out=left_out,
                               width=WIDTH, height=HEIGHT)

    @app.get("/entity/cypher")
    def entity_cypher():
        key = request.args.get("key", "")
        params = {"key": key, "limit": cfg.ui.page_size}
        return render_template("cypher.html", key=key, queries=[ENTITY, OUT_EDGES, IN_EDGES], params=params)

    @app.get("/edge")
    def edge():
        head, rel, tail = (request.args.get(k, "") for k in ("head", "rel", "tail"))
        if not is_identifier(rel):
            abort(400, f"relation type must match {IDENTIFIER.pattern}")
        found = reader.edge(head, rel, tail)
        if found is None:
            abort(404)
        head_name, tail_name, edges = found
        ids = sorted({p for e in edges for p in e.post_ids})
        return render_template("edge.html", head=head, rel=rel, tail=tail, head_name=head_name, tail_name=tail_name,
                               edges=edges, posts=reader.posts(ids))

    @app.post("/edge/correct")
    def correct_edge():
        """Reject one extracted fact, or fix its relation: recorded with the reviewer's name and time,
        never written back by a later extraction (graph_store.corrections)."""
        from graph_store.corrections import CorrectionError, correct_fact
        from graph_store.schema import SchemaViolation
        from mkg_common.clock import utc_iso

        head, rel, tail = (request.form.get(k, "") for k in ("head", "rel", "tail"))
        fixed_to = request.form.get("to", "").strip() if request.form.get("action") == "fix" else None
        if not is_identifier(rel) or (fixed_to is not None and not is_identifier(fixed_to)):
            abort(400, f"relation type must match {IDENTIFIER.pattern}")
        reason = request.form.get("reason", "").strip()[:500]
        try:
            done = reader.call(correct_fact, head, rel, tail, by=who(), at=utc_iso(), reason=reason,
                               fixed_to=fixed_to)
        except (CorrectionError, SchemaViolation) as exc:
            flash(str(exc), "error")
            return redirect(url_for("edge", head=head, rel=rel, tail=tail))
        flash(f"{done.id}: {done.decision}" + (f" to {done.fixed_to}" if done.fixed_to else ""), "ok")
        return redirect(url_for("entity", key=head))

    @app.get("/post")
    def post():
        found = reader.post(request.args.get("id", ""))
        if found is None:
            abort(404)
        p, mentions = found
        return render_template("post.html", post=p, mentions=mentions)

    @app.get("/post/image")
    def post_image():
        found = reader.post(request.args.get("id", ""))
        if found is None or not found[0].image or _HEX64.match(found[0].image):
            abort(404)
        return _thumbnail(cfg, found[0].image)

    # --- stream and models --------------------------------------------------------------------------------------

    @app.get("/stream")
    def stream():
        return render_template("stream.html", workers=metrics.sample(), urls=cfg.ui.metrics_urls,
                               dead=status.dead_letters(cfg, cfg.ui.dead_letters_shown))

    @app.get("/models")
    def models():
        history = status.update_history(cfg)
        return render_template("models.html", versions=status.model_versions(cfg), history=history,
                               completion=status.completion_runs(cfg), has_plot=bool(status.accuracy_series(history)))

    @app.get("/models/accuracy.png")
    def accuracy_png():
        return Response(_accuracy_png(status.accuracy_series(status.update_history(cfg))), mimetype="image/png")

    @app.template_filter("num")
    def num(value, digits: int = 2) -> str:
        return "-" if not isinstance(value, (int, float)) else f"{value:.{digits}f}"

    @app.template_global()
    def link(endpoint: str, **params) -> str:
        return url_for(endpoint) + ("?" + urlencode(params) if params else "")

    app.extensions["mkg_reader"] = reader
    return app


def _thumbnail(cfg: Config, path: str) -> Response:
    """A post's image, read under the same roots and caps as the worker reads it, as a small JPEG."""
    from ..images import ImageRejected, decode, read_path
    from ..runtime import image_policy

    policy = image_policy(cfg)
    try:
        im = decode(policy, read_path(policy, path))
    except (ImageRejected, OSError, ValueError):
        abort(404)
    im = im.convert("RGB")
    im.thumbnail((240, 240))
    buf = io.BytesIO()
    im.save(buf, format="JPEG", quality=85)
    return Response(buf.getvalue(), mimetype="image/jpeg", headers={"Cache-Control": "private, max-age=300"})


def _accuracy_png(series: dict) -> bytes:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels = {"a_f1": "A_k: all classes seen so far", "new_f1": "new classes", "old_f1_after": "old classes"}
    fig, ax = plt.subplots(figsize=(7, 3.2))
    for key, points in series.items():
        ax.plot(range(1, len(points) + 1), [v for _, v in points], marker="o", label=labels.get(key, key))
    ax.set_xlabel("continual update (task), oldest first")
    ax.set_ylabel("F1 on validation")
    ax.legend(fontsize=8)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100)
    plt.close(fig)
    return buf.getvalue()


def serve(cfg: Config, threads: int = 4) -> None:
    """``mkg ui``: the console under waitress (a production WSGI server, pure Python)."""
    from waitress import serve as waitress_serve

    check_binding(cfg)
    app = create_app(cfg)
    log.info("console serving", extra={"host": cfg.ui.host, "port": cfg.ui.port, "login": cfg.ui.password is not None})
    print(f"mkg console on http://{cfg.ui.host}:{cfg.ui.port}/ (Ctrl-C stops it)", flush=True)
    waitress_serve(app, host=cfg.ui.host, port=cfg.ui.port, threads=threads, ident="mkg")
