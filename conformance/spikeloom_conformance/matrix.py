"""The capability matrix (docs/capabilities.md), generated from the backends' own declarations.

``python -m spikeloom_conformance.matrix`` prints it; ``--write docs/capabilities.md`` writes it.
By default it covers the backends that ship with spikeloom and are registered here.
"""

from __future__ import annotations

import argparse
import re
import sys

import attrs

import spikeloom as sl
from spikeloom.capabilities import (
    ALL_CONNECTIVITY,
    ALL_DTYPES,
    ALL_MODELS,
    ALL_READOUTS,
    ALL_RESETS,
    ALL_RULES,
    ALL_SURROGATES,
    ALL_SYNAPSES,
    Capabilities,
)

__all__ = ["BUILTIN", "builtin_backends", "render", "backends_named", "main"]

#: the backends that ship with spikeloom, in the matrix's column order
BUILTIN = ("numpy", "torch", "cupy")
_MARKER = re.compile(r"<!-- generated from the declarations of: ([^>]*) -->")
_KNOWN = {
    "models": ALL_MODELS,
    "synapses": ALL_SYNAPSES,
    "resets": ALL_RESETS,
    "connectivity": ALL_CONNECTIVITY,
    "dtypes": ALL_DTYPES,
    "rules": ALL_RULES,
    "surrogates": ALL_SURROGATES,
    "readouts": ALL_READOUTS,
}
_ORDER = {"models": ("LIF", "ALIF", "LI"), "readouts": ("per_step", "max", "mean", "last")}


def builtin_backends() -> list[str]:
    """The shipped backends that are registered in this environment, in :data:`BUILTIN` order."""
    registered = {i.name for i in sl.list_backends() if i.capabilities is not None}
    return [n for n in BUILTIN if n in registered]


def render(names: list[str]) -> str:
    """The Markdown page for the backends ``names`` (registered names)."""
    caps: dict[str, Capabilities] = {n: sl.get_backend(n).capabilities() for n in names}
    head = "| capability | " + " | ".join(f"`{n}`" for n in names) + " |"
    rows = [head, "|---|" + "---|" * len(names)]
    for field in attrs.fields(Capabilities):
        values = [getattr(caps[n], field.name) for n in names]
        if isinstance(values[0], frozenset):
            known = _KNOWN.get(field.name, frozenset().union(*values))
            order = _ORDER.get(field.name) or sorted(known)
            for v in order:
                cells = ["yes" if v in vals else "—" for vals in values]
                rows.append(f"| {field.name}: `{v}` | " + " | ".join(cells) + " |")
        elif isinstance(values[0], bool) or field.type in ("bool", bool):
            rows.append(f"| {field.name} | " + " | ".join("yes" if v else "—" for v in values) + " |")
        else:
            rows.append(f"| {field.name} | " + " | ".join("no limit" if v is None else str(v) for v in values) + " |")
    return (
        "# Capability matrix\n\n"
        f"<!-- generated from the declarations of: {', '.join(names)} -->\n"
        "What each backend shipped with spikeloom declares (`Backend.capabilities()`); compiling anything "
        "outside a backend's declaration raises `UnsupportedFeature`, and the conformance kit skips the checks "
        'that need it, naming the capability. "yes" means declared; the kit checks every declared entry '
        "against the NumPy reference (see [backend-guide.md](backend-guide.md)). Field meanings: "
        "[backends.md](backends.md#capabilities).\n\n"
        "This page is generated: `python -m spikeloom_conformance.matrix --write docs/capabilities.md`.\n\n"
        + "\n".join(rows)
        + "\n"
    )


def backends_named(text: str) -> list[str] | None:
    """The backend names a generated page says it was made from (None if it has no marker)."""
    m = _MARKER.search(text)
    return None if m is None else [n.strip() for n in m.group(1).split(",") if n.strip()]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m spikeloom_conformance.matrix", description=__doc__)
    parser.add_argument("backends", nargs="*", help="backend names (default: the shipped ones registered here)")
    parser.add_argument("--write", metavar="FILE", help="write the page to FILE instead of printing it")
    args = parser.parse_args(argv)
    text = render(args.backends or builtin_backends())
    if args.write:
        with open(args.write, "w", encoding="utf-8") as f:
            f.write(text)
    else:
        sys.stdout.write(text)
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
