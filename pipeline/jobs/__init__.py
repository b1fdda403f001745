"""Wiring modules, one per job: configuration in, opened resources, the job's call.

The jobs themselves (``graph_store.completion.job``, ``continual.novelty``,
``continual.candidates``) receive the graph, the stores and the embedders as
arguments and never read the configuration or open anything; the functions
here do that for the CLI (``pipeline.cli``) and the DAGs (``dags/``). They sit
on top of the layer order (docs/ARCHITECTURE.md), so they may import anything.
"""
