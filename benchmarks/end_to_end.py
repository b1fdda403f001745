"""Facts from raw posts, scored against hand-labelled gold: what a user of the graph meets.

The literature's metric (micro-F1 on annotated pairs, gold entities given)
hides predicted spans, every co-mentioned pair and noisy text. This benchmark
sends raw post text through exactly the worker's extraction path (the
production functions: ``parse_post`` -> ``extraction_input`` -> the configured
extractor -> ``add_post``, the rows the graph write receives) and scores the
facts it would write against gold labelled by docs/LABELLING.md.

Scoring is strict: a fact is right when its head and tail graph keys (type and
normalised name, what a Cypher user matches on), its relationship type and its
direction all match a gold fact of the same post; symmetric relations match in
either order. Reported per split (``dev``: anything may be chosen on it;
``test``: reported once), overall and per relation, with the expected
calibration error (ECE, 10 equal-width bins), a reliability plot, and the
error kinds of every wrong fact.

    python -m benchmarks.end_to_end                 # the default settings and the baseline, both splits
    python -m benchmarks.end_to_end --no-baseline   # the default settings only
"""
from __future__ import annotations

import argparse
import json
import logging
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Sequence

from tqdm import tqdm

from extractors.schema import one_way
from pipeline.labelled_facts import graph_triples

from .end_to_end_labels import HERE, POSTS, GoldPost, load_gold, read_jsonl

log = logging.getLogger(__name__)

GOLD = HERE / "gold.jsonl"  # first pass: the gold
SECOND_PASS = HERE / "gold_second_pass.jsonl"  # the double-labelled posts, labelled again independently
TRAIN_POSTS = HERE / "train_posts.jsonl"  # from the train splits' text: what the fact head learns from
TRAIN_GOLD = HERE / "train_gold.jsonl"
VAL_POSTS = HERE / "val_posts.jsonl"  # from the val splits' text: with the dev half, the calibration set
VAL_GOLD = HERE / "val_gold.jsonl"
RESULTS = Path(__file__).resolve().parent / "results" / "end_to_end.json"
BASELINE = Path(__file__).resolve().parent / "results" / "end_to_end_baseline.json"
DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
PLOTS = Path(__file__).resolve().parent / "plots"


@dataclass(frozen=True)
class Fact:
    head: str  # graph key
    relation: str  # graph relationship type
    tail: str

    def canonical(self) -> "Fact":
        if one_way(self.head, self.relation, self.tail):
            return Fact(self.tail, self.relation, self.head)
        return self


@dataclass
class PredictedFact:
    post_id: str
    fact: Fact
    confidence: float


@dataclass
class Scored:
    """One system's facts on a set of posts, each marked right or wrong, with the misses."""

    predicted: list[tuple[PredictedFact, bool, str]] = field(default_factory=list)  # fact, right, error kind
    found: set = field(default_factory=set)  # (post id, gold fact) found at least once
    missed: int = 0
    gold_total: int = 0
    gold_by_relation: Counter = field(default_factory=Counter)


def gold_facts(post: GoldPost) -> set[Fact]:
    return {Fact(*triple).canonical() for triple in graph_triples(post)}


def _name(key: str) -> str:
    return key.split(":", 1)[1]


def error_kind(fact: Fact, gold: set[Fact], gold_entities: Iterable[str]) -> str:
    """Why a wrong fact is wrong: the first of span, type, direction, wrong relation, unsupported."""
    entities = set(gold_entities)
    names = {_name(k) for k in entities}
    for key in (fact.head, fact.tail):
        if key not in entities:
            return "type" if _name(key) in names else "span"
    if Fact(fact.tail, fact.relation, fact.head) in gold:
        return "direction"
    if any({g.head, g.tail} == {fact.head, fact.tail} for g in gold):
        return "wrong_relation"
    return "unsupported"


def score(posts: Sequence[GoldPost], predicted: dict[str, list[PredictedFact]]) -> Scored:
    out = Scored()
    for post in posts:
        gold = gold_facts(post)
        out.gold_total += len(gold)
        out.gold_by_relation.update(f.relation for f in gold)
        found = set()
        for p in predicted.get(post.id, []):
            fact = p.fact.canonical()
            right = fact in gold
            found |= {fact} if right else set()
            out.predicted.append((p, right, "" if right else error_kind(fact, gold, post.entities)))
        out.missed += len(gold - found)
        out.found |= {(post.id, f) for f in found}
    return out


