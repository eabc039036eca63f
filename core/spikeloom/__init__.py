"""spikeloom: a plugin-based, backend-agnostic simulation and training core for spiking networks.

Describe a network with populations and connections, pick a backend, compile, run::

    import spikeloom as sl
    net = sl.Network([sl.SpikeInput("in", 100), sl.LIF("hidden", 64, tau_syn=5.0), sl.LI("out", 10)],
                     [sl.Connection("in", "hidden"), sl.Connection("hidden", "out")], seed=1)
    compiled = sl.get_backend("numpy").compile(net, dtype="float64")
    rec = compiled.simulate(x)          # x: [T, B, 100] spikes -> {"hidden": {"V": [T, B, 64], ...}, ...}
"""

from __future__ import annotations

__version__ = "0.1.0"

from .backend import Availability, Backend, Compiled, CompileRequest
from .capabilities import Capabilities
from .checkpoint import load_checkpoint, save_checkpoint
from .connections import Connection
from .connectivity import Dense, Explicit, FixedProbability
from .distributions import Gamma, Normal, Uniform
from .errors import BackendUnavailable, SpikeloomError, UnsupportedFeature
from .fluctuation import FluctuationConfig, FluctuationReport, fluctuation_init
from .heterogeneity import Heterogeneity, apply_heterogeneity, heterogeneous_network
from .host import best_backend, compile_on_best, get_backend, get_plugin_manager, list_backends
from .initializers import KaimingUniform
from .network import Network
from .optim import Adam
from .populations import ALIF, LI, LIF, SpikeInput
from .readout import Readout
from .rules import BPTT, EProp
from .surrogates import Atan, Sigmoid, SuperSpike, Triangle
from .training import Callback, NonFiniteLossError, Trainer

__all__ = [
    "__version__",
    "FluctuationConfig",
    "FluctuationReport",
    "Heterogeneity",
    "apply_heterogeneity",
    "fluctuation_init",
    "heterogeneous_network",
    "ALIF",
    "Adam",
    "Atan",
    "BPTT",
    "Callback",
    "NonFiniteLossError",
    "Trainer",
    "load_checkpoint",
    "save_checkpoint",
    "EProp",
    "Readout",
    "Sigmoid",
    "SuperSpike",
    "Triangle",
    "LI",
    "LIF",
    "Availability",
    "Backend",
    "BackendUnavailable",
    "Capabilities",
    "CompileRequest",
    "Compiled",
    "Connection",
    "Dense",
    "Explicit",
    "FixedProbability",
    "Gamma",
    "KaimingUniform",
    "Network",
    "Normal",
    "SpikeInput",
    "SpikeloomError",
    "Uniform",
    "UnsupportedFeature",
    "best_backend",
    "compile_on_best",
    "get_backend",
    "get_plugin_manager",
    "list_backends",
]
