"""``spikeloom conformance NAME [--bench] [--json FILE]``: the kit from the command line.

Only :mod:`argparse` is imported here; the catalogue, the corpus and the bench load when the
command runs.
"""

from __future__ import annotations

import argparse
import json
import sys

__all__ = ["add_subparser", "add_bench_subparser", "run", "main"]

DTYPES = ("float32", "float64")
#: the bench sizes (spikeloom_conformance.bench.SIZES)
SIZE_NAMES = ("small", "medium", "shd")
#: the bench workloads (spikeloom_conformance.bench.WORKLOADS)
WORKLOAD_NAMES = ("inference", "bptt_train", "eprop_train")


def add_subparser(subparsers) -> argparse.ArgumentParser:
    """Add the ``conformance`` command to an ``argparse`` subparsers object."""
    p = subparsers.add_parser(
        "conformance",
        help="check a backend against the NumPy reference (and --bench its speed)",
        description=(
            "Run the conformance kit on a backend: every check its declared capabilities call for, against the "
            "float64 NumPy reference. Undeclared capabilities are skipped (the capability is named), the backend's "
            "known failures are strict xfails. Exit status 0 when nothing failed, 1 otherwise."
        ),
    )
    p.add_argument("backend", nargs="*", metavar="NAME", help="registered backend name(s), or module:attribute")
    p.add_argument("--all", action="store_true", help="every available backend that declares the cpu device")
    p.add_argument("--dtype", action="append", choices=DTYPES, help="dtypes to check (repeatable; default both)")
    p.add_argument("--device", help="device to run on (default: cpu if declared)")
    p.add_argument("--check", action="append", metavar="NAME", help="only this check (repeatable; see --list)")
    p.add_argument("-k", "--select", action="append", metavar="GLOB", help="only items whose id matches (repeatable)")
    p.add_argument("--list", action="store_true", help="list the items (and why some are skipped) and exit")
    p.add_argument("--bench", action="store_true", help="also run the speed suite")
    p.add_argument("--bench-only", action="store_true", help="run the speed suite only")
    p.add_argument("--size", choices=SIZE_NAMES, default="small", help="bench workload size (default: small)")
    p.add_argument("--repeats", type=int, default=3, metavar="N", help="timed repeats per bench workload (default 3)")
    p.add_argument(
        "--workload",
        action="append",
        choices=WORKLOAD_NAMES,
        help="bench only this workload (repeatable; default all)",
    )
    p.add_argument("--json", metavar="FILE", help="write the results as JSON ('-' for stdout)")
    p.add_argument("-v", "--verbose", action="store_true", help="print every item as it runs")
    p.set_defaults(func=run)
    return p


def add_bench_subparser(subparsers) -> argparse.ArgumentParser:
    """Add ``spikeloom bench [NAME ...]``: the speed suite alone (``conformance --bench-only``),
    on every available CPU backend when no name is given."""
    p = subparsers.add_parser(
        "bench",
        help="measure backends' speed on standard workloads (table, optional JSON)",
        description=(
            "Time standard workloads (SHD-shaped inference, BPTT and e-prop training steps) on backends and print "
            "timesteps/s, samples/s, peak memory and the ratio to the NumPy reference measured in the same run."
        ),
    )
    p.add_argument("backend", nargs="*", metavar="NAME", help="backend name(s); default: every available CPU backend")
    p.add_argument("--device", help="device to run on (default: cpu if declared)")
    p.add_argument("--size", choices=SIZE_NAMES, default="small", help="workload size (default: small)")
    p.add_argument("--repeats", type=int, default=3, metavar="N", help="timed repeats per workload (default 3)")
    p.add_argument("--workload", action="append", choices=WORKLOAD_NAMES, help="only this workload (repeatable)")
    p.add_argument("--json", metavar="FILE", help="write the results as JSON ('-' for stdout)")

    def run_bench_only(args: argparse.Namespace) -> int:
        args.all = not args.backend
        args.bench = args.bench_only = True
        args.list, args.dtype, args.check, args.select, args.verbose = False, None, None, None, False
        return run(args)

    p.set_defaults(func=run_bench_only)
    return p


def _targets(args) -> list[str]:
    import spikeloom as sl

    names = list(args.backend)
    if args.all:
        for info in sl.list_backends():
            if info.available and info.capabilities is not None and "cpu" in info.capabilities.devices:
                if info.name not in names:
                    names.append(info.name)
    if not names:
        raise ValueError("name a backend (see `spikeloom backends`) or give --all")
    return names