def _buckets(pairs: Sequence[tuple[float, bool]], bins: int) -> dict[int, list[tuple[float, bool]]]:
    buckets = defaultdict(list)
    for conf, right in pairs:
        buckets[min(int(conf * bins), bins - 1)].append((conf, right))
    return buckets


def ece(pairs: Sequence[tuple[float, bool]], bins: int = 10) -> float:
    """Expected calibration error: the bin-weighted gap between mean confidence and accuracy."""
    return sum(len(b) / len(pairs) * abs(sum(c for c, _ in b) / len(b) - sum(r for _, r in b) / len(b))
               for b in _buckets(pairs, bins).values())


def reliability(pairs: Sequence[tuple[float, bool]], bins: int = 10) -> list[dict]:
    buckets = _buckets(pairs, bins)
    return [{"bin": [i / bins, (i + 1) / bins], "n": len(b), "confidence": round(sum(c for c, _ in b) / len(b), 4),
             "accuracy": round(sum(r for _, r in b) / len(b), 4)} for i, b in sorted(buckets.items())]


def _prf(right: int, predicted: int, gold: int, found: int | None = None) -> dict:
    """Precision over the facts written (both edges of a pair written twice count), recall over the
    gold facts found at least once (``found``; ``right`` when every written fact is distinct)."""
    found = right if found is None else found
    p = right / predicted if predicted else 0.0
    r = found / gold if gold else 0.0
    return {"precision": round(p, 4), "recall": round(r, 4), "f1": round(2 * p * r / (p + r), 4) if p + r else 0.0,
            "predicted": predicted, "right": right, "found": found, "gold": gold}


def metrics(s: Scored) -> dict:
    right = sum(r for _, r, _ in s.predicted)
    pairs = [(p.confidence, r) for p, r, _ in s.predicted]
    per_rel = {}
    for rel in sorted(set(s.gold_by_relation) | {p.fact.relation for p, _, _ in s.predicted}):
        mine = [(p, r) for p, r, _ in s.predicted if p.fact.relation == rel]
        per_rel[rel] = _prf(sum(r for _, r in mine), len(mine), s.gold_by_relation[rel],
                            sum(1 for _, f in s.found if f.relation == rel))
    return {**_prf(right, len(s.predicted), s.gold_total, len(s.found)), "ece": round(ece(pairs), 4),
            "reliability": reliability(pairs), "per_relation": per_rel,
            "errors": dict(Counter(kind for _, r, kind in s.predicted if not r).most_common()),
            "confidence_bands": {
                ">=0.9": _band(s, lambda c: c >= 0.9), "<0.7": _band(s, lambda c: c < 0.7)}}


def _band(s: Scored, keep) -> dict:
    """Precision of the written facts whose confidence ``keep`` accepts."""
    mine = [(p, r) for p, r, _ in s.predicted if keep(p.confidence)]
    right = sum(r for _, r in mine)
    return {"precision": round(right / len(mine), 4) if mine else 0.0, "predicted": len(mine), "right": right}


def agreement(first: Sequence[GoldPost], second: Sequence[GoldPost]) -> dict:
    """Fact- and entity-level F1 between two independent labellings of the same posts."""
    a = {p.id: p for p in first}
    both = [p for p in second if p.id in a]
    fa = {(p.id, f) for p in both for f in gold_facts(a[p.id])}
    fb = {(p.id, f) for p in both for f in gold_facts(p)}
    ea = {(p.id, e) for p in both for e in a[p.id].entities}
    eb = {(p.id, e) for p in both for e in p.entities}

    def f1(x: set, y: set) -> float:
        return round(2 * len(x & y) / (len(x) + len(y)), 4) if x or y else 1.0

    return {"posts": len(both), "fact_f1": f1(fa, fb), "entity_f1": f1(ea, eb),
            "facts_first": len(fa), "facts_second": len(fb)}


# -- running the production path ------------------------------------------------------------------

def as_post(p: dict):
    """A labelled post as the wire's ``Post`` (validated by the worker's own parser)."""
    from pipeline.post import parse_post

    return parse_post(json.dumps({"id": p["id"], "text": p["text"], "created_at": "2026-01-01T00:00:00Z",
                                  "author": p.get("author", "@someone"), "source": "benchmark"}))


