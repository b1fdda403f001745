"""Link prediction (issue #6): WN18RR filtered ranking, PyKEEN RotatE on the
same split, an inductive check (unseen entities), and held-out facts of a
graph built by the pipeline from MNRE posts.

    python -m benchmarks.link_prediction            # everything, ~30-40 min on 2 CPU cores
    python -m benchmarks.link_prediction --skip-pykeen --epochs 2   # a quick look

PyKEEN reads the same integer triples from the local files (no dataset
download); its RotatE cannot score entities absent from training, so it has
no inductive row. Every number in the result comes from this run.
"""
from __future__ import annotations

import argparse
import json
import logging
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from benchmarks.common import SHARED_DATA, write_result
from extractors.encoders import MINILM
from graph_store.completion.data import FilterIndex, TripleSplit, load_split
from graph_store.completion.evaluate import evaluate, random_expected_mrr
from graph_store.completion.model import CompletionModel, EntityFeatures, ModelConfig
from graph_store.completion.train import TrainSettings, train_model
from graph_store.completion.wordnet import resolve
from pipeline.jobs.completion import entity_text_embedder

log = logging.getLogger("benchmarks.link_prediction")
CACHE = Path("var/cache/completion")


def wn18rr_features(split: TripleSplit, cache: Path) -> tuple[EntityFeatures, dict, float]:
    t0 = time.monotonic()
    names = [(split.entities[h], split.relations[r], split.entities[t]) for h, r, t in split.all_triples().tolist()]
    res = resolve(split.entities, names)
    texts = [res.synsets[e].text() if e in res.synsets else e for e in split.entities]
    feats = EntityFeatures(entity_text_embedder(MINILM, cache).embed(texts, progress=True))
    return feats, res.stats(), time.monotonic() - t0


def run_ours(split: TripleSplit, feats: EntityFeatures, train: np.ndarray, test: np.ndarray, filt_all: FilterIndex,
             mcfg: ModelConfig, tcfg: TrainSettings, n_known: int | None = None) -> dict:
    n_known = split.n_entities if n_known is None else n_known
    model = CompletionModel(mcfg, n_known, split.n_relations)
    t0 = time.monotonic()
    res = train_model(model, feats, train, FilterIndex(train, split.n_entities, split.n_relations), tcfg, n_known)
    t1 = time.monotonic()
    metrics = evaluate(model.scorer(feats), test, filt_all, progress=True).as_dict()
    return {**metrics, "train_seconds": round(t1 - t0, 1), "eval_seconds": round(time.monotonic() - t1, 1),
            "epochs": tcfg.epochs, "final_loss": round(res.losses[-1], 4)}


def run_pykeen(split: TripleSplit, args) -> dict:
    from pykeen.pipeline import pipeline
    from pykeen.triples import TriplesFactory

    e2id = {e: i for i, e in enumerate(split.entities)}
    r2id = {r: i for i, r in enumerate(split.relations)}

    def tf(a: np.ndarray) -> TriplesFactory:
        return TriplesFactory(torch.from_numpy(a), e2id, r2id)

    t0 = time.monotonic()
    result = pipeline(
        training=tf(split.train), validation=tf(split.valid), testing=tf(split.test),
        model="RotatE", model_kwargs={"embedding_dim": args.pykeen_dim},
        loss="NSSALoss", loss_kwargs={"margin": 6.0, "adversarial_temperature": 0.5},
        optimizer="Adam", optimizer_kwargs={"lr": args.pykeen_lr},
        negative_sampler="basic", negative_sampler_kwargs={"num_negs_per_pos": args.pykeen_negatives},
        training_kwargs={"num_epochs": args.pykeen_epochs, "batch_size": 512, "use_tqdm_batch": False},
        evaluation_kwargs={"batch_size": 64}, random_seed=args.seed, device="cpu",
    )
    m = result.metric_results
    get = lambda k: float(m.get_metric(f"both.realistic.{k}"))  # noqa: E731
    return {"mrr": get("inverse_harmonic_mean_rank"), "hits_at_1": get("hits_at_1"), "hits_at_3": get("hits_at_3"),
            "hits_at_10": get("hits_at_10"), "mr": get("arithmetic_mean_rank"),
            "train_seconds": round(result.train_seconds, 1), "eval_seconds": round(result.evaluate_seconds, 1),
            "wall_seconds": round(time.monotonic() - t0, 1), "epochs": args.pykeen_epochs,
            "embedding_dim": args.pykeen_dim, "negatives": args.pykeen_negatives}


