"""The order in which the CuPy backend runs a network's populations (no CuPy needed here).

Every connection delays by at least one step, so a population's whole trajectory depends only on
the whole trajectories of the populations that feed it.  Populations are grouped into strongly
connected components (a recurrent population, or populations that drive each other), ordered so
that every connection between groups goes forward.  A group of one population with no connection
from inside its group runs as one fused time loop; the others advance step by step.
"""

from __future__ import annotations

import attrs

from spikeloom.built import BuiltConnection, BuiltNetwork

__all__ = ["Plan", "make_plan"]


@attrs.frozen(eq=False)
class Plan:
    """``groups`` in forward order (declaration order inside a group); per population,
    ``external``/``internal`` incoming connections (from inputs or earlier groups / from its own
    group) and ``downstream``/``feedback`` outgoing ones (to later groups / inside its group)."""

    groups: tuple[tuple[str, ...], ...]
    external: dict[str, tuple[BuiltConnection, ...]]
    internal: dict[str, tuple[BuiltConnection, ...]]
    downstream: dict[str, tuple[BuiltConnection, ...]]
    feedback: dict[str, tuple[BuiltConnection, ...]]

    def fused(self, name: str) -> bool:
        """Whether ``name`` runs as one fused time loop (its input needs none of its group's spikes)."""
        return not self.internal[name]


def _reachable(edges: dict[str, set[str]], start: str) -> set[str]:
    seen, todo = set(), [start]
    while todo:
        for nxt in edges[todo.pop()]:
            if nxt not in seen:
                seen.add(nxt)
                todo.append(nxt)
    return seen


def make_plan(built: BuiltNetwork) -> Plan:
    nodes = [p.name for p in built.neuron_populations]
    edges: dict[str, set[str]] = {n: set() for n in nodes}
    for c in built.connections:
        if c.source in edges:
            edges[c.source].add(c.target)
    reach = {n: _reachable(edges, n) for n in nodes}
    group_of: dict[str, int] = {}
    members: list[list[str]] = []
    for n in nodes:
        if n in group_of:
            continue
        comp = [m for m in nodes if m == n or (m in reach[n] and n in reach[m])]
        for m in comp:
            group_of[m] = len(members)
        members.append(comp)
    # topological order of the groups: a group comes after every group that reaches it
    order: list[int] = []
    placed: set[int] = set()
    while len(order) < len(members):
        for g, comp in enumerate(members):
            if g in placed:
                continue
            preds = {group_of[s] for s in nodes for m in comp if m in edges[s] and group_of[s] != g}
            if preds <= placed:
                order.append(g)
                placed.add(g)
                break
    groups = tuple(tuple(members[g]) for g in order)
    external, internal, downstream, feedback = {}, {}, {}, {}
    for name in nodes:
        incoming = built.incoming(name)
        internal[name] = tuple(c for c in incoming if group_of.get(c.source) == group_of[name])
        external[name] = tuple(c for c in incoming if group_of.get(c.source) != group_of[name])
        outgoing = built.outgoing(name)
        feedback[name] = tuple(c for c in outgoing if group_of[c.target] == group_of[name])
        downstream[name] = tuple(c for c in outgoing if group_of[c.target] != group_of[name])
    return Plan(groups=groups, external=external, internal=internal, downstream=downstream, feedback=feedback)
