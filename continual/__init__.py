"""Continual learning of the extractors (MSPT and baselines, class-incremental).

- :mod:`continual.streams`: the IMRE / IMNER task streams (data and new classes per task);
- :mod:`continual.memory`: rehearsal memory (random or prototype exemplars), JSON;
- :mod:`continual.modulation`: gradient modulation between the modalities;
- :mod:`continual.distillation`: attention distillation from the previous model (the paper's "asymmetric"
  loss, which on softmax attention is half the L1 distance of the pooled maps: symmetric);
- :mod:`continual.ewc`: elastic weight consolidation (baseline);
- :mod:`continual.methods`: finetune, ewc, replay, replay_ewc, joint, mspt and its ablations;
- :mod:`continual.benchmark` / :mod:`continual.report`: the research harness and its output files;
- :mod:`continual.update`: the production update (a task -> a gated, atomically published model version);
  it shares the learner and the scores with the harness, not the harness itself;
- :mod:`continual.cli`: ``mkg benchmark imre|imner``.
"""