def extract_facts(posts: Sequence[dict], cfg, extractor=None, batch_size: int = 32,
                  progress: bool = True) -> dict[str, list[PredictedFact]]:
    """The facts the worker would write for each post: the worker's own functions, in its order."""
    from graph_store.records import GraphBatch
    from graph_store.schema import LabelSchema
    from pipeline.runtime import make_extractor
    from pipeline.to_graph import add_post
    from pipeline.worker import extraction_input

    extractor = extractor or make_extractor(cfg)
    ents, rels = extractor.known_types()
    schema = LabelSchema().extended(ents, rels)
    parsed = [as_post(p) for p in posts]
    out: dict[str, list[PredictedFact]] = {}
    bar = tqdm(total=len(parsed), desc="extract", unit="post", disable=not progress)
    for i in range(0, len(parsed), batch_size):
        chunk = parsed[i:i + batch_size]
        for post, extraction in zip(chunk, extractor.extract([extraction_input(p) for p in chunk]), strict=True):
            batch = GraphBatch()
            add_post(batch, post, extraction, extractor.model_version, schema)
            out[post.id] = [PredictedFact(post.id, Fact(f.head_key, f.relation, f.tail_key), f.prov.confidence)
                            for f in batch.facts]
        bar.update(len(chunk))
    bar.close()
    return out


def _inputs(posts: Sequence[dict], gold_spans: dict[str, GoldPost] | None = None) -> list:
    """Extraction inputs as the worker builds them; with ``gold_spans`` the posts carry their gold
    entities (pairs of gold spans, for training the fact head on every labelled pair)."""
    from dataclasses import replace

    from extractors.base import EntityMention
    from pipeline.worker import extraction_input

    out = []
    for p in posts:
        item = extraction_input(as_post(p))
        if gold_spans is not None:
            ents = tuple(EntityMention(t, ty, s0, s1, 1.0) for t, ty, s0, s1 in gold_spans[p["id"]].mentions)
            item = replace(item, entities=ents)
        out.append(item)
    return out


def labelled_candidates(extractor, posts: Sequence[dict], gold: dict[str, GoldPost], gold_spans: bool = False,
                        desc: str = "candidates", progress: bool = True) -> list[tuple[str, object, str]]:
    """(post id, candidate, gold label) for every pair the production extractor considers on ``posts``
    (its own spans; or, with ``gold_spans``, the gold entities)."""
    from graph_store.records import canonical_key

    out = []
    bar = tqdm(total=len(posts), desc=desc, unit="post", disable=not progress)
    for i in range(0, len(posts), 32):
        chunk = posts[i:i + 32]
        for p, cands in zip(chunk, extractor.candidates(_inputs(chunk, gold if gold_spans else None))):
            g = gold[p["id"]]
            for c in cands:
                out.append((p["id"], c, g.label_of(canonical_key(c.head.type, c.head.text),
                                                   canonical_key(c.tail.type, c.tail.text))))
        bar.update(len(chunk))
    bar.close()
    return out


def relation_examples(extractor, posts: Sequence[dict], gold: dict[str, GoldPost], progress: bool = True) -> list:
    """MRE training examples the way the model is used: every ordered pair of the production extractor's
    own spans and of the gold spans of each post, labelled by the gold (``None`` for every pair that is
    no fact), as the worker's words of the normalised text."""
    from extractors.datasets import REExample
    from extractors.normalise import normalise_text
    from extractors.spans import word_span, words_with_offsets

    out, seen = [], set()
    for gold_spans in (False, True):
        for pid, c, label in labelled_candidates(extractor, posts, gold, gold_spans=gold_spans, progress=progress,
                                                 desc="pairs (gold spans)" if gold_spans else "pairs (own spans)"):
            words = words_with_offsets(normalise_text(gold[pid].text))
            head, tail = word_span(words, c.head.start, c.head.end), word_span(words, c.tail.start, c.tail.end)
            if head is None or tail is None or (pid, head, tail) in seen:
                continue
            seen.add((pid, head, tail))
            out.append(REExample(tuple(w for w, _, _ in words), head, tail, label))
    return out


