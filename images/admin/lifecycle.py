"""The lifecycle on the image page, drawn from the model's transitions, so the
picture cannot drift from the state machine that django-fsm enforces.

The layout depends only on the transitions, which are fixed when the model class
is defined, so it is computed once per process; the image's current status only
marks one node and its ways out."""

import functools
from typing import NamedTuple

from images.enums import Status
from images.models import Image

NODE_W, NODE_H, COL_W, ROW_H, MARGIN = 112, 30, 142, 52, 16

Edge = tuple[str, str]


class Graph(NamedTuple):
    statuses: tuple[str, ...]
    initial: str
    # (source, target) -> the sorted names of the transitions that make that move
    edges: tuple[tuple[Edge, tuple[str, ...]], ...]


class Layout(NamedTuple):
    nodes: tuple[tuple[str, float, float], ...]  # status, centre x, centre y
    edges: tuple[tuple[Edge, str, str], ...]  # (source, target), SVG path, names
    width: float
    height: float


@functools.cache
def status_graph(model: type[Image] = Image) -> Graph:
    field = model._meta.get_field("status")
    statuses = tuple(Status.values)
    edges: dict[Edge, list[str]] = {}
    for transition in field.get_all_transitions(model):
        if transition.source not in statuses:
            continue  # "*" and "+" sources would be an edge from every status
        if transition.name == "migrate":
            continue  # where an image from Glance starts, not a step of the lifecycle
        # A RETURN_VALUE target (restore) is one edge per status it may return to.
        for target in getattr(transition.target, "allowed_states", [transition.target]):
            if target != transition.source:
                edges.setdefault((transition.source, target), []).append(transition.name)
    return Graph(
        statuses,
        field.default,
        tuple((edge, tuple(sorted(names))) for edge, names in edges.items()),
    )


def _back_edges(graph: Graph) -> set[Edge]:
    """The edges that close a cycle (restore, a failed upload going back to queued),
    found by a depth-first walk from the initial status: they are drawn as arcs
    above, and ignored when ranking, or the ranking would never settle."""
    back: set[Edge] = set()
    state: dict[str, str] = {}

    def visit(status: str) -> None:
        state[status] = "open"
        for (source, target), _ in graph.edges:
            if source != status:
                continue
            if state.get(target) == "open":
                back.add((source, target))
            elif target not in state:
                visit(target)
        state[status] = "done"

    for status in [graph.initial, *graph.statuses]:
        if status not in state:
            visit(status)
    return back


@functools.cache
def layout(graph: Graph) -> Layout:
    """Statuses in columns by the longest path from the initial status; the edges
    as cubic curves between them."""
    back = _back_edges(graph)
    rank = dict.fromkeys(graph.statuses, 0)
    for _ in graph.statuses:
        for edge, _names in graph.edges:
            if edge not in back:
                source, target = edge
                rank[target] = max(rank[target], rank[source] + 1)

    columns: dict[int, list[str]] = {}
    for status in graph.statuses:
        columns.setdefault(rank[status], []).append(status)
    tallest = max(len(c) for c in columns.values())
    mid = MARGIN + 70 + (tallest - 1) * ROW_H / 2
    where = {}
    for column, members in columns.items():
        for i, status in enumerate(members):
            x = MARGIN + column * COL_W + NODE_W / 2
            where[status] = (x, mid + (i - (len(members) - 1) / 2) * ROW_H)

    drawn = []
    lowest = mid
    for (source, target), names in graph.edges:
        (x1, y1), (x2, y2) = where[source], where[target]
        span = abs(rank[target] - rank[source])
        if (source, target) in back:  # arc above
            lift = min(y1, y2) - NODE_H / 2 - 18 - 10 * span
            points = [(x1, y1 - NODE_H / 2), (x1, lift), (x2, lift), (x2, y2 - NODE_H / 2)]
        elif span == 1:
            dx = (x2 - x1) / 2
            sx, ex = x1 + NODE_W / 2, x2 - NODE_W / 2
            points = [(sx, y1), (sx + dx / 2, y1), (ex - dx / 2, y2), (ex, y2)]
        else:  # long forward edges arc below the row
            drop = max(y1, y2) + NODE_H / 2 + 14 + 13 * span
            lowest = max(lowest, drop)
            points = [(x1 + 10, y1 + NODE_H / 2), (x1 + 10, drop), (x2 - 10, drop)]
            points.append((x2 - 10, y2 + NODE_H / 2))
        (ax, ay), (bx, by), (cx, cy), (dx_, dy_) = points
        path = f"M{ax:.0f},{ay:.0f} C{bx:.0f},{by:.0f} {cx:.0f},{cy:.0f} {dx_:.0f},{dy_:.0f}"
        drawn.append(((source, target), path, ", ".join(names)))
    return Layout(
        nodes=tuple((status, *where[status]) for status in graph.statuses),
        edges=tuple(drawn),
        width=MARGIN * 2 + (max(columns) * COL_W) + NODE_W,
        height=lowest * 0.75 + 40,
    )


def lifecycle_picture(current: str) -> dict:
    """Nodes and edges of the status graph with `current` marked, ready for the SVG
    template (admin/images/lifecycle.html)."""
    picture = layout(status_graph())
    edges = [
        {"d": path, "hot": source == current, "source": source, "target": target, "names": names}
        for (source, target), path, names in picture.edges
    ]
    edges.sort(key=lambda e: e["hot"])  # SVG paints in order: the current status's edges on top
    nodes = [
        {
            "status": status,
            "x": x - NODE_W / 2,
            "y": y - NODE_H / 2,
            "cx": x,
            "cy": y + 5,  # the text's baseline, a little below the centre
            "current": status == current,
        }
        for status, x, y in picture.nodes
    ]
    return {
        "nodes": nodes,
        "edges": edges,
        "ways_out": [edge for edge in edges if edge["hot"]],
        "width": picture.width,
        "height": picture.height,
    }
