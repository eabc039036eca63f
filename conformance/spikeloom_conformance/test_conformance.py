"""What ``pytest --pyargs spikeloom_conformance --spikeloom-backend NAME`` runs: one test,
parametrized by the kit's pytest plugin over every check x case x dtype the backend calls for."""

from spikeloom_conformance.pytest_plugin import run_item_in_pytest


def test_conformance(spikeloom_item, spikeloom_backend, record_property):
    run_item_in_pytest(spikeloom_item, spikeloom_backend, record_property)
