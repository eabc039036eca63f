"""spikeloom's conformance kit: one suite that proves a backend computes what the NumPy reference
computes (in float64, the judge), and measures how fast.

- :func:`check_backend` runs every check a backend's declared capabilities call for and returns a
  :class:`Report`; the same items run under pytest
  (``pytest --pyargs spikeloom_conformance --spikeloom-backend NAME``) and from the command line
  (``spikeloom conformance NAME [--bench] [--json FILE]``).
- :data:`CHECKS` is the catalogue of plain check functions, :func:`corpus` the case corpus,
  :data:`PROFILES` the tolerances by dtype, :func:`run_bench` the speed suite.

See docs/backend-guide.md and docs/conformance.md.
"""

import importlib

#: public name -> module holding it (imported on first use, so that loading the pytest plugin,
#: which imports this package, stays cheap where the kit is not used)
_LAZY = {
    "run_bench": "bench",
    "Case": "cases",
    "corpus": "cases",
    "get_case": "cases",
    "CHECKS": "catalogue",
    "CheckSkipped": "catalogue",
    "Item": "runner",
    "Report": "runner",
    "Result": "runner",
    "check_backend": "runner",
    "generate": "runner",
    "PROFILES": "tolerances",
    "Tolerance": "tolerances",
    "tolerance_for": "tolerances",
}


def __getattr__(name):
    if name in _LAZY:
        module = importlib.import_module(f".{_LAZY[name]}", __name__)
        if name == "CHECKS":
            importlib.import_module(".checks", __name__)  # registering fills the catalogue
        return getattr(module, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "CHECKS",
    "PROFILES",
    "Case",
    "CheckSkipped",
    "Item",
    "Report",
    "Result",
    "Tolerance",
    "check_backend",
    "corpus",
    "generate",
    "get_case",
    "run_bench",
    "tolerance_for",
]
