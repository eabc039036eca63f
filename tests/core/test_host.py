"""The plugin host: building the pluggy manager, loading entry points, surviving broken plugins."""

from __future__ import annotations

import warnings
from types import SimpleNamespace

import pluggy
import pytest

import spikeloom as sl
import spikeloom.host as host_mod
from spikeloom.hookspecs import hookimpl
from spikeloom.host import BLOCKLIST_ENV, PluginLoadWarning
from spikeloom_numpy import NumpyBackend


def infos_by_name():
    return {i.name: i for i in sl.list_backends()}


@pytest.fixture
def no_warnings():
    with warnings.catch_warnings():
        warnings.simplefilter("error", PluginLoadWarning)
        yield


# -- the real host ---------------------------------------------------------------------------------


def test_plugin_manager_is_cached_and_refreshable(fake_plugins):
    fake_plugins()
    pm = sl.get_plugin_manager()
    assert isinstance(pm, pluggy.PluginManager) and pm.project_name == "spikeloom"
    assert sl.get_plugin_manager() is pm
    fresh = sl.get_plugin_manager(refresh=True)
    assert fresh is not pm and sl.get_plugin_manager() is fresh
    assert fresh.has_plugin("numpy")
    assert fresh.hook.spikeloom_register_backends.spec is not None


def test_the_numpy_reference_is_always_listed():
    info = infos_by_name()["numpy"]
    assert info.available and info.reason == ""
    assert info.version == sl.__version__ and info.plugin == "numpy"
    assert "float64" in info.capabilities.dtypes
    assert isinstance(sl.get_backend("numpy"), NumpyBackend)
    assert sl.get_backend("numpy") is sl.get_backend("numpy")


def test_unknown_backend():
    with pytest.raises(ValueError, match=r"unknown backend 'nope'; registered backends are \[.*'numpy'.*\]"):
        sl.get_backend("nope")


def test_best_backend_is_the_reference_when_alone(fake_plugins):
    fake_plugins()
    assert sl.best_backend().name == "numpy"
    assert [i.name for i in sl.list_backends()] == ["numpy"]


def test_list_backends_refresh_rebuilds(fake_plugins, monkeypatch, toy_backend, make_plugin):
    fake_plugins()
    assert "toy" not in infos_by_name()
    ep = SimpleNamespace(name="toy_plugin", load=lambda: make_plugin(toy_backend("toy")))
    monkeypatch.setattr(host_mod, "entry_points", lambda *, group: [ep])
    assert "toy" not in {i.name for i in sl.list_backends()}  # still cached
    assert "toy" in {i.name for i in sl.list_backends(refresh=True)}


# -- third-party plugins ----------------------------------------------------------------------------


def test_a_good_plugin_registers_its_backends(fake_plugins, toy_backend, make_plugin, no_warnings):
    toy = toy_backend("toy", priority=5, caps=sl.Capabilities(dtypes={"float64"}))
    eps = fake_plugins(toy_plugin=make_plugin(toy))
    assert eps["toy_plugin"].loaded
    assert sl.get_backend("toy") is toy
    info = infos_by_name()["toy"]
    assert (info.version, info.plugin, info.available, info.priority) == ("1.2.3", "toy_plugin", True, 5)
    assert info.capabilities == sl.Capabilities(dtypes={"float64"}) and info.description == "toy backend toy"
    assert sl.best_backend() is toy
    assert sl.get_plugin_manager().has_plugin("toy_plugin")


def test_best_backend_skips_unavailable_ones(fake_plugins, toy_backend, make_plugin):
    fake_plugins(
        p=make_plugin(
            toy_backend("fast", priority=10, available=False, reason="fast: no device"),
            toy_backend("mid", priority=3),
            toy_backend("slow", priority=-1),
        )
    )
    assert sl.best_backend().name == "mid"
    info = infos_by_name()["fast"]
    assert not info.available and info.reason == "fast: no device"
    with pytest.raises(sl.BackendUnavailable, match=r"backend 'fast' is not available: fast: no device"):
        sl.get_backend("fast").compile(sl.Network([sl.SpikeInput("i", 1)]))