def adapt_relation_model(cfg, work: str, mnre_sample: int = 3000, epochs: int = 2, seed: int = 42) -> tuple[str, dict]:
    """A new MRE version trained the way it is used: pairs of the labelled train posts
    (:func:`relation_examples`) with a sample of MNRE train, the epoch chosen on the pairs of the labelled
    val posts (never test)."""
    import random

    from extractors.kinds import MRE
    from extractors.realposts import adapt
    from extractors.run import read_examples, split_file
    from pipeline.runtime import make_extractor

    raw = cfg.model_copy(update={"extractor": cfg.extractor.model_copy(update={"calibration": "off"})})
    extractor = make_extractor(raw)
    train_gold = {g.id: g for g in load_gold(TRAIN_GOLD, TRAIN_POSTS)}
    val_gold = {g.id: g for g in load_gold(VAL_GOLD, VAL_POSTS)}
    train = relation_examples(extractor, [p for p in read_jsonl(TRAIN_POSTS) if p["id"] in train_gold], train_gold)
    val = relation_examples(extractor, [p for p in read_jsonl(VAL_POSTS) if p["id"] in val_gold], val_gold)
    mnre_path = split_file(DATA / MRE.dataset, "train")
    mnre = read_examples(MRE.name, mnre_path)
    train += random.Random(seed).sample(mnre, min(mnre_sample, len(mnre)))
    return adapt(MRE.name, train, val, [mnre_path, TRAIN_GOLD], work,
                 {"labels": str(TRAIN_GOLD), "val": str(VAL_GOLD), "mnre_sample": mnre_sample}, epochs=epochs,
                 seed=seed)


def correction_rows(extractor, posts: Path, labels: Path, progress: bool = True) -> list[tuple[str, object, str]]:
    """Training rows from the graph's corrections (``mkg facts export``): each corrected pair, both ways,
    labelled as the person decided (a rejected fact: no relation; a fixed one: its relation one way).
    Only the corrected pair of each post is labelled, so only its two entities are given: the other
    pairs of the post are not guessed to be ``None``."""
    gold = {g.id: g for g in load_gold(labels, posts)}
    return labelled_candidates(extractor, [p for p in read_jsonl(posts) if p["id"] in gold], gold, gold_spans=True,
                               desc="corrected pairs", progress=progress)


def fit_fact_model(cfg, out: Path, progress: bool = True, corrections: tuple[Path, Path] | None = None):
    """Fit the shipped fact model: the fact head on the labelled *train* posts (pairs of predicted and
    of gold spans) and, with ``corrections`` (the posts and labels files ``mkg facts export`` wrote),
    the pairs people corrected in the graph; then the calibration on the *dev* half's candidates read
    through that head (never on corrections: people correct what they happen to see, not a sample)."""
    import numpy as np

    from extractors.datasets import NO_RELATION
    from extractors.fact_calibration import FactModel, fit, fit_head
    from pipeline.runtime import make_extractor

    raw = cfg.model_copy(update={"extractor": cfg.extractor.model_copy(update={"calibration": "off"})})
    extractor = make_extractor(raw)
    extractor.keep_representations = True
    train_posts = read_jsonl(TRAIN_POSTS)
    train_gold = {g.id: g for g in load_gold(TRAIN_GOLD, TRAIN_POSTS)}
    train_posts = [p for p in train_posts if p["id"] in train_gold]
    rows = (labelled_candidates(extractor, train_posts, train_gold, desc="train pairs (predicted spans)",
                                progress=progress)
            + labelled_candidates(extractor, train_posts, train_gold, gold_spans=True,
                                  desc="train pairs (gold spans)", progress=progress))
    corrected = correction_rows(extractor, *corrections, progress=progress) if corrections else []
    rows += corrected
    labels = extractor._models.mre.labels
    head = fit_head(np.stack([c.representation for _, c, _ in rows]), [lab for _, _, lab in rows],
                    [pid for pid, _, _ in rows], labels, extractor.version)
    head.info.update({"trained_on": f"{TRAIN_GOLD.relative_to(HERE.parents[2])} ({len(train_posts)} posts)",
                      "script": "python -m benchmarks.end_to_end --fit"})
    if corrections:
        head.info["corrections"] = {"labels": str(corrections[1]), "pairs": len(corrected)}
    extractor._fact_head = head
    extractor.keep_representations = False
    dev = {g.id: g for g in load_gold(GOLD) if g.split == "dev"}
    dev_posts = [p for p in read_jsonl(POSTS) if p["id"] in dev]
    if VAL_GOLD.exists():  # labelled posts of the val splits: never trained on, so calibration data too
        dev |= {g.id: g for g in load_gold(VAL_GOLD, VAL_POSTS)}
        dev_posts += [p for p in read_jsonl(VAL_POSTS) if p["id"] in dev]
    cands = [(pid, c, lab) for pid, c, lab in labelled_candidates(extractor, dev_posts, dev, desc="dev candidates",
                                                                   progress=progress) if c.label != NO_RELATION]
    calibrator = fit([c.features for _, c, _ in cands], [c.label == lab for _, c, lab in cands],
                     [c.label for _, c, _ in cands], [pid for pid, _, _ in cands], extractor.version)
    calibrator.info.update({"fitted_on": f"{GOLD.relative_to(HERE.parents[2])} dev half and "
                                         f"{VAL_GOLD.relative_to(HERE.parents[2])} ({len(dev_posts)} posts)",
                            "script": "python -m benchmarks.end_to_end --fit"})
    out.mkdir(parents=True, exist_ok=True)
    head.save(out)
    calibrator.save(out / "calibration.json")
    log.info("fact model: head on %d train pairs; calibration on %d dev candidates (%d right), C=%s -> %s",
             len(rows), len(cands), sum(calibrator_row[2] for calibrator_row in calibrator.dev_rows),
             calibrator.info["C"], out)
    return FactModel(head, calibrator)


