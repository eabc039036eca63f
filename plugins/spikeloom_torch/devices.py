"""Which code paths a device takes.

On the CPU the backend keeps sparse spikes as positions on the host, runs the compiled (Numba)
kernels and evaluates some element-wise passes a block of steps at a time; on any other device
(CUDA) it takes dense torch operations only. Every such choice asks :func:`host_paths`, so that
the tests can run the paths a GPU takes on the CPU (``tests/plugins/torch/test_device_paths.py``).
"""

from __future__ import annotations

import torch

__all__ = ["host_paths"]


def host_paths(device: torch.device) -> bool:
    """Whether tensors on ``device`` take the CPU-only paths (host-side spike positions, compiled
    kernels, blocked element-wise passes): True on the CPU, False elsewhere."""
    return device.type == "cpu"