def test_an_availability_probe_that_raises_is_reported(fake_plugins, toy_backend, make_plugin):
    fake_plugins(p=make_plugin(toy_backend("flaky", priority=10, available=OSError("driver crashed"))))
    info = infos_by_name()["flaky"]
    assert not info.available
    assert info.reason == "availability check failed: OSError: driver crashed"
    assert sl.best_backend().name == "numpy"


def test_a_plugin_that_fails_to_import_becomes_a_warning(fake_plugins):
    with pytest.warns(
        PluginLoadWarning,
        match=r"spikeloom plugin 'broken': plugin failed to load: ImportError: no module named fancylib",
    ):
        fake_plugins(broken=ImportError("no module named fancylib"))
    infos = infos_by_name()
    assert infos["numpy"].available
    failed = infos["broken"]
    assert not failed.available and failed.capabilities is None and failed.version == "?"
    assert failed.reason == "plugin failed to load: ImportError: no module named fancylib"
    with pytest.raises(sl.BackendUnavailable, match=r"backend 'broken': plugin failed to load: ImportError"):
        sl.get_backend("broken")
    assert not sl.get_plugin_manager().has_plugin("broken")


def test_one_broken_plugin_does_not_stop_the_others(fake_plugins, toy_backend, make_plugin):
    with pytest.warns(PluginLoadWarning, match="'aaa'"):
        fake_plugins(aaa=RuntimeError("boom"), zzz=make_plugin(toy_backend("zed")))
    assert sl.get_backend("zed").name == "zed"
    assert sl.get_backend("numpy").name == "numpy"


def test_a_plugin_whose_hook_raises(fake_plugins, toy_backend, make_plugin):
    plugin = make_plugin(toy_backend("half"), then_raise=RuntimeError("cannot finish"))
    with pytest.warns(
        PluginLoadWarning, match=r"spikeloom plugin 'bad_hook': plugin failed to load: RuntimeError: cannot finish"
    ):
        fake_plugins(bad_hook=plugin)
    infos = infos_by_name()
    assert "half" not in infos  # what it added before failing is withdrawn
    assert not infos["bad_hook"].available
    with pytest.raises(ValueError, match=r"unknown backend 'half'"):
        sl.get_backend("half")


def test_a_plugin_registering_a_taken_name(fake_plugins, toy_backend, make_plugin):
    with pytest.warns(
        PluginLoadWarning,
        match=r"backend 'numpy' registered by plugin 'impostor' is already registered by plugin 'numpy'",
    ):
        fake_plugins(impostor=make_plugin(toy_backend("extra"), toy_backend("numpy")))
    assert isinstance(sl.get_backend("numpy"), NumpyBackend)
    infos = infos_by_name()
    assert "extra" not in infos
    assert infos["numpy"].plugin == "numpy"
    assert not infos["impostor"].available and "already registered" in infos["impostor"].reason


def test_two_plugins_registering_the_same_name_first_wins(fake_plugins, toy_backend, make_plugin):
    first, second = toy_backend("shared", version="1"), toy_backend("shared", version="2")
    with pytest.warns(
        PluginLoadWarning, match=r"backend 'shared' registered by plugin 'bbb' is already registered by plugin 'aaa'"
    ):
        fake_plugins(bbb=make_plugin(second), aaa=make_plugin(first))
    assert sl.get_backend("shared") is first
    assert infos_by_name()["shared"].plugin == "aaa"


@pytest.mark.parametrize(
    "bad, message",
    [
        (object(), r"registry.add expects a spikeloom.Backend instance"),
        ("numpy", r"registry.add expects a spikeloom.Backend instance"),
    ],
)
def test_the_registry_refuses_non_backends(fake_plugins, make_plugin, bad, message):
    with pytest.warns(PluginLoadWarning, match=message):
        fake_plugins(p=make_plugin(bad))
    assert not infos_by_name()["p"].available


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(name="Bad Name"), r"backend name must be lower-case letters, digits, '_' or '-', got 'Bad Name'"),
        (dict(name="gpu\n"), r"backend name must be lower-case letters"),
        (dict(name=""), r"backend name must be lower-case letters"),
        (dict(name="9lives"), r"backend name must be lower-case letters"),
        (dict(name="ok", version=""), r"backend 'ok': version must be a non-empty string"),
        (dict(name="ok", version=2), r"backend 'ok': version must be a non-empty string"),
        (
            dict(name="ok", caps={"dtypes": ["float32"]}),
            r"backend 'ok': capabilities\(\) must return spikeloom.Capabilities, got dict",
        ),
    ],
)
def test_the_registry_validates_backends(fake_plugins, toy_backend, make_plugin, kwargs, message):
    with pytest.warns(PluginLoadWarning, match=message):
        fake_plugins(p=make_plugin(toy_backend(**kwargs)))
    assert [i.name for i in sl.list_backends() if i.available] == ["numpy"]


