"""A layered ("Sugiyama") layout of a directed acyclic graph, small enough to read in one go.

``layered_layout(sizes, edges, rankdir)`` places nodes of given sizes so that every edge
points down (``'TB'``) or right (``'LR'``):

1. **Ranks** by longest path from the sources (a node sits one rank below its lowest
   predecessor); then chains that only feed one later node (a label input) are pulled down
   to sit just above where they are used.
2. **Dummy nodes** on every rank an edge crosses, so that long edges are laid out like nodes.
3. **Order** within ranks: start from the input order, then sweep down and up, sorting each
   rank by the barycentre (mean position) of its neighbours in the previous rank; keep the
   order with the fewest edge crossings.
4. **Coordinates** across ranks: repeatedly move each node towards the mean position of its
   neighbours, keeping the order and a minimum gap (an exact least-squares placement per rank
   by pool-adjacent-violators), which straightens chains and long edges.

Edges leave from the bottom (right) of their source and enter at the top (left) of their
target; several edges at one side of a node get spread-out ports. The result is a ``Layout``
of centres, routes (polylines through the dummy nodes) and the drawing's size. Deterministic:
the same input gives the same layout.
"""
import math
from collections import defaultdict
from dataclasses import dataclass

__all__ = ['Layout', 'layered_layout', 'GraphCycleError']


class GraphCycleError(ValueError):
    """The graph has a cycle, so it cannot be drawn in ranks."""


@dataclass
class Layout:
    """``centers``: node -> (x, y); ``routes``: one list of (x, y) points per input edge, in
    the input order, from the source's border to the target's; ``ranks``: node -> rank;
    ``width``/``height``: the drawing's size including the margin; ``crossings``: edge
    crossings between adjacent ranks in the chosen order."""
    centers: dict
    routes: list
    ranks: dict
    width: float
    height: float
    crossings: int


def _topological(nodes, succ, pred):
    indeg = {v: len(pred[v]) for v in nodes}
    ready = [v for v in nodes if indeg[v] == 0]
    out = []
    position = {v: i for i, v in enumerate(nodes)}
    while ready:
        ready.sort(key=position.get, reverse=True)
        v = ready.pop()
        out.append(v)
        for w in succ[v]:
            indeg[w] -= 1
            if indeg[w] == 0:
                ready.append(w)
    if len(out) != len(nodes):
        stuck = [v for v in nodes if indeg[v] > 0]
        raise GraphCycleError(f"the graph has a cycle through {', '.join(map(str, stuck[:5]))}")
    return out


def _ranks(nodes, succ, pred):
    topo = _topological(nodes, succ, pred)
    rank = {}
    for v in topo:
        rank[v] = max((rank[u] + 1 for u in pred[v]), default=0)
    # chains that only feed one later node float down to just above it
    floating = set()
    for v in topo:
        if not pred[v] or all(u in floating and succ[u] == [v] for u in pred[v]):
            floating.add(v)
    for v in reversed(topo):
        if v in floating and succ[v]:
            rank[v] = min(rank[w] for w in succ[v]) - 1
    return rank


def _crossings(upper, lower, down):
    """Edge crossings between two adjacent ranks (lists of nodes in order)."""
    pos_lower = {v: i for i, v in enumerate(lower)}
    pairs = []
    for i, u in enumerate(upper):
        for w in down[u]:
            if w in pos_lower:
                pairs.append((i, pos_lower[w]))
    pairs.sort()
    count = 0
    for a in range(len(pairs)):
        for b in range(a + 1, len(pairs)):
            if pairs[a][0] < pairs[b][0] and pairs[a][1] > pairs[b][1]:
                count += 1
    return count


def _total_crossings(layers, down):
    return sum(_crossings(layers[r], layers[r + 1], down) for r in range(len(layers) - 1))


def _order(layers, down, up, sweeps):
    """Barycentric ordering; returns (layers, crossings) with the fewest crossings seen."""
    best = [list(r) for r in layers]
    best_count = _total_crossings(best, down)
    current = [list(r) for r in layers]
    for sweep in range(sweeps):
        downward = sweep % 2 == 0
        indices = range(1, len(current)) if downward else range(len(current) - 2, -1, -1)
        for r in indices:
            ref = current[r - 1] if downward else current[r + 1]
            ref_pos = {v: i for i, v in enumerate(ref)}
            neighbours = up if downward else down
            keys = []
            for i, v in enumerate(current[r]):
                ps = [ref_pos[u] for u in neighbours[v] if u in ref_pos]
                keys.append((sum(ps) / len(ps) if ps else i, i))
            current[r] = [v for _, v in sorted(zip(keys, current[r]), key=lambda t: t[0])]
        count = _total_crossings(current, down)
        if count < best_count:
            best, best_count = [list(r) for r in current], count
    return best, best_count


