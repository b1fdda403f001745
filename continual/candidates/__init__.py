"""Candidate relations and entity types, discovered without labels.

The unsupervised half of novelty detection. Workers record what the models
were unsure about (``pipeline.observations``): entity pairs predicted
``None`` or below the relation threshold, and spans the tagger could not
type confidently. A recurring pattern among them is a relation or type the
schema lacks. Discovery embeds a time window of observations with the
offline MiniLM, clusters them (average linkage, cosine), and keeps clusters
that are

- **large**: at least ``min_size`` observations,
- **dense**: members' mean cosine similarity to the centroid >= ``min_density``,
- **new**: the centroid is less similar than ``max_known_similarity`` to the
  prototype (mean embedding) of every class the labelled store already has.

Each survivor becomes a ``:CandidateRelation`` (pairs) or ``:CandidateType``
(spans) node with a few example posts, status ``pending``, for a person to
name. A cluster whose centroid is within ``same_candidate_similarity`` of a
stored candidate (any status) updates that node instead, so hourly re-runs
over overlapping windows never duplicate, and a rejected pattern is not
proposed again. Confirming turns a candidate's members into labelled
examples, which the supervised signal (``continual.novelty``) then schedules
for training like any labelled class.

Modules, one job each:

- :mod:`.params`: the thresholds (``DiscoveryParams``; the ``novelty:`` config section extends it);
- :mod:`.texts`: observation -> text that is embedded (names masked for pairs);
- :mod:`.clusters`: average-linkage clusters and the large/dense/new decision;
- :mod:`.prototypes`: the mean embedding of each known class;
- :mod:`.graph`: candidate nodes in the graph (read, write, list, status);
- :mod:`.discovery`: one discovery run over a window (``run_discovery``, ``discover``);
- :mod:`.review`: a person's decision (``confirm``, ``reject``).

The configuration and the graph connection come from the wiring
(:mod:`pipeline.jobs.novelty`); nothing here reads the configuration.
"""
