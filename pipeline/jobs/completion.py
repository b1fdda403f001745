"""Link-prediction completion from the configuration (``mkg complete``, the link_prediction DAG)."""
from __future__ import annotations

import logging
from pathlib import Path

from extractors.encoders import SentenceEmbedder
from extractors.store import ModelStore
from graph_store.base import GraphStore
from graph_store.completion import job
from graph_store.completion.text import TextEmbedder
from graph_store.completion.versions import KIND, CompletionStore

from ..config import Config
from ..runtime import graph_for_job

log = logging.getLogger(__name__)

# entity texts are a name plus a little post context: 64 tokens hold them, and the cache is keyed by it
ENTITY_TEXT_MAX_LENGTH = 64


def entity_text_embedder(encoder: str, cache_dir: str | Path | None) -> TextEmbedder:
    """The cached sentence embedder that completion reads entity texts with (benchmarks use it too)."""
    return TextEmbedder(SentenceEmbedder(encoder, max_length=ENTITY_TEXT_MAX_LENGTH, batch_size=128), cache_dir)


def completion_store(models_dir: str | Path) -> CompletionStore:
    return CompletionStore(ModelStore(models_dir, kinds=(KIND,)))


def run_completion(config: Config, graph: GraphStore | None = None, *, threshold: float | None = None,
                   top_k: int | None = None, full_retrain: bool = False, progress: bool = False) -> job.CompletionReport:
    """One completion run over the configured graph (or ``graph``, left open)."""
    cc = config.completion
    with graph_for_job(config, graph) as g:
        return job.run_completion(g, cc, entity_text_embedder(cc.text_encoder, cc.cache_dir),
                                  completion_store(cc.models_dir), threshold=threshold, top_k=top_k,
                                  full_retrain=full_retrain, progress=progress)


def remove_inferred(config: Config, graph: GraphStore | None = None) -> int:
    """Delete every inferred edge of the configured graph; extracted ones stay."""
    with graph_for_job(config, graph) as g:
        removed = g.remove_inferred()
    log.info("inferred edges removed", extra={"removed": removed})
    return removed