def _place_row(row, extent, targets, gap, weights):
    """Centres for the nodes of ``row`` (in order) as close as possible (least squares) to
    ``targets`` with at least ``gap`` between neighbours: isotonic regression (PAVA)."""
    offsets = [0.0]
    for a, b in zip(row, row[1:]):
        offsets.append(offsets[-1] + (extent[a] + extent[b]) / 2 + gap)
    blocks = []              # [weighted sum, weight, count]
    for v, off in zip(row, offsets):
        w = weights[v]
        blocks.append([w * (targets[v] - off), w, 1])
        while len(blocks) > 1 and blocks[-2][0] / blocks[-2][1] > blocks[-1][0] / blocks[-1][1]:
            s, w2, n = blocks.pop()
            blocks[-1][0] += s
            blocks[-1][1] += w2
            blocks[-1][2] += n
    values = []
    for s, w, n in blocks:
        values += [s / w] * n
    return {v: y + off for v, y, off in zip(row, values, offsets)}


_AXIS_PULL = 0.15


def _coordinates(layers, extent, down, up, gap, dummies, iterations=24):
    across = {}
    for row in layers:
        pos = 0.0
        for i, v in enumerate(row):
            if i:
                pos += (extent[row[i - 1]] + extent[v]) / 2 + gap
            across[v] = pos
    weights = {v: (0.5 if v in dummies else 1.0) for row in layers for v in row}
    for it in range(iterations):
        phase = it % 3
        order = range(len(layers)) if phase != 1 else range(len(layers) - 1, -1, -1)
        for r in order:
            row = layers[r]
            targets = {}
            for v in row:
                if phase == 0:
                    ns = up[v]
                elif phase == 1:
                    ns = down[v]
                else:
                    ns = up[v] + down[v]
                if v not in dummies:     # real nodes follow real neighbours: chains stay
                    ns = [n for n in ns if n not in dummies] or ns     # straight
                # a weak pull to the axis 0 keeps long nets from drifting sideways
                total = sum(across[n] for n in ns) if ns else across[v]
                targets[v] = total / ((len(ns) or 1) + _AXIS_PULL)
            across.update(_place_row(row, extent, targets, gap, weights))
    return across


def _room(row, i, extent, across, gap):
    """(lowest, highest) centre the node row[i] may take between its row neighbours."""
    v = row[i]
    lo = across[row[i - 1]] + (extent[row[i - 1]] + extent[v]) / 2 + gap if i > 0 \
        else -math.inf
    hi = across[row[i + 1]] - (extent[row[i + 1]] + extent[v]) / 2 - gap \
        if i + 1 < len(row) else math.inf
    return lo, hi


def _align_links(layers, down, up, extent, across, gap):
    """Snap each one-to-one link (a node whose only predecessor has it as only successor)
    onto one line where the rank leaves room: removes the small kinks of a chain."""
    for row in layers[1:]:
        for i, v in enumerate(row):
            if len(up[v]) == 1 and len(down[up[v][0]]) == 1:
                lo, hi = _room(row, i, extent, across, gap)
                across[v] = min(max(across[up[v][0]], lo), hi)


