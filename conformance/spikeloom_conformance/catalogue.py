"""The registry of checks: each is a plain function ``check_*(backend, case, tol, *, device)`` that
raises AssertionError with a precise message when the backend disagrees with the reference, and
returns nothing (or a note) when it agrees.  Each check says which cases it applies to and which
capabilities it needs beyond what its case needs."""

from __future__ import annotations

from collections.abc import Callable

import attrs

from spikeloom.capabilities import requirements

__all__ = ["CheckSpec", "CheckSkipped", "CHECKS", "register", "case_needs"]


class CheckSkipped(Exception):
    """Raised by a check that cannot run for a reason the declaration does not show (the message
    names it); the front ends report a skip."""


@attrs.frozen
class CheckSpec:
    """One catalogue entry: ``name`` (the id prefix), ``func``, which cases it ``applies`` to,
    and what the compile request needs: ``with_rule`` (the case's learning rule and readout),
    ``with_readout`` (the readout only) and ``extra`` capability needs ``(field, value)``."""

    name: str
    func: Callable
    applies: Callable
    with_rule: bool = False
    with_readout: bool = False
    extra: tuple = ()
    backend_level: bool = False

    @property
    def summary(self) -> str:
        doc = (self.func.__doc__ or "").strip()
        return " ".join(doc.split("\n\n")[0].split())

    def needs(self, case, dtype: str, device: str):
        """Every ``(capability field, value)`` the check needs to run ``case`` in ``dtype``."""
        if self.backend_level:
            return list(self.extra)
        rule = case.rule if self.with_rule else None
        readout = case.readout if (self.with_rule or self.with_readout) else None
        return case_needs(case, dtype, device, rule, readout) + list(self.extra)


def case_needs(case, dtype: str, device: str, rule=None, readout=None) -> list[tuple[str, object]]:
    surrogate = getattr(getattr(rule, "surrogate", None), "kind", None)
    return list(
        requirements(
            case.network.built,
            dtype=dtype,
            device=device,
            rule=getattr(rule, "kind", None),
            surrogate=surrogate,
            readout=getattr(readout, "mode", None),
        )
    )


#: every check, in catalogue order
CHECKS: dict[str, CheckSpec] = {}


def register(
    *,
    applies: Callable = lambda case: True,
    with_rule: bool = False,
    with_readout: bool = False,
    extra: tuple = (),
    backend_level: bool = False,
):
    """Decorator adding a ``check_<name>`` function to :data:`CHECKS` under ``<name>``."""

    def deco(func):
        name = func.__name__.removeprefix("check_")
        if name in CHECKS:
            raise ValueError(f"check {name!r} registered twice")
        CHECKS[name] = CheckSpec(
            name=name,
            func=func,
            applies=applies,
            with_rule=with_rule,
            with_readout=with_readout,
            extra=tuple(extra),
            backend_level=backend_level,
        )
        return func

    return deco
