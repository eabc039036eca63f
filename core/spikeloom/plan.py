"""The order in which a backend can run a network's populations (no array library needed).

Every connection has a delay of at least one step, so a population's trajectory over all ``T``
steps depends only on the full trajectories of the populations that feed it.  Populations that do
not feed each other back can therefore be run one after the other, each over all steps, and the
input they receive from earlier ones computed for all steps at once.  Only the populations of one
strongly connected component (a recurrent population, or populations driving each other) must
advance together step by step.  The backward pass runs the components in the reverse order.  The
torch and CuPy backends share this plan; a third-party backend may use it too.
"""

from __future__ import annotations

import attrs

from .built import BuiltConnection, BuiltNetwork

__all__ = ["Plan", "make_plan"]


@attrs.frozen(eq=False)
class Plan:
    """``groups``: the strongly connected components of the non-input populations, in an order
    where every connection between two groups goes forward; populations inside a group keep
    their declaration order.  For each population, ``external`` lists its incoming connections
    from inputs or earlier groups and ``internal`` those from its own group; ``downstream`` lists
    its outgoing connections to later groups and ``feedback`` those within its own group."""

    groups: tuple[tuple[str, ...], ...]
    external: dict[str, tuple[BuiltConnection, ...]]
    internal: dict[str, tuple[BuiltConnection, ...]]
    downstream: dict[str, tuple[BuiltConnection, ...]]
    feedback: dict[str, tuple[BuiltConnection, ...]]

    def fused(self, name: str) -> bool:
        """Whether ``name``'s input needs none of its group's spikes (it can run all steps at once)."""
        return not self.internal[name]


def _components(nodes: list[str], edges: dict[str, set[str]]) -> list[list[str]]:
    """Tarjan's strongly connected components, iteratively; returned in reverse topological order."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    out: list[list[str]] = []
    counter = 0
    for root in nodes:
        if root in index:
            continue
        work = [(root, iter(sorted(edges[root], key=nodes.index)))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            advanced = False
            for child in children:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(edges[child], key=nodes.index))))
                    advanced = True
                    break
                if child in on_stack:
                    low[node] = min(low[node], index[child])
            if advanced:
                continue
            work.pop()
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])
            if low[node] == index[node]:
                comp = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    comp.append(member)
                    if member == node:
                        break
                out.append(sorted(comp, key=nodes.index))
    return out


def make_plan(built: BuiltNetwork) -> Plan:
    nodes = [p.name for p in built.neuron_populations]
    edges: dict[str, set[str]] = {n: set() for n in nodes}
    for c in built.connections:
        if c.source in edges:
            edges[c.source].add(c.target)
    groups = tuple(tuple(g) for g in reversed(_components(nodes, edges)))
    group_of = {name: i for i, g in enumerate(groups) for name in g}
    external, internal, downstream, feedback = {}, {}, {}, {}
    for name in nodes:
        incoming = built.incoming(name)
        internal[name] = tuple(c for c in incoming if group_of.get(c.source) == group_of[name])
        external[name] = tuple(c for c in incoming if group_of.get(c.source) != group_of[name])
        outgoing = built.outgoing(name)
        feedback[name] = tuple(c for c in outgoing if group_of[c.target] == group_of[name])
        downstream[name] = tuple(c for c in outgoing if group_of[c.target] != group_of[name])
    return Plan(groups=groups, external=external, internal=internal, downstream=downstream, feedback=feedback)
