"""Zero-shot labelling of relations the supervised model has never been trained on.

Between "the stream shows a new relation" (``mkg candidates confirm``) and "an
MSPT update for it is promoted" lie hours to days with nothing in the graph.
A zero-shot scorer fills that gap: it scores an entity pair against a class
it only knows by name (and an optional one-line description), in the manner
of MG-VMoE (Zhou et al., WWW 2025).

``classes``  what a class is to the scorer: a phrase built from its name
``features`` frozen-encoder features of samples and classes
``scorer``   the trainable part: projections, the variational mixture of experts, losses
``training`` fitting on seen classes, model selection on validation classes, evaluation
``baselines`` the frozen-prototype ("Proto") and ZS-BERT-style comparisons
"""
