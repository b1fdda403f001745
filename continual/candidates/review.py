"""A person's decision on a candidate: name it (its members become labelled examples) or reject it."""
from __future__ import annotations

import logging
from datetime import datetime

from extractors.kinds import MNER, MRE
from extractors.schema import NO_RELATION, implied_types, relation_type_of
from graph_store.schema import is_identifier
from graph_store.base import GraphStore
from mkg_common.clock import utc_iso

from ..labelled import LabelledExample, LabelledStore, split_of
from .graph import CONFIRMED, REJECTED, RELATION, StoredCandidate, find_candidate, set_status

log = logging.getLogger(__name__)


class CandidateError(ValueError):
    """A confirmation or rejection that cannot be applied (unknown id, bad name, wrong status)."""


def _find(graph: GraphStore, candidate_id: str) -> StoredCandidate:
    cand = find_candidate(graph, candidate_id)
    if cand is None:
        raise CandidateError(f"no candidate with id {candidate_id!r}")
    return cand


def validate_name(kind: str, name: str) -> str:
    """A relation name must map to a safe relationship type; an entity type must be one."""
    if kind == RELATION:
        if name == NO_RELATION or not is_identifier(relation_type_of(name)):
            raise CandidateError(f"relation name {name!r} does not map to an identifier [A-Z][A-Z0-9_]* "
                                 "(use e.g. /per/org/founded_by)")
    elif not is_identifier(name):
        raise CandidateError(f"entity type {name!r} is not an identifier [A-Z][A-Z0-9_]* (e.g. PRODUCT)")
    return name


def examples_of(cand: StoredCandidate, name: str, val_fraction: float) -> list[LabelledExample]:
    """The candidate's members as labelled examples of ``name`` (MRE pairs or MNER sentences)."""
    out = []
    for m in cand.members:
        split = split_of(m["post_id"], val_fraction)
        if cand.kind == RELATION:
            head_type, tail_type = implied_types(name) or (m["head_type"], m["tail_type"])
            out.append(LabelledExample(MRE.name, f"{m['post_id']}|{cand.id}|{m['head'][0]}-{m['head'][1]}|"
                                              f"{m['tail'][0]}-{m['tail'][1]}", m["post_id"], m["post_time"], split,
                                       {"tokens": m["tokens"], "head": m["head"], "tail": m["tail"], "relation": name,
                                        "head_type": head_type, "tail_type": tail_type, "image_id": ""}))
        else:
            tags = ["O"] * len(m["tokens"])
            start, end = m["head"]
            spans = [(s, e, t) for s, e, t in m["entities"] if e <= start or s >= end] + [(start, end, name)]
            for s, e, t in sorted(spans):  # the post's other entities keep their predicted types
                tags[s:e] = [f"B-{t}"] + [f"I-{t}"] * (e - s - 1)
            out.append(LabelledExample(MNER.name, f"{m['post_id']}|{cand.id}|{start}-{end}", m["post_id"], m["post_time"],
                                       split, {"tokens": m["tokens"], "tags": tags, "image_id": ""}))
    return out


def confirm(graph: GraphStore, labelled: LabelledStore, candidate_id: str, name: str,
            now: datetime | None = None, description: str | None = None, by: str | None = None,
            decision: str = "confirmed") -> dict:
    """Name a candidate: its members become labelled examples of ``name``, then it is marked confirmed.

    ``description`` (one line, optional) is stored with it: workers label a
    confirmed relation zero-shot from its name and description until a
    continual update learns it (``extractors.zero_shot``).

    Examples are stored before the status changes, so an interrupted
    confirmation can simply be repeated (the store deduplicates by key).
    ``by`` (who decided) and the time are recorded on the candidate with the
    ``decision`` (``confirmed``, or ``merged`` from :func:`merge`).
    """
    cand = _find(graph, candidate_id)
    validate_name(cand.kind, name)
    if cand.status == CONFIRMED and cand.name != name:
        raise CandidateError(f"{candidate_id} is already confirmed as {cand.name!r}")
    if cand.status == REJECTED:
        raise CandidateError(f"{candidate_id} was rejected")
    examples = examples_of(cand, name, labelled.val_fraction)
    added = labelled.add(examples)
    when = utc_iso(now)
    values = {"status": CONFIRMED, "name": name, "confirmed_at": when, "examples": len(examples),
              "decision": decision, "decided_by": by or "unknown", "decided_at": when}
    if decision == "merged":
        values["merged_into"] = name
    if description is not None:
        values["description"] = " ".join(description.split())[:500]
    set_status(graph, cand, values)
    log.info("candidate confirmed", extra={"candidate": cand.id, "kind": cand.kind, "class_name": name,
                                           "examples": len(examples), "new_examples": added})
    return {"id": cand.id, "kind": cand.kind, "name": name, "status": CONFIRMED, "examples": len(examples),
            "new_examples": added}


def known_class_names(graph: GraphStore, labelled: LabelledStore | None, kind: str) -> set[str]:
    """Classes a candidate of ``kind`` may be merged into: those with labelled examples and those
    confirmed before (a confirmed class is known before any model learns it)."""
    from .graph import confirmed_names

    names = {name for name, _ in confirmed_names(graph, kind)}
    if labelled is not None:
        names |= set(labelled.class_counts(MRE.name if kind == RELATION else MNER.name))
    return names - {NO_RELATION}


def merge(graph: GraphStore, labelled: LabelledStore, candidate_id: str, into: str, known: set[str],
          now: datetime | None = None, by: str | None = None) -> dict:
    """The candidate is an existing class after all: its members become examples of ``into``.

    ``known``: the class names of the candidate's kind that exist; merging into
    anything else would create a class, which is :func:`confirm`'s job."""
    if into not in known:
        raise CandidateError(f"{into!r} is not a known class; known: {', '.join(sorted(known)) or 'none'}")
    return {**confirm(graph, labelled, candidate_id, into, now=now, by=by, decision="merged"), "merged_into": into}


def reject(graph: GraphStore, candidate_id: str, now: datetime | None = None, by: str | None = None) -> dict:
    """Mark a candidate rejected; it stays in the graph so the same pattern is not proposed again."""
    cand = _find(graph, candidate_id)
    if cand.status == CONFIRMED:
        raise CandidateError(f"{candidate_id} is already confirmed as {cand.name!r}")
    when = utc_iso(now)
    set_status(graph, cand, {"status": REJECTED, "rejected_at": when, "decision": "rejected",
                             "decided_by": by or "unknown", "decided_at": when})
    log.info("candidate rejected", extra={"candidate": cand.id, "kind": cand.kind})
    return {"id": cand.id, "kind": cand.kind, "status": REJECTED}
