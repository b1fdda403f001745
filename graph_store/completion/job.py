"""The scheduled completion run: snapshot -> train or update -> fit the re-ranking -> predict -> write back.

One call of :func:`run_completion` is one run. Each run saves a new model
version and promotes it; the next run warm-starts from it (fewer epochs),
because the graph only grew. Predictions replace the previous run's inferred
edges, so re-runs refresh rather than duplicate them. The re-ranking by graph
distance (:mod:`.rerank`) is refitted every run on the held-out facts: its
weights belong to the model they re-rank and cost seconds.

Everything it works on is passed in: the open graph, the settings (the
``completion:`` section of the config), the text embedder and the model store.
:mod:`pipeline.jobs.completion` builds them from the configuration
(``mkg complete``, the ``link_prediction`` DAG).
"""
from __future__ import annotations

import logging
from dataclasses import asdict, dataclass, field

import numpy as np
import torch

from mkg_common.clock import utc_iso

from ..base import GraphStore
from ..records import InferredFact
from .calibrate import MIN_WRITTEN, held_out_curve
from .data import FilterIndex
from .evaluate import evaluate
from .model import CompletionModel, EntityFeatures, ModelConfig
from .predict import predict
from .rerank import Neighbourhood, Reranker, RerankSettings, fit_reranker
from .snapshot import take_snapshot
from .text import TextEmbedder
from .train import TrainSettings, train_model
from .versions import KIND, CompletionStore, warm_start

log = logging.getLogger(__name__)


@dataclass
class CompletionReport:
    status: str  # "completed" or "skipped: <why>"
    started_at: str
    finished_at: str = ""
    version: str | None = None
    parent: str | None = None
    warm_start: bool = False
    entities: int = 0
    relations: int = 0
    facts: int = 0
    train_facts: int = 0
    valid_facts: int = 0
    epochs: int = 0
    train_seconds: float = 0.0
    final_loss: float | None = None
    valid_metrics: dict = field(default_factory=dict)
    queries: int = 0
    written: int = 0
    existing_in_top_k: int = 0
    below_threshold: int = 0
    inferred_edges: int = 0
    threshold: float = 0.0
    threshold_source: str = "configured"  # or "calibrated" (completion.target_precision on held-out facts)
    held_out_at_threshold: dict = field(default_factory=dict)  # precision / recall of writes on held-out facts
    top_k: int = 0
    # "fitted" with its weights' fit and the held-out metrics re-ranked, or "skipped: <why>"
    rerank: dict = field(default_factory=dict)

    def as_dict(self) -> dict:
        return asdict(self)


def _now() -> str:
    return utc_iso(timespec="seconds")