def inductive_split(split: TripleSplit, fraction: float, seed: int) -> tuple[TripleSplit, int, np.ndarray]:
    """Hold ``fraction`` of the entities out of training entirely; renumber so
    they come last (ids >= n_seen have no residual). Returns the renumbered
    split, n_seen and the test triples that involve a held-out entity."""
    rng = np.random.default_rng(seed)
    unseen = np.zeros(split.n_entities, dtype=bool)
    unseen[rng.choice(split.n_entities, int(split.n_entities * fraction), replace=False)] = True
    order = np.concatenate([np.flatnonzero(~unseen), np.flatnonzero(unseen)])
    new_id = np.empty_like(order)
    new_id[order] = np.arange(len(order))

    def remap(a: np.ndarray) -> np.ndarray:
        return np.stack([new_id[a[:, 0]], a[:, 1], new_id[a[:, 2]]], axis=1)

    n_seen = int((~unseen).sum())
    out = TripleSplit([split.entities[i] for i in order], split.relations,
                      remap(split.train), remap(split.valid), remap(split.test))
    keep = (out.train[:, 0] < n_seen) & (out.train[:, 2] < n_seen)
    out.train = out.train[keep]
    test_unseen = out.test[(out.test[:, 0] >= n_seen) | (out.test[:, 2] >= n_seen)]
    return out, n_seen, test_unseen


