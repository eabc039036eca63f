"""The shared run plan: strongly connected components in a forward order."""

from __future__ import annotations

import spikeloom as sl
from spikeloom.plan import make_plan


def test_plan_groups_and_fusion():
    net = sl.Network(
        [
            sl.SpikeInput("x", 3),
            sl.LIF("a", 4),
            sl.LIF("b", 4),
            sl.LIF("c", 4),
            sl.LIF("d", 2),
            sl.LI("out", 2),
        ],
        [
            sl.Connection("x", "a", weight=1.0),
            sl.Connection("a", "b", weight=1.0),
            sl.Connection("b", "c", weight=1.0),
            sl.Connection("c", "b", weight=1.0, delay=2),
            sl.Connection("c", "d", weight=1.0),
            sl.Connection("d", "d", weight=1.0),
            sl.Connection("d", "out", weight=1.0),
            sl.Connection("a", "out", weight=1.0),
        ],
    )
    plan = make_plan(net.built)
    assert plan.groups == (("a",), ("b", "c"), ("d",), ("out",))
    assert plan.fused("a") and plan.fused("out")
    assert not plan.fused("b") and not plan.fused("c") and not plan.fused("d")
    assert [c.name for c in plan.feedback["c"]] == ["c_to_b"]
    assert [c.name for c in plan.downstream["c"]] == ["c_to_d"]
    assert [c.name for c in plan.external["b"]] == ["a_to_b"]