def test_a_plugin_with_an_unknown_hook_is_unloaded(fake_plugins, toy_backend):
    class Typo:
        @hookimpl
        def spikeloom_register_backend(self, registry):  # missing the final 's'
            registry.add(toy_backend("typo"))

    with pytest.warns(
        PluginLoadWarning, match=r"spikeloom plugin 'typo_plugin'.*unknown hook 'spikeloom_register_backend'"
    ):
        fake_plugins(typo_plugin=Typo())
    assert not sl.get_plugin_manager().has_plugin("typo_plugin")
    assert infos_by_name()["numpy"].available
    assert not infos_by_name()["typo_plugin"].available


def test_a_plugin_with_a_wrong_hook_signature_is_unloaded(fake_plugins):
    class WrongArgs:
        @hookimpl
        def spikeloom_register_backends(self, registry, config):
            raise AssertionError("never called")

    with pytest.warns(
        PluginLoadWarning, match=r"spikeloom plugin 'wrong_args': plugin failed to load: PluginValidationError"
    ):
        fake_plugins(wrong_args=WrongArgs())
    assert not sl.get_plugin_manager().has_plugin("wrong_args")
    assert infos_by_name()["numpy"].available


def test_an_entry_point_named_like_the_reference_is_ignored(fake_plugins, toy_backend, make_plugin, no_warnings):
    eps = fake_plugins(numpy=make_plugin(toy_backend("numpy")))
    assert not eps["numpy"].loaded
    assert isinstance(sl.get_backend("numpy"), NumpyBackend)


# -- the blocklist -----------------------------------------------------------------------------------


def test_blocked_plugins_are_not_loaded(fake_plugins, monkeypatch, toy_backend, make_plugin, no_warnings):
    monkeypatch.setenv(BLOCKLIST_ENV, " fancy , other,")
    eps = fake_plugins(fancy=RuntimeError("must not be loaded"), kept=make_plugin(toy_backend("kept")))
    assert not eps["fancy"].loaded and eps["kept"].loaded
    pm = sl.get_plugin_manager()
    assert pm.is_blocked("fancy") and not pm.has_plugin("fancy")
    assert "fancy" not in infos_by_name()
    assert sl.get_backend("kept").name == "kept"
    with pytest.raises(ValueError, match=rf"backend 'fancy' is disabled by {BLOCKLIST_ENV}="):
        sl.get_backend("fancy")


def test_the_reference_cannot_be_blocked(fake_plugins, monkeypatch):
    monkeypatch.setenv(BLOCKLIST_ENV, "numpy")
    fake_plugins()
    assert isinstance(sl.get_backend("numpy"), NumpyBackend)
    assert not sl.get_plugin_manager().is_blocked("numpy")


def test_the_blocklist_needs_a_refresh(fake_plugins, monkeypatch, toy_backend, make_plugin):
    fake_plugins(fancy=make_plugin(toy_backend("fancy")))
    monkeypatch.setenv(BLOCKLIST_ENV, "fancy")
    assert sl.get_backend("fancy").name == "fancy"  # cached host
    sl.get_plugin_manager(refresh=True)
    with pytest.raises(ValueError, match="disabled by"):
        sl.get_backend("fancy")


def test_fixture_restores_the_host():
    # runs after the tests above: the fake plugins are gone from the shared host
    names = {i.name for i in sl.list_backends()}
    assert "numpy" in names
    assert not names & {"toy", "fancy", "kept", "shared", "broken", "zed", "half", "impostor"}
