"""The kit's pytest front end, loaded through the ``pytest11`` entry point.

Inert unless ``--spikeloom-backend NAME`` is given: it then parametrizes every test that asks for
the ``spikeloom_item`` fixture (the kit's own ``test_conformance``, collected by
``pytest --pyargs spikeloom_conformance``) over the catalogue's items for that backend, with
undeclared capabilities as skips naming the capability and the backend's known failures as strict
xfails, and adds the backend, its capabilities and the tolerance profiles to the report header.
Nothing heavy is imported until the option is used.
"""

from __future__ import annotations

import pytest

_NO_BACKEND = "the conformance kit runs only with --spikeloom-backend NAME (see docs/backend-guide.md)"


def pytest_addoption(parser):
    group = parser.getgroup("spikeloom", "spikeloom conformance kit")
    group.addoption(
        "--spikeloom-backend",
        metavar="NAME",
        default=None,
        help="run the spikeloom conformance kit on this backend (a registered name, or module:attribute)",
    )
    group.addoption(
        "--spikeloom-dtype",
        action="append",
        choices=("float32", "float64"),
        default=None,
        help="dtypes to check (repeatable; default both, undeclared ones are skipped)",
    )
    group.addoption("--spikeloom-device", metavar="DEVICE", default=None, help="device (default: cpu if declared)")
    group.addoption(
        "--spikeloom-check", action="append", metavar="NAME", default=None, help="run only these checks (repeatable)"
    )


def _backend_name(config):
    return config.getoption("spikeloom_backend", default=None)


def _backend(config):
    cached = getattr(config, "_spikeloom_backend", None)
    if cached is None:
        from .runner import resolve_backend

        cached = resolve_backend(_backend_name(config))
        config._spikeloom_backend = cached
    return cached


def _items(config):
    cached = getattr(config, "_spikeloom_items", None)
    if cached is None:
        from .runner import generate

        cached = generate(
            _backend(config),
            dtypes=config.getoption("spikeloom_dtype"),
            device=config.getoption("spikeloom_device"),
            checks=config.getoption("spikeloom_check"),
        )
        config._spikeloom_items = cached
    return cached


def pytest_report_header(config):
    if not _backend_name(config):
        return None
    from .runner import default_device
    from .tolerances import PROFILES

    backend = _backend(config)
    caps = backend.capabilities()
    device = config.getoption("spikeloom_device") or default_device(caps)
    items = _items(config)
    skipped = sum(1 for i in items if i.skip)
    xfail = sum(1 for i in items if i.xfail)
    lines = [f"spikeloom backend: {backend.name} {backend.version} ({type(backend).__module__}), device {device}"]
    shown = []
    for key, value in caps.to_dict().items():
        shown.append(f"{key}={','.join(value) if isinstance(value, list) else value}")
    lines.append("spikeloom capabilities: " + " ".join(shown))
    for dtype in config.getoption("spikeloom_dtype") or PROFILES:
        lines.append("spikeloom tolerance " + PROFILES[dtype].describe())
    lines.append(f"spikeloom items: {len(items)} ({skipped} skipped by capabilities, {xfail} known failures)")
    return lines


def pytest_generate_tests(metafunc):
    if "spikeloom_item" not in metafunc.fixturenames:
        return
    if not _backend_name(metafunc.config):
        metafunc.parametrize(
            "spikeloom_item", [pytest.param(None, id="no-backend", marks=pytest.mark.skip(reason=_NO_BACKEND))]
        )
        return
    params = []
    for item in _items(metafunc.config):
        marks = []
        if item.skip:
            marks.append(pytest.mark.skip(reason=item.skip))
        elif item.xfail:
            marks.append(pytest.mark.xfail(strict=True, reason=f"known failure: {item.xfail}"))
        params.append(pytest.param(item, id=item.id, marks=marks))
    metafunc.parametrize("spikeloom_item", params)


@pytest.fixture(scope="session")
def spikeloom_backend(request):
    """The backend under test (``--spikeloom-backend``)."""
    if not _backend_name(request.config):
        pytest.skip(_NO_BACKEND)
    return _backend(request.config)


def run_item_in_pytest(item, backend, record_property=None) -> None:
    """Run one item the pytest way: a mismatch fails with the check's message (no traceback into
    the kit), a check that cannot run skips."""
    from .catalogue import CheckSkipped

    try:
        note = item.run(backend)
    except CheckSkipped as exc:
        pytest.skip(str(exc))
    except AssertionError as exc:
        pytest.fail(str(exc) or "AssertionError", pytrace=False)
    if note and record_property is not None:
        record_property("note", note)
