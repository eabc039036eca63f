"""Selecting the checks a backend's declaration calls for, and running them without pytest.

:func:`generate` turns a backend into a list of :class:`Item` (check x case x dtype), each with an
id, a skip reason naming the missing capability where the declaration does not cover it, and a
strict-xfail reason where the backend lists the item as a known failure.  :func:`check_backend`
runs them and returns a :class:`Report`; the pytest plugin parametrizes one test over the same items.
"""

from __future__ import annotations

import fnmatch
import importlib
import time
import traceback
from collections.abc import Callable, Iterable, Mapping

import attrs

import spikeloom as sl

from . import checks as _checks  # noqa: F401  (fills the catalogue)
from .cases import Case, corpus
from .catalogue import CHECKS, CheckSkipped, CheckSpec
from .tolerances import DTYPES, PROFILES, tolerance_for

__all__ = [
    "Item",
    "Result",
    "Report",
    "generate",
    "run_item",
    "check_backend",
    "resolve_backend",
    "default_device",
    "known_failures_of",
    "KNOWN_FAILURES_ATTR",
]

#: a backend may list its known bugs here: ``{item id glob: reason}``; they become strict xfails
KNOWN_FAILURES_ATTR = "conformance_known_failures"
OUTCOMES = ("passed", "failed", "skipped", "xfailed")


@attrs.frozen(eq=False)
class Item:
    """One check of one case in one dtype on one device (``case`` is None for backend-level checks)."""

    check: CheckSpec
    case: Case | None
    dtype: str
    device: str
    skip: str | None = None
    xfail: str | None = None

    @property
    def id(self) -> str:
        if self.case is None:
            return f"{self.check.name}-{self.dtype}"
        return f"{self.check.name}-{self.case.name}-{self.dtype}"

    def run(self, backend: sl.Backend):
        """Run the check (raises AssertionError on a mismatch, CheckSkipped if it cannot run)."""
        return self.check.func(backend, self.case, tolerance_for(self.dtype), device=self.device)


@attrs.frozen
class Result:
    """``outcome`` is ``passed``, ``failed``, ``skipped`` or ``xfailed``; ``message`` says why (or
    holds a note for a pass); ``seconds`` the time it took."""

    id: str
    check: str
    case: str | None
    dtype: str
    outcome: str
    message: str = ""
    seconds: float = 0.0

    def to_dict(self) -> dict:
        return attrs.asdict(self)


@attrs.frozen
class Report:
    """The structured outcome of :func:`check_backend`."""

    backend: str
    version: str
    device: str
    capabilities: dict
    tolerances: dict
    results: tuple[Result, ...]
    seconds: float = 0.0

    def by_outcome(self, outcome: str) -> list[Result]:
        return [r for r in self.results if r.outcome == outcome]

    @property
    def passed(self) -> list[Result]:
        return self.by_outcome("passed")

    @property
    def failed(self) -> list[Result]:
        return self.by_outcome("failed")

    @property
    def skipped(self) -> list[Result]:
        return self.by_outcome("skipped")

    @property
    def xfailed(self) -> list[Result]:
        return self.by_outcome("xfailed")

    @property
    def ok(self) -> bool:
        """No failure (skips and known failures are allowed)."""
        return not self.failed

    def counts(self) -> dict[str, int]:
        return {o: len(self.by_outcome(o)) for o in OUTCOMES}

    def failed_checks(self) -> set[str]:
        return {r.check for r in self.failed}

    def to_dict(self) -> dict:
        return {
            "backend": self.backend,
            "version": self.version,
            "device": self.device,
            "capabilities": self.capabilities,
            "tolerances": self.tolerances,
            "counts": self.counts(),
            "ok": self.ok,
            "seconds": round(self.seconds, 3),
            "results": [r.to_dict() for r in self.results],
        }


def resolve_backend(backend) -> sl.Backend:
    """A backend instance from a name registered with the plugin host, from ``"module:attribute"``
    (a backend instance, or a class or function returning one: for backends not registered), or
    the instance itself."""
    if isinstance(backend, sl.Backend):
        return backend
    if isinstance(backend, str) and ":" in backend:
        module, _, attr = backend.partition(":")
        try:
            obj = getattr(importlib.import_module(module), attr)
        except (ImportError, AttributeError) as exc:
            raise ValueError(f"backend {backend!r}: cannot import it ({exc})") from None
        if not isinstance(obj, sl.Backend) and callable(obj):
            obj = obj()
        if not isinstance(obj, sl.Backend):
            raise ValueError(f"backend {backend!r} is not a spikeloom.Backend (got {type(obj).__name__})")
        return obj
    if isinstance(backend, str):
        return sl.get_backend(backend)
    raise ValueError(f"expected a backend name or a spikeloom.Backend instance, got {backend!r:.80}")


def default_device(caps: sl.Capabilities) -> str:
    """``cpu`` when declared, else the first declared device kind."""
    if "cpu" in caps.devices or not caps.devices:
        return "cpu"
    return sorted(caps.devices)[0]


def _show(v):
    return sorted(v) if isinstance(v, frozenset) else v


def unmet_need(backend: sl.Backend, caps: sl.Capabilities, needs: Iterable[tuple[str, object]]) -> str | None:
    """The skip reason for the first need the declaration does not cover (None if all are)."""
    for feature, value in needs:
        declared = getattr(caps, feature)
        if isinstance(declared, frozenset):
            ok = value in declared
        elif isinstance(declared, bool):
            ok = declared or not value
        else:
            ok = declared is None or value <= declared
        if not ok:
            return f"needs {feature}={value!r}; backend {backend.name!r} declares {feature}={_show(declared)}"
    return None


