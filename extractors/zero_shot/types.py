"""Zero-shot entity types: a span the tagger could not type, scored against a new type's phrase.

A span is a sample whose head and tail are the span itself, so the relation
scorer's [sentence ; E1 ; E2] tokens become [sentence ; E1 ; E1]: the paper's
[CLS ; E1] for types, with the encoder and scorer the relations use. Which
scoring works for types, and at which threshold, is measured on Twitter-2017
(``python -m benchmarks.zero_shot_types``; BENCHMARKS.md).
"""
from __future__ import annotations

# One-line descriptions of the base entity types (the benchmark's phrases; Twitter-2017 ships none).
TYPE_DESCRIPTIONS: dict[str, str] = {
    "PER": "a person, a real or fictional human being, called by name",
    "LOC": "a location, a place such as a country, city, region or landmark",
    "ORG": "an organization such as a company, team, band, party, agency or institution",
    "MISC": "a named thing that is not a person, place or organization: an event, product, work, title or group",
}


# The labeller's default for new types: chosen on Twitter-2017 validation (best mean F1 of the
# leave-one-type-out rounds, benchmarks/results/zero_shot_types.json); zero_shot.type_threshold overrides it.
DEFAULT_TYPE_THRESHOLD = 0.19