def _print_header(backend, device, dtypes, out) -> None:
    from .tolerances import PROFILES

    caps = backend.capabilities().to_dict()
    print(f"== {backend.name} {backend.version} on {device}", file=out)
    shown = " ".join(f"{k}={','.join(v) if isinstance(v, list) else v}" for k, v in caps.items())
    print(f"   capabilities: {shown}", file=out)
    for d in dtypes:
        print(f"   tolerance {PROFILES[d].describe()}", file=out)


def _summary(report, out, verbose: bool) -> None:
    from collections import Counter, defaultdict

    rows = defaultdict(Counter)
    seconds = defaultdict(float)
    for r in report.results:
        rows[r.check][r.outcome] += 1
        seconds[r.check] += r.seconds
    width = max([len(k) for k in rows] + [5])
    print(f"   {'check':<{width}}  passed  failed  skipped  xfailed  seconds", file=out)
    for check, c in rows.items():
        print(
            f"   {check:<{width}}  {c['passed']:>6}  {c['failed']:>6}  {c['skipped']:>7}  {c['xfailed']:>7}  {seconds[check]:>7.2f}",
            file=out,
        )
    skips = Counter(r.message for r in report.skipped)
    if skips:
        print("   skipped:", file=out)
        for reason, n in skips.most_common():
            print(f"     {n:>4} x {reason}", file=out)
    for r in report.xfailed if verbose else ():
        print(f"   XFAIL {r.id}: {r.message}", file=out)
    for r in report.failed:
        print(f"   FAILED {r.id}:\n     " + r.message.replace("\n", "\n     "), file=out)
    c = report.counts()
    print(
        f"   {c['passed']} passed, {c['failed']} failed, {c['skipped']} skipped, {c['xfailed']} xfailed "
        f"in {report.seconds:.1f} s",
        file=out,
    )


def run(args: argparse.Namespace) -> int:
    """Run the command; 0 when every selected backend passed (skips and xfails allowed)."""
    from .bench import format_table, run_bench
    from .runner import check_backend, default_device, generate, resolve_backend

    out = sys.stdout if args.json != "-" else sys.stderr
    dtypes = tuple(args.dtype or DTYPES)
    payload: dict = {"conformance": [], "bench": []}
    ok = True
    for name in _targets(args):
        backend = resolve_backend(name)
        device = args.device or default_device(backend.capabilities())
        _print_header(backend, device, dtypes, out)
        if args.list:
            for item in generate(backend, dtypes=dtypes, device=device, checks=args.check, select=args.select):
                status = f"SKIP ({item.skip})" if item.skip else ("XFAIL" if item.xfail else "run")
                print(f"   {item.id}  {status}", file=out)
            continue
        if not args.bench_only:

            def progress(r, out=out):
                if args.verbose:
                    print(
                        f"   {r.outcome.upper():<8} {r.id}"
                        + (f"  ({r.message})" if r.message and r.outcome != "failed" else ""),
                        file=out,
                    )
                    out.flush()

            report = check_backend(
                backend, dtypes=dtypes, device=device, checks=args.check, select=args.select, progress=progress
            )
            _summary(report, out, args.verbose)
            payload["conformance"].append(report.to_dict())
            ok = ok and report.ok
        if args.bench or args.bench_only:
            results = run_bench(backend, size=args.size, device=device, repeats=args.repeats, workloads=args.workload)
            print(format_table(results), file=out)
            payload["bench"].extend(r.to_dict() for r in results)
    if args.json:
        text = json.dumps(payload, indent=1, default=str)
        if args.json == "-":
            print(text)
        else:
            with open(args.json, "w", encoding="utf-8") as f:
                f.write(text + "\n")
    return 0 if ok else 1


def main(argv: list[str] | None = None) -> int:
    """``python -m spikeloom_conformance ...`` (the same as ``spikeloom conformance ...``)."""
    parser = argparse.ArgumentParser(prog="spikeloom")
    sub = parser.add_subparsers(dest="command")
    add_subparser(sub)
    args = parser.parse_args(["conformance", *(sys.argv[1:] if argv is None else argv)])
    try:
        return args.func(args)
    except ValueError as exc:
        print(f"spikeloom conformance: error: {exc}", file=sys.stderr)
        return 2
