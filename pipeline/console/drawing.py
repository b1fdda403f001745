"""An entity's neighbourhood as SVG coordinates, computed on the server.

The page draws it with plain SVG and links, no script: a radial layout (the entity
in the middle, its neighbours on a circle, parallel edges fanned out) is all a
one-hop view needs, and a page without JavaScript cannot run a post's script.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

from .queries import Edge, EntityView

WIDTH, HEIGHT = 760, 520
RADIUS = 200
MAX_NEIGHBOURS = 24


@dataclass(frozen=True)
class NodeDraw:
    key: str
    label: str
    type: str
    x: float
    y: float
    centre: bool = False


@dataclass(frozen=True)
class EdgeDraw:
    edge: Edge
    x1: float
    y1: float
    x2: float
    y2: float
    cx: float  # control point of the quadratic curve (on the line for the first edge to a neighbour)
    cy: float
    lx: float  # where the relation's label goes
    ly: float
    anchor: str = "middle"  # SVG text-anchor: a bent edge's label starts (or ends) beside its curve

    @property
    def path(self) -> str:
        return f"M {self.x1:.1f} {self.y1:.1f} Q {self.cx:.1f} {self.cy:.1f} {self.x2:.1f} {self.y2:.1f}"


def _short(text: str, n: int = 22) -> str:
    return text if len(text) <= n else text[: n - 1] + "…"


def neighbourhood(view: EntityView) -> tuple[list[NodeDraw], list[EdgeDraw], int]:
    """Nodes and edges to draw, and how many neighbours were left out (beyond MAX_NEIGHBOURS)."""
    cx, cy = WIDTH / 2, HEIGHT / 2
    others: list[str] = []
    names: dict[str, tuple[str, str]] = {}
    for e in view.edges:
        if e.other_key not in names:
            names[e.other_key] = (e.other_name, e.other_type)
            others.append(e.other_key)
    shown, left_out = others[:MAX_NEIGHBOURS], max(0, len(others) - MAX_NEIGHBOURS)
    nodes = [NodeDraw(view.key, _short(view.name), view.type, cx, cy, centre=True)]
    where: dict[str, tuple[float, float]] = {}
    for i, key in enumerate(shown):
        angle = 2 * math.pi * i / max(1, len(shown)) - math.pi / 2
        x, y = cx + RADIUS * math.cos(angle), cy + RADIUS * 0.82 * math.sin(angle)
        where[key] = (x, y)
        nodes.append(NodeDraw(key, _short(names[key][0]), names[key][1], x, y))
    edges, seen = [], {}
    for e in view.edges:
        if e.other_key not in where:
            continue
        ox, oy = where[e.other_key]
        n = seen.get(e.other_key, 0)
        seen[e.other_key] = n + 1
        # parallel edges to one neighbour bend away from the straight first one, alternately left and right
        bend = 80.0 * ((n + 1) // 2) * (1 if n % 2 else -1)
        length = math.hypot(ox - cx, oy - cy) or 1.0
        nx, ny = -(oy - cy) / length, (ox - cx) / length  # unit normal of centre -> neighbour
        qx, qy = (cx + ox) / 2 + nx * bend, (cy + oy) / 2 + ny * bend
        x1, y1, x2, y2 = (cx, cy, ox, oy) if e.outgoing else (ox, oy, cx, cy)
        # a bent edge's label sits at its control point, clear of the straight edge's label
        lx, ly = (qx, qy) if n else ((x1 + x2) / 2, (y1 + y2) / 2)
        anchor = "middle" if not n else "start" if qx >= (cx + ox) / 2 else "end"
        edges.append(EdgeDraw(e, x1, y1, x2, y2, qx, qy, lx, ly, anchor))
    return nodes, edges, left_out
