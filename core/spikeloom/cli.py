"""The ``spikeloom`` command."""

from __future__ import annotations

import argparse
import json
import sys

__all__ = ["main", "build_parser"]


def _cmd_backends(args: argparse.Namespace) -> int:
    from .host import list_backends

    infos = list_backends()
    if args.json:
        json.dump(
            [
                {
                    "name": i.name,
                    "version": i.version,
                    "plugin": i.plugin,
                    "available": i.available,
                    "reason": i.reason,
                    "priority": i.priority,
                    "capabilities": None if i.capabilities is None else i.capabilities.to_dict(),
                }
                for i in infos
            ],
            sys.stdout,
            indent=1,
        )
        print()
        return 0
    for i in infos:
        status = "available" if i.available else f"unavailable: {i.reason}"
        print(f"{i.name} {i.version}  [{status}]" + (f"  {i.description}" if i.description else ""))
        if i.capabilities is not None:
            for key, value in i.capabilities.to_dict().items():
                shown = (", ".join(value) or "-") if isinstance(value, list) else value
                print(f"    {key:<26}{shown}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    from . import __version__

    parser = argparse.ArgumentParser(prog="spikeloom", description="Spiking neural network simulation and training.")
    parser.add_argument("--version", action="version", version=f"spikeloom {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    p = sub.add_parser("backends", help="list backends: name, version, availability, capabilities")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.set_defaults(func=_cmd_backends)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except ValueError as exc:
        print(f"spikeloom {args.command}: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