def candidate_calibration(cfg, posts: list[dict], gold: list[GoldPost]) -> dict:
    """Calibration over *every* candidate fact of the posts, not only those the target lets through:
    the calibrated confidence the extractor gives each entity pair's best relation, against whether
    that fact is gold. Where facts at confidence c are right a fraction c of the time, any target
    precision means what it says."""
    from extractors.datasets import NO_RELATION
    from pipeline.runtime import make_extractor

    extractor = make_extractor(cfg)
    decide = extractor._decider(extractor._models)
    by_id = {g.id: g for g in gold}
    pairs = [(decide.confidence(c)[1], c.label == label)
             for _, c, label in labelled_candidates(extractor, posts, by_id, progress=False)
             if c.label != NO_RELATION]
    return {"candidates": len(pairs), "right": sum(r for _, r in pairs), "ece": round(ece(pairs), 4),
            "reliability": reliability(pairs), "calibrated": decide.calibrator is not None}


def belief_stream(posts: list[dict], gold: list[GoldPost], cfg, copies: float = 0.5, seed: int = 7) -> dict:
    """Belief on a stream in which facts repeat: the test half's posts plus retweets of a random half
    of them (``RT @someone: <text>``, what a real stream is full of). A fact's belief is the noisy-or of
    its posts' confidences with each independence key once (``graph_store.records.evidence_key``, as the
    graph computes it); it is right when a post it came from states it. Reported: precision of the facts
    at belief >= 0.9 and at every belief, and the same if every copy counted as new evidence."""
    import random

    from graph_store.records import evidence_key

    rng = random.Random(seed)
    by_id = {g.id: g for g in gold}
    stream = list(posts) + [{**p, "id": p["id"] + "-rt", "text": f"RT @fan{i}: {p['text']}"}
                            for i, p in enumerate(rng.sample(posts, int(len(posts) * copies)))]
    predicted = extract_facts(stream, cfg, progress=False)
    facts: dict[Fact, dict] = {}
    for p in stream:
        source = p["id"].removesuffix("-rt")
        key = evidence_key(p["text"])
        for f in predicted.get(p["id"], []):
            entry = facts.setdefault(f.fact.canonical(), {"keys": {}, "posts": [], "right": False})
            entry["keys"][key] = max(entry["keys"].get(key, 0.0), f.confidence)
            entry["posts"].append(f.confidence)
            entry["right"] |= f.fact.canonical() in gold_facts(by_id[source])

    def belief(confs) -> float:
        miss = 1.0
        for c in confs:
            miss *= 1.0 - c
        return 1.0 - miss

    def at(threshold: float, naive: bool) -> dict:
        mine = [e for e in facts.values() if belief(e["posts"] if naive else e["keys"].values()) >= threshold]
        right = sum(e["right"] for e in mine)
        return {"facts": len(mine), "right": right, "precision": round(right / len(mine), 4) if mine else 0.0}

    return {"posts": len(stream), "retweets": len(stream) - len(posts), "facts": len(facts),
            "facts_from_several_posts": sum(len(e["posts"]) > 1 for e in facts.values()),
            "facts_from_several_independent_posts": sum(len(e["keys"]) > 1 for e in facts.values()),
            "belief>=0.9": at(0.9, False), "all": at(0.0, False),
            "belief>=0.9_if_copies_counted": at(0.9, True)}