def run_completion(graph: GraphStore, cc, texts: TextEmbedder, store: CompletionStore, *,
                   threshold: float | None = None, top_k: int | None = None, full_retrain: bool = False,
                   progress: bool = False) -> CompletionReport:
    """One completion run over ``graph`` (left open).

    ``cc``: the completion settings (``pipeline.config.CompletionConfig``, read
    by attribute); ``texts``: entity text -> vector; ``store``: where versions go.
    An explicit ``threshold`` wins over ``cc.target_precision``; otherwise, with
    a target set, the threshold is the lowest that reaches it on the held-out facts.
    """
    calibrate = threshold is None and getattr(cc, "target_precision", None) is not None
    threshold = cc.threshold if threshold is None else threshold
    top_k = cc.top_k if top_k is None else top_k
    torch.set_num_threads(min(2, torch.get_num_threads()))
    report = CompletionReport(status="completed", started_at=_now(), threshold=threshold, top_k=top_k)
    try:
        snap = take_snapshot(graph, graph.schema, cc.context_posts, set(cc.relations) if cc.relations else None)
        report.entities, report.relations, report.facts = len(snap.entities), len(snap.relations), len(snap.triples)
        if len(snap.triples) < cc.min_facts:
            report.status = f"skipped: {len(snap.triples)} extracted facts, fewer than min_facts={cc.min_facts}"
            log.warning("completion skipped", extra={"reason": report.status})
            return report

        feats = EntityFeatures(texts.embed([e.text() for e in snap.entities], progress=progress))
        rng = np.random.default_rng(cc.seed)
        order = rng.permutation(len(snap.triples))
        n_valid = int(len(order) * cc.validation_fraction) if len(order) >= 20 else 0
        valid, train = snap.triples[order[:n_valid]], snap.triples[order[n_valid:]]
        report.train_facts, report.valid_facts = len(train), len(valid)

        model_cfg = ModelConfig(text_dim=feats.text.shape[1], rank=cc.rank)
        parent = store.current_version()
        model: CompletionModel | None = None
        if parent and not full_retrain:
            prev, prev_cfg, vocab = store.load_model(parent)
            if prev.cfg == model_cfg and prev_cfg["train_config"].get("text_encoder") == cc.text_encoder:
                model = warm_start(prev, vocab, snap.entity_keys, snap.relations)
                report.warm_start, report.parent = True, parent
            else:
                log.info("current completion model does not fit the configuration; training from scratch",
                         extra={"version": parent})
        if model is None:
            model = CompletionModel(model_cfg, len(snap.entities), len(snap.relations))
        epochs = cc.update_epochs if report.warm_start else cc.epochs
        tcfg = TrainSettings(epochs=epochs, batch_size=cc.batch_size, negatives=cc.negatives, lr=cc.lr,
                             seed=cc.seed, progress=progress)
        result = train_model(model, feats, train, FilterIndex(train, len(snap.entities), len(snap.relations)), tcfg)
        report.epochs, report.train_seconds, report.final_loss = epochs, round(result.seconds, 2), result.losses[-1]
        reranker: Reranker | None = None
        if len(valid):
            filt = FilterIndex(snap.triples, len(snap.entities), len(snap.relations))
            report.valid_metrics = evaluate(model.scorer(feats), valid, filt).as_dict()
            reranker, report.rerank = _fit_reranker(model, feats, train, valid, filt, cc, progress)
            curve = held_out_curve(model, feats, snap, train, valid, top_k,
                                   ann_min_candidates=cc.ann_min_candidates, shortlist=cc.shortlist,
                                   rerank=None if reranker is None else (reranker, Neighbourhood(train, len(snap.entities))))
            if calibrate:
                chosen = curve.lowest_threshold_for(cc.target_precision, MIN_WRITTEN)
                if chosen is None:
                    log.warning("no threshold reaches the target precision on the held-out facts; keeping the "
                                "configured one", extra={"target_precision": cc.target_precision,
                                                         "threshold": threshold, "held_out": len(valid)})
                else:
                    threshold, report.threshold, report.threshold_source = chosen, chosen, "calibrated"
            report.held_out_at_threshold = curve.at(threshold).as_dict()

        version = store.save_model(
            model, entities=snap.entity_keys, relations=snap.relations, metrics={"valid": report.valid_metrics},
            train_config={**tcfg.as_dict(), "text_encoder": cc.text_encoder, "warm_start": report.warm_start},
            fingerprint=snap.fingerprint(), parent=parent, reranker=reranker)
        report.version = version

        pred = predict(model, feats, snap, top_k=top_k, threshold=threshold, progress=progress,
                       ann_min_candidates=cc.ann_min_candidates, shortlist=cc.shortlist,
                       rerank=None if reranker is None else (reranker, Neighbourhood(snap.triples, len(snap.entities))))
        report.queries, report.existing_in_top_k, report.below_threshold = (
            pred.queries, pred.existing_in_top_k, pred.below_threshold)
        now = _now()
        facts = [InferredFact(p.head, p.relation, p.tail, p.score, f"{KIND}@{version}", now) for p in pred.predictions]
        graph.write_inferred(facts, run_id=version)
        report.written = len(facts)
        report.inferred_edges = graph.count_inferred()
        return report
    finally:
        report.finished_at = _now()
        log.info("completion run", extra=report.as_dict())


def _fit_reranker(model: CompletionModel, feats: EntityFeatures, train: np.ndarray,
                  valid: np.ndarray, filt: FilterIndex, cc, progress: bool) -> tuple[Reranker | None, dict]:
    """Graph-distance re-ranking fitted on the held-out facts (distances over the training facts);
    (None, why) when switched off or when too few facts are held out to fit it."""
    if not cc.rerank:
        return None, {"status": "skipped: completion.rerank is off"}
    if len(valid) < cc.rerank_min_facts:
        return None, {"status": f"skipped: {len(valid)} held-out facts, fewer than rerank_min_facts="
                                f"{cc.rerank_min_facts}"}
    around = Neighbourhood(train, len(feats))
    fit = fit_reranker(model.scorer(feats), around, valid, filt, RerankSettings(seed=cc.seed), progress=progress)
    # in-sample for the reranker's few weights (5 per relation and direction), held out for the model
    reranked = evaluate(fit.reranker.scorer(model.scorer(feats), around), valid, filt).as_dict()
    return fit.reranker, {"status": "fitted", "seconds": round(fit.seconds, 2), "final_loss": round(fit.losses[-1], 4),
                          "valid_metrics": reranked}