def mnre_graph(workdir: Path):
    """Gold MNRE posts -> pipeline.to_graph -> embedded graph -> snapshot."""
    from graph_store.schema import LabelSchema
    from graph_store.completion.snapshot import take_snapshot
    from graph_store.embedded import EmbeddedGraphStore
    from graph_store.records import GraphBatch
    from pipeline.gold import GOLD_VERSION, gold_extraction, mnre_annotated_posts
    from pipeline.post import parse_post
    from pipeline.to_graph import add_post

    posts = []
    for split in ("train", "val", "test"):
        posts += mnre_annotated_posts(SHARED_DATA / "mnre" / f"mnre_{split}.txt")
    graph = EmbeddedGraphStore(workdir / "graph")
    try:
        graph.ensure_schema()
        schema = LabelSchema()
        for i in range(0, len(posts), 256):
            batch = GraphBatch()
            for wire in posts[i:i + 256]:
                post = parse_post(json.dumps(wire))
                add_post(batch, post, gold_extraction(post), GOLD_VERSION, schema)
            graph.write(batch)
        return take_snapshot(graph), len(posts)
    finally:
        graph.close()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", default=str(SHARED_DATA / "wn18rr"))
    p.add_argument("--epochs", type=int, default=20)
    p.add_argument("--inductive-epochs", type=int, default=10)
    p.add_argument("--mnre-epochs", type=int, default=40)
    p.add_argument("--rank", type=int, default=200)
    p.add_argument("--batch-size", type=int, default=1024)
    p.add_argument("--negatives", type=int, default=1024)
    p.add_argument("--lr", type=float, default=2e-3)
    p.add_argument("--pykeen-epochs", type=int, default=100)
    p.add_argument("--pykeen-dim", type=int, default=200)
    p.add_argument("--pykeen-negatives", type=int, default=64)
    p.add_argument("--pykeen-lr", type=float, default=1e-3)
    p.add_argument("--skip-pykeen", action="store_true")
    p.add_argument("--skip-inductive", action="store_true")
    p.add_argument("--skip-mnre", action="store_true")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=2)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    logging.basicConfig(level=logging.WARNING)
    start = time.monotonic()

    split = load_split(args.data)
    feats, wn_stats, encode_s = wn18rr_features(split, CACHE)
    mcfg = ModelConfig(text_dim=feats.text.shape[1], rank=args.rank)
    tcfg = TrainSettings(epochs=args.epochs, batch_size=args.batch_size, negatives=args.negatives, lr=args.lr,
                       seed=args.seed)
    filt = FilterIndex(split.all_triples(), split.n_entities, split.n_relations)
    metrics: dict = {"wn18rr": {"entities": split.n_entities, "train": len(split.train), "test": len(split.test),
                                "wordnet_ids": wn_stats, "encode_seconds": round(encode_s, 1),
                                "random_expected_mrr": random_expected_mrr(split.n_entities)}}
    metrics["wn18rr"]["ours"] = run_ours(split, feats, split.train, split.test, filt, mcfg, tcfg)
    print(json.dumps(metrics["wn18rr"]["ours"]), flush=True)
    if not args.skip_pykeen:
        metrics["wn18rr"]["pykeen_rotate"] = run_pykeen(split, args)
        print(json.dumps(metrics["wn18rr"]["pykeen_rotate"]), flush=True)

    if not args.skip_inductive:
        ind, n_seen, test_unseen = inductive_split(split, 0.1, args.seed)
        perm = {e: i for i, e in enumerate(split.entities)}
        ind_feats = EntityFeatures(feats.text[torch.tensor([perm[e] for e in ind.entities])])
        ind_filt = FilterIndex(ind.all_triples(), ind.n_entities, ind.n_relations)
        icfg = TrainSettings(**{**tcfg.as_dict(), "epochs": args.inductive_epochs, "progress": True})
        metrics["inductive"] = {
            "held_out_entities": ind.n_entities - n_seen, "train": len(ind.train), "test_with_unseen": len(test_unseen),
            "ours": run_ours(ind, ind_feats, ind.train, test_unseen, ind_filt, mcfg, icfg, n_known=n_seen),
            "pykeen_rotate": "not applicable: a transductive model has no embedding for an entity absent from training",
        }
        print(json.dumps(metrics["inductive"]), flush=True)

    if not args.skip_mnre:
        with tempfile.TemporaryDirectory(prefix="mkg-lp-") as tmp:
            snap, n_posts = mnre_graph(Path(tmp))
        rng = np.random.default_rng(args.seed)
        order = rng.permutation(len(snap.triples))
        n_test = len(order) // 10
        test, train = snap.triples[order[:n_test]], snap.triples[order[n_test:]]
        g_feats = EntityFeatures(entity_text_embedder(MINILM, CACHE).embed([e.text() for e in snap.entities], progress=True))
        g_split = TripleSplit(snap.entity_keys, snap.relations, train, np.zeros((0, 3), np.int64), test)
        g_filt = FilterIndex(snap.triples, len(snap.entities), len(snap.relations))
        gcfg = TrainSettings(**{**tcfg.as_dict(), "epochs": args.mnre_epochs, "batch_size": 256, "negatives": 512})
        metrics["mnre_graph"] = {
            "posts": n_posts, "entities": len(snap.entities), "relations": len(snap.relations),
            "facts": len(snap.triples), "held_out": n_test, "random_expected_mrr": random_expected_mrr(len(snap.entities)),
            "ours": run_ours(g_split, g_feats, train, test, g_filt, ModelConfig(text_dim=mcfg.text_dim, rank=100), gcfg),
        }
        print(json.dumps(metrics["mnre_graph"]), flush=True)

    metrics["wall_seconds"] = round(time.monotonic() - start, 1)
    write_result("link_prediction", metrics, notes=(
        "Filtered ranking over all entities, both directions, ties count half (PyKEEN: 'realistic'). "
        "Ours: frozen MiniLM over WordNet lemmas+definition (WN18RR) or name+type+post text (MNRE), learned "
        "projection + per-entity residual + ComplEx operators, CE over filtered sampled negatives. "
        "Entity-text encodings are cached in var/cache/completion (encode_seconds shows a cold or warm cache)."))


if __name__ == "__main__":
    main()