def demo_measure() -> dict:
    """What ``mkg demo`` measures of its own graph (it prints it): run it and read the line back."""
    import re
    import subprocess
    import sys

    out = subprocess.run([sys.executable, "-m", "pipeline.cli", "demo"], capture_output=True, text=True,
                         check=True).stdout
    found = re.search(r"precision ([\d.]+) \((\d+) of (\d+) facts right\), recall ([\d.]+) \(of (\d+) facts", out)
    if found is None:
        raise RuntimeError(f"mkg demo printed no measurement:\n{out[-2000:]}")
    p, right, written, r, gold = found.groups()
    return {"precision": float(p), "recall": float(r), "right": int(right), "written": int(written),
            "gold": int(gold), "command": "mkg demo"}


def plot_reliability(curves: dict[str, list[dict]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 5))
    ax.plot([0, 1], [0, 1], color="grey", linestyle=":", label="perfect calibration")
    for name, bins in curves.items():
        ax.plot([b["confidence"] for b in bins], [b["accuracy"] for b in bins], marker="o", label=name)
    ax.set_xlabel("confidence of the written fact")
    ax.set_ylabel("fraction right (hand-labelled gold)")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.set_title("Facts from real posts: reliability (test half)")
    ax.legend(loc="upper left", fontsize=8)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def _git() -> dict:
    import subprocess

    def run(*cmd: str) -> str:
        try:
            return subprocess.run(cmd, capture_output=True, text=True, check=True).stdout.strip()
        except (OSError, subprocess.CalledProcessError):
            return ""

    return {"commit": run("git", "rev-parse", "HEAD"), "dirty": bool(run("git", "status", "--porcelain", "--",
                                                                        "*.py", "extractors", "pipeline"))}


def run_system(name: str, cfg, posts: list[dict], gold: list[GoldPost], splits: Sequence[str]) -> dict:
    t0 = time.perf_counter()
    predicted = extract_facts(posts, cfg)
    seconds = time.perf_counter() - t0
    out = {"seconds": round(seconds, 1)}
    for split in splits:
        mine = [g for g in gold if split == "all" or g.split == split]
        out[split] = metrics(score(mine, predicted))
        m = out[split]
        log.info("%s %s: P %.3f R %.3f F1 %.3f ECE %.3f (%d facts)", name, split, m["precision"], m["recall"],
                 m["f1"], m["ece"], m["predicted"])
    return out


def _versions(cfg) -> dict:
    from extractors.store import ModelStore

    store = ModelStore(cfg.extractor.models_dir, shipped=True)
    return {kind: store.current_version(kind) for kind in ("mner", "mre")}


