"""Link-prediction completion: facts the posts imply but never state.

A text-aware entity encoder (frozen MiniLM over the entity's name and context,
a learned projection, an optional per-entity residual that is zero for unseen
entities, an optional image term) feeds a ComplEx relation operator, so the
model scores triples of entities it was never trained on and a graph that
grows every hour needs no retraining per new entity. Modules, one job each:
``data`` (triples, vocabularies, filter index), ``snapshot`` (graph -> triples),
``text`` (cached sentence embeddings; the encoder is passed in), ``wordnet``
(WN18RR ids -> names and definitions), ``model``, ``train``, ``evaluate``
(filtered ranking), ``versions`` (model store), ``predict`` and ``job`` (one
run: snapshot -> train -> predict -> ``GraphStore.write_inferred``). The
configuration and the opened graph, encoder and store come from the wiring,
:mod:`pipeline.jobs.completion`.
"""
