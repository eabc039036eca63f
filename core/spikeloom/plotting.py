"""PNG figures of a training run: learning curves, spike rasters and time-constant histograms (matplotlib, Agg,
imported lazily)."""

from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np

__all__ = ["plot_history", "plot_raster", "plot_time_constants"]


def _pyplot():
    try:
        import matplotlib
    except ImportError:  # pragma: no cover - depends on the environment
        raise ImportError("plots need matplotlib: pip install 'spikeloom[train]'") from None
    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    return plt


def plot_history(history: Sequence[dict], path: str | os.PathLike, *, test_accuracy: float | None = None) -> None:
    """Loss and accuracy per epoch (train and, where present, validation) side by side; a dashed
    line marks ``test_accuracy``."""
    plt = _pyplot()
    from matplotlib.ticker import MaxNLocator

    epochs = [h["epoch"] for h in history]
    fig, (ax_loss, ax_acc) = plt.subplots(1, 2, figsize=(10, 4))
    for ax, key, label in ((ax_loss, "loss", "loss"), (ax_acc, "accuracy", "accuracy")):
        ax.plot(epochs, [h[f"train_{key}"] for h in history], "o-", label="train")
        val = [h.get(f"val_{key}") for h in history]
        if any(v is not None for v in val):
            ax.plot(epochs, [np.nan if v is None else v for v in val], "s-", label="validation")
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
    if test_accuracy is not None:
        ax_acc.axhline(test_accuracy, color="k", ls="--", lw=1, label=f"test {test_accuracy:.3f}")
    ax_acc.set_ylim(0, 1.02)
    ax_loss.legend()
    ax_acc.legend(loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def plot_raster(
    spikes: np.ndarray,
    path: str | os.PathLike,
    *,
    inputs: np.ndarray | None = None,
    titles: Sequence[str] | None = None,
    dt: float = 1.0,
) -> None:
    """Spike rasters of ``spikes`` ``[T, B, N]`` (one column per example), with the input spikes
    ``[T, B, N_in]`` above them when given; time in ms (``dt`` per step)."""
    plt = _pyplot()
    spikes = np.asarray(spikes)
    T, B, _ = spikes.shape
    rows = 2 if inputs is not None else 1
    fig, axes = plt.subplots(rows, B, figsize=(3.2 * B, 2.6 * rows), squeeze=False, sharex=True)
    for b in range(B):
        panels = [(axes[-1, b], spikes[:, b], "hidden neuron")]
        if inputs is not None:
            panels.insert(0, (axes[0, b], np.asarray(inputs)[:, b], "input neuron"))
        for ax, z, ylabel in panels:
            t, n = np.nonzero(z)
            ax.scatter(t * dt, n, s=2, c="k", marker="|", linewidths=0.8)
            ax.set_xlim(-0.5 * dt, T * dt)
            ax.set_ylim(-0.5, z.shape[1] - 0.5)
            if b == 0:
                ax.set_ylabel(ylabel)
        axes[-1, b].set_xlabel("time (ms)")
        if titles is not None and b < len(titles):
            axes[0, b].set_title(titles[b], fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def plot_time_constants(before, after, path: str | os.PathLike, *, dt: float = 1.0, bins: int = 30) -> None:
    """Histograms of ``tau_mem``/``tau_syn`` (ms), one panel per population and time constant,
    before and after training.

    ``before``, ``after``: parameter dicts such as ``Compiled.get_params()`` gives them
    (``"<pop>.alpha_mem"``/``"<pop>.alpha_syn"`` decay factors, converted with ``tau = -dt/ln(alpha)``,
    ``dt`` in ms) or with ``"<pop>.tau_mem"``/``"<pop>.tau_syn"`` in ms; see
    :func:`spikeloom.heterogeneity.time_constants`.
    """
    from .heterogeneity import time_constants

    taus = {"before": time_constants(before, dt), "after": time_constants(after, dt)}
    keys = sorted(set(taus["before"]) | set(taus["after"]))
    if not keys:
        raise ValueError(
            "plot_time_constants: no '<pop>.alpha_mem', '<pop>.alpha_syn', '<pop>.tau_mem' or '<pop>.tau_syn' "
            "entries in either parameter dict; train with train_tau_mem/train_tau_syn or pass time constants"
        )
    plt = _pyplot()
    fig, axes = plt.subplots(1, len(keys), figsize=(3.6 * len(keys), 3.0), squeeze=False)
    for ax, key in zip(axes[0], keys, strict=True):
        values = [v for v in (taus["before"].get(key), taus["after"].get(key)) if v is not None]
        edges = np.histogram_bin_edges(np.concatenate(values), bins=bins)
        for label, style in (("before", {"color": "0.6"}), ("after", {"color": "C0", "alpha": 0.6})):
            if key in taus[label]:
                ax.hist(taus[label][key], bins=edges, label=label, **style)
        ax.set_title(f"{key[0]} {key[1]}", fontsize=9)
        ax.set_xlabel(f"{key[1]} (ms)")
        ax.set_ylabel("neurons")
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