def baseline_config(cfg):
    """Today's system before #31: no text normalisation, raw MRE softmax, threshold 0.5, no schema rules."""
    ex = cfg.extractor.model_copy(update={"relation_threshold": 0.5, "normalise_text": False, "calibration": "off",
                                          "schema_rules": False})
    return cfg.model_copy(update={"extractor": ex})


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--config", type=Path, default=None, help="mkg config (default: the embedded defaults)")
    ap.add_argument("--gold", type=Path, default=GOLD)
    ap.add_argument("--out", type=Path, default=RESULTS)
    ap.add_argument("--no-baseline", action="store_true", help="skip today's-system baseline")
    ap.add_argument("--baseline-only", action="store_true",
                    help="run only the baseline (the system before #31) and write it to --out; the main run "
                         "copies it from BASELINE when the baseline's models are no longer shipped")
    ap.add_argument("--no-sample", action="store_true", help="skip the bundled sample stream")
    ap.add_argument("--adapt-mre", metavar="WORK",
                    help="train a new MRE version the way it is used (labelled train posts' pairs + an MNRE "
                         "sample), save it in the model store WORK, print it, and stop")
    ap.add_argument("--mnre-sample", type=int, default=3000, help="--adapt-mre: MNRE train examples mixed in")
    ap.add_argument("--epochs", type=int, default=2, help="--adapt-mre: epochs (the best on the val posts is kept)")
    ap.add_argument("--fit", action="store_true",
                    help="fit the fact calibration on the dev half and write it to extractors/shipped/ first")
    ap.add_argument("--corrections", nargs=2, type=Path, metavar=("POSTS", "LABELS"),
                    help="--fit: also train the fact head on the graph's corrections (the two files "
                         "`mkg facts export` writes)")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    from pipeline.config import load_config

    cfg = load_config(args.config)
    if args.adapt_mre:
        version, m = adapt_relation_model(cfg, args.adapt_mre, mnre_sample=args.mnre_sample,
                                          epochs=args.epochs)
        print(json.dumps({"version": version, "val": m["val"], "best_epoch": m["best_epoch"],
                          "train_seconds": m["train_seconds"]}, default=float))
        return 0
    posts = read_jsonl(POSTS)
    gold = load_gold(args.gold)
    if args.fit:
        from extractors.fact_calibration import SHIPPED_FACTS

        fit_fact_model(cfg, SHIPPED_FACTS, corrections=tuple(args.corrections) if args.corrections else None)
    result = {"git": _git(), "posts": {"all": len(gold), "dev": sum(g.split == "dev" for g in gold),
                                       "test": sum(g.split == "test" for g in gold)},
              "settings": cfg.extractor.model_dump(mode="json"), "models": _versions(cfg), "metrics": {}}
    if args.baseline_only:
        base = run_system("baseline", baseline_config(cfg), posts, gold, ("dev", "test"))
        result.update({"system": "baseline: the shipped models before #31, raw MRE softmax at 0.5, no text "
                                 "normalisation, no schema rules", "models": _versions(cfg)})
        result["metrics"] = {"realposts_baseline": base["test"], "realposts_baseline_dev": base["dev"]}
        result["seconds"] = {"baseline": base["seconds"]}
        args.out.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
        print(f"wrote {args.out}")
        return 0
    ours = run_system("default", cfg, posts, gold, ("dev", "test"))
    result["metrics"]["realposts"] = ours["test"]
    result["metrics"]["realposts_dev"] = ours["dev"]
    result["seconds"] = {"default": ours["seconds"]}
    curves = {"default settings": ours["test"]["reliability"]}
    if not args.no_baseline and BASELINE.exists():  # measured at the commit before the models changed
        base = json.loads(BASELINE.read_text(encoding="utf-8"))
        result["metrics"]["realposts_baseline"] = base["metrics"]["realposts_baseline"]
        result["metrics"]["realposts_baseline_dev"] = base["metrics"]["realposts_baseline_dev"]
        result["baseline_from"] = {"file": str(BASELINE.relative_to(HERE.parents[2])), "git": base["git"],
                                   "models": base.get("models")}
        curves["before #31 (baseline)"] = base["metrics"]["realposts_baseline"]["reliability"]
    elif not args.no_baseline:
        base = run_system("baseline", baseline_config(cfg), posts, gold, ("dev", "test"))
        result["metrics"]["realposts_baseline"] = base["test"]
        result["metrics"]["realposts_baseline_dev"] = base["dev"]
        result["seconds"]["baseline"] = base["seconds"]
        curves["before #31 (baseline)"] = base["test"]["reliability"]
    test_posts = [p for p in posts if p["id"] in {g.id for g in gold if g.split == "test"}]
    result["metrics"]["realposts_candidates"] = candidate_calibration(cfg, test_posts,
                                                                      [g for g in gold if g.split == "test"])
    curves["every candidate fact (calibrated)"] = result["metrics"]["realposts_candidates"]["reliability"]
    result["metrics"]["belief"] = belief_stream(test_posts, [g for g in gold if g.split == "test"], cfg)
    if SECOND_PASS.exists():
        result["metrics"]["agreement"] = agreement(gold, load_gold(SECOND_PASS))
    if not args.no_sample:
        result["metrics"]["sample"] = demo_measure()
    plot = PLOTS / "end_to_end_reliability.png"
    plot_reliability(curves, plot)
    result["plot"] = str(plot.relative_to(Path(__file__).resolve().parents[1]))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
