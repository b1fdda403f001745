"""Entity resolution from the configuration (``mkg resolve`` / ``mkg unmerge``, the resolve_entities DAG)."""
from __future__ import annotations

from extractors.encoders import SentenceEmbedder
from graph_store.base import GraphStore
from graph_store.resolution import links
from graph_store.resolution.decision import Resolver
from graph_store.resolution.job import ResolutionReport, run_resolution
from mkg_common.clock import utc_iso

from ..config import Config
from ..runtime import graph_for_job

# names and a couple of post texts: 128 tokens hold them
RESOLUTION_TEXT_MAX_LENGTH = 128


def resolver(config: Config) -> Resolver:
    rc = config.resolution
    return Resolver(SentenceEmbedder(rc.text_encoder, max_length=RESOLUTION_TEXT_MAX_LENGTH, batch_size=128),
                    rc.resolver_config())


def resolve(config: Config, graph: GraphStore | None = None, full: bool = False) -> ResolutionReport:
    """One resolution run over the configured graph (or ``graph``, left open)."""
    with graph_for_job(config, graph) as g:
        return run_resolution(g, resolver(config), config.resolution.settings(full))


def unmerge(config: Config, key: str, reason: str, graph: GraphStore | None = None) -> dict:
    """Take one entity out of its cluster, for good (its links become NOT_SAME_AS)."""
    with graph_for_job(config, graph) as g:
        return links.unmerge(g, key, reason, utc_iso())