def known_failures_of(backend: sl.Backend) -> dict[str, str]:
    """The backend's ``conformance_known_failures`` mapping (``{id glob: reason}``), checked."""
    raw = getattr(backend, KNOWN_FAILURES_ATTR, None) or {}
    if not isinstance(raw, Mapping) or not all(isinstance(k, str) and isinstance(v, str) for k, v in raw.items()):
        raise ValueError(f"backend {backend.name!r}: {KNOWN_FAILURES_ATTR} must map item id patterns to reasons")
    return dict(raw)


def _match(item_id: str, patterns: Iterable[str]) -> bool:
    return any(fnmatch.fnmatchcase(item_id, p) or p == item_id for p in patterns)


def generate(
    backend,
    *,
    dtypes: Iterable[str] | None = None,
    device: str | None = None,
    checks: Iterable[str] | None = None,
    cases: Iterable[Case] | None = None,
    select: Iterable[str] | None = None,
    known_failures: Mapping[str, str] | None = None,
) -> list[Item]:
    """Every item of the catalogue for ``backend`` (name or instance).

    ``dtypes``: which of float32/float64 to consider (default both: an undeclared one gives skips);
    ``device``: default :func:`default_device`; ``checks``: check names to keep; ``cases``: the
    corpus to use; ``select``: id globs to keep (``"bptt_*"``, ``"*-float64"``);
    ``known_failures``: ``{id glob: reason}`` added to the backend's own list (strict xfails).
    """
    backend = resolve_backend(backend)
    caps = backend.capabilities()
    device = device or default_device(caps)
    dtypes = tuple(dtypes or DTYPES)
    for d in dtypes:
        if d not in PROFILES:
            raise ValueError(f"dtype {d!r}: the kit has tolerance profiles for {sorted(PROFILES)}")
    wanted = None if checks is None else set(checks)
    if wanted is not None and wanted - set(CHECKS):
        raise ValueError(f"unknown checks {sorted(wanted - set(CHECKS))}; the catalogue has {sorted(CHECKS)}")
    cases = tuple(corpus() if cases is None else cases)
    known = {**known_failures_of(backend), **dict(known_failures or {})}
    patterns = list(select or ())
    items: list[Item] = []
    for spec in CHECKS.values():
        if wanted is not None and spec.name not in wanted:
            continue
        if spec.backend_level:
            declared = [d for d in dtypes if d in caps.dtypes]
            targets = [(None, declared[0] if declared else dtypes[0])]
        else:
            targets = [(case, d) for case in cases if spec.applies(case) for d in dtypes]
        for case, dtype in targets:
            needs = [("dtypes", dtype)] if spec.backend_level else spec.needs(case, dtype, device)
            item = Item(spec, case, dtype, device, skip=unmet_need(backend, caps, needs))
            if patterns and not _match(item.id, patterns):
                continue
            reasons = [r for p, r in known.items() if _match(item.id, [p])]
            if reasons and item.skip is None:
                item = attrs.evolve(item, xfail="; ".join(reasons))
            items.append(item)
    return items


def run_item(item: Item, backend: sl.Backend) -> Result:
    """Run one item and classify the outcome (a known failure that passes is a failure: strict)."""
    base = {"id": item.id, "check": item.check.name, "case": item.case and item.case.name, "dtype": item.dtype}
    if item.skip:
        return Result(**base, outcome="skipped", message=item.skip)
    t0 = time.perf_counter()
    outcome, message = "passed", ""
    try:
        note = item.run(backend)
        message = note or ""
    except CheckSkipped as exc:
        outcome, message = "skipped", str(exc)
    except AssertionError as exc:
        outcome, message = "failed", str(exc) or "AssertionError"
    except Exception as exc:  # a crash inside the backend is a failure of that item, not of the kit
        tb = traceback.extract_tb(exc.__traceback__)[-1]
        outcome = "failed"
        message = f"{type(exc).__name__}: {exc} (at {tb.filename}:{tb.lineno})"
    seconds = time.perf_counter() - t0
    if item.xfail:
        if outcome == "failed":
            outcome, message = "xfailed", f"known failure ({item.xfail}): {message}"
        elif outcome == "passed":
            outcome, message = "failed", f"[XPASS(strict)] listed as a known failure ({item.xfail}) but it passes"
    return Result(**base, outcome=outcome, message=message, seconds=seconds)


def check_backend(
    backend,
    *,
    dtypes: Iterable[str] | None = None,
    device: str | None = None,
    checks: Iterable[str] | None = None,
    select: Iterable[str] | None = None,
    known_failures: Mapping[str, str] | None = None,
    cases: Iterable[Case] | None = None,
    progress: Callable[[Result], None] | None = None,
) -> Report:
    """Run the conformance kit on ``backend`` (a registered name or a :class:`spikeloom.Backend`)
    and return a :class:`Report`: one :class:`Result` per item, ``report.ok`` when nothing failed.
    Arguments as for :func:`generate`; ``progress`` is called with each result as it comes."""
    backend = resolve_backend(backend)
    items = generate(
        backend,
        dtypes=dtypes,
        device=device,
        checks=checks,
        cases=cases,
        select=select,
        known_failures=known_failures,
    )
    caps = backend.capabilities()
    t0 = time.perf_counter()
    results = []
    for item in items:
        r = run_item(item, backend)
        results.append(r)
        if progress is not None:
            progress(r)
    return Report(
        backend=backend.name,
        version=backend.version,
        device=device or default_device(caps),
        capabilities=caps.to_dict(),
        tolerances={d: PROFILES[d].to_dict() for d in (dtypes or DTYPES)},
        results=tuple(results),
        seconds=time.perf_counter() - t0,
    )
