"""Entity resolution: which entity nodes name one real-world thing.

Node identity is ``TYPE:normalised name`` (graph_store.records), so "Trump",
"Donald Trump" and "@realDonaldTrump" arrive as three nodes. This package
decides, for a pair of names with their types and contexts, whether they are
one entity, with a confidence and the evidence (:mod:`.decision`), from
surface forms normalised the way a social stream needs (:mod:`.names`).
"""
