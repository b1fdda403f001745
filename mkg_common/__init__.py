"""Helpers every layer may import (the bottom of the layer order, see docs/ARCHITECTURE.md).

Kept tiny on purpose: only what extractors/, graph_store/, pipeline/ and
continual/ would otherwise each write again. It imports none of them.
"""