def _straighten(chains, layers, rank, extent, across, gap):
    """Put the dummy nodes of each long edge on one vertical line where the neighbours in
    their ranks leave room (closest to the dummies' median), so long edges run straight."""
    index = {v: i for row in layers for i, v in enumerate(row)}
    for chain in chains.values():
        inner = chain[1:-1]
        if not inner:
            continue
        lo, hi = -math.inf, math.inf
        for d in inner:
            a, b = _room(layers[rank[d]], index[d], extent, across, gap)
            lo, hi = max(lo, a), min(hi, b)
        if lo > hi:
            continue
        median = sorted(across[d] for d in inner)[len(inner) // 2]
        x = min(max(median, lo), hi)
        for d in inner:
            across[d] = x


def _ports(node, edges_here, other_pos, extent):
    """Across-offsets for the edges at one side of a node, spread in the order of where the
    edges go, at most 14 px apart and inside the node."""
    n = len(edges_here)
    if n <= 1:
        return {e: 0.0 for e in edges_here}
    step = min(14.0, extent[node] * 0.7 / (n - 1))
    ordered = sorted(edges_here, key=lambda e: other_pos[e])
    return {e: (i - (n - 1) / 2) * step for i, e in enumerate(ordered)}


def layered_layout(sizes, edges, rankdir='TB', rank_gap=30, node_gap=18, margin=16,
                   sweeps=16, ellipses=()):
    """Lay out a DAG.

    Args:
        sizes: ``{node: (width, height)}`` in drawing order (the initial order within ranks).
        edges: ``[(source, target)]``; repeated pairs are allowed (each gets its route).
        rankdir: ``'TB'`` (ranks top to bottom) or ``'LR'`` (left to right).
        rank_gap, node_gap, margin: pixels between ranks, between nodes of a rank, around.
        ellipses: nodes drawn as ellipses (ports sit on the ellipse, not its bounding box).
    Raises GraphCycleError for a cyclic graph, ValueError for an edge to an unknown node.
    """
    if rankdir not in ('TB', 'LR'):
        raise ValueError(f"rankdir must be 'TB' or 'LR', not {rankdir!r}")
    nodes = list(sizes)
    known = set(nodes)
    for u, v in edges:
        if u not in known or v not in known:
            raise ValueError(f"edge {u!r} -> {v!r} names a node that is not in the graph")
    tb = rankdir == 'TB'
    along = {v: (sizes[v][1] if tb else sizes[v][0]) for v in nodes}
    extent = {v: (sizes[v][0] if tb else sizes[v][1]) for v in nodes}
    succ, pred = defaultdict(list), defaultdict(list)
    for u, v in edges:
        if v not in succ[u]:
            succ[u].append(v)
            pred[v].append(u)
    rank = _ranks(nodes, succ, pred)
    low = min(rank.values(), default=0)
    rank = {v: r - low for v, r in rank.items()}

    # dummies on long edges; a chain per distinct edge
    down, up = defaultdict(list), defaultdict(list)
    chains = {}
    dummies = set()
    key = {v: float(i) for i, v in enumerate(nodes)}
    for u, v in edges:
        if (u, v) in chains:
            continue
        chain = [u]
        for r in range(rank[u] + 1, rank[v]):
            d = ('dummy', u, v, r)
            dummies.add(d)
            rank[d], along[d], extent[d] = r, 0.0, 2.0
            key[d] = key[u] + 0.5
            chain.append(d)
        chain.append(v)
        chains[(u, v)] = chain
        for a, b in zip(chain, chain[1:]):
            down[a].append(b)
            up[b].append(a)
    n_ranks = max(rank.values(), default=-1) + 1
    layers = [[] for _ in range(n_ranks)]
    for v in sorted(rank, key=lambda v: key[v]):
        layers[rank[v]].append(v)
    layers, crossings = _order(layers, down, up, sweeps)
    across = _coordinates(layers, extent, down, up, node_gap, dummies)
    _align_links(layers, down, up, extent, across, node_gap)
    _straighten(chains, layers, rank, extent, across, node_gap)

    # along-rank coordinates: each rank a band as deep as its deepest node
    band = [max((along[v] for v in row), default=0.0) for row in layers]
    centre_along, pos = [], margin
    for r, depth in enumerate(band):
        centre_along.append(pos + depth / 2)
        pos += depth + rank_gap
    lo = min((across[v] - extent[v] / 2 for v in across), default=0.0)
    hi = max((across[v] + extent[v] / 2 for v in across), default=0.0)
    shift = margin - lo
    place = {v: (across[v] + shift, centre_along[rank[v]]) for v in rank}
    size_across = hi - lo + 2 * margin
    size_along = pos - rank_gap + margin if layers else 2 * margin

    # routes with spread ports
    out_edges, in_edges = defaultdict(list), defaultdict(list)
    for u, v in chains:
        out_edges[u].append((u, v))
        in_edges[v].append((u, v))
    first_hop = {e: place[chains[e][1]][0] for e in chains}
    last_hop = {e: place[chains[e][-2]][0] for e in chains}
    out_port, in_port = {}, {}
    for v, es in out_edges.items():
        out_port.update(_ports(v, es, first_hop, extent))
    for v, es in in_edges.items():
        in_port.update(_ports(v, es, last_hop, extent))

    def border(v, offset, sign):
        c, a = place[v]
        half = along[v] / 2
        if v in ellipses and extent[v] > 0:
            half *= math.sqrt(max(0.0, 1 - (2 * offset / extent[v]) ** 2))
        return (c + offset, a + sign * half)

    routes = []
    for e in edges:
        chain = chains[e]
        pts = [border(chain[0], out_port[e], +1)]
        for d in chain[1:-1]:        # straight through the whole depth of the dummy's rank
            c, a = place[d]
            half = band[rank[d]] / 2
            pts += [(c, a - half), (c, a + half)] if half > 0 else [(c, a)]
        pts.append(border(chain[-1], in_port[e], -1))
        routes.append(pts)

    def flip(p):
        return (p[0], p[1]) if tb else (p[1], p[0])

    centers = {v: flip(place[v]) for v in nodes}
    routes = [[flip(p) for p in r] for r in routes]
    width, height = (size_across, size_along) if tb else (size_along, size_across)
    return Layout(centers=centers, routes=routes, ranks={v: rank[v] for v in nodes},
                  width=width, height=height, crossings=crossings)
