"""Names and paper defaults of the continual-learning methods.

Kept free of heavy imports (no torch) so the command line can build its
help text quickly.
"""
from __future__ import annotations

from extractors.kinds import MNER, MRE

BASELINES = ("finetune", "ewc", "replay", "replay_ewc", "joint")
METHODS = (*BASELINES, "mspt")
DEFAULT_METHODS = ("finetune", "ewc", "replay", "replay_ewc", "joint", "mspt")
COMPONENTS = ("interaction", "distillation", "modulation", "memory", "relabel", "balance")
# MSPT's own additions (not the paper's), which a baseline can take: replay+relabel, replay_ewc+balance
ADDABLE = ("relabel", "balance")

# The paper's settings per task kind (encoder learning rate, modulation
# strength alpha, distillation weight lambda). Our text encoder is the small
# MiniLM, so lr and epochs are exposed rather than fixed.
PAPER_DEFAULTS = {MRE.name: {"lr": 1e-5, "alpha": 0.1, "lam": 1.0},
                  MNER.name: {"lr": 3e-5, "alpha": 0.3, "lam": 0.1}}
