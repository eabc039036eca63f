"""The heavy parts of a chunk of chunked e-prop (:mod:`.eprop_chunked`) compiled with Numba, on
the CPU (kernels in :mod:`.chunk_kernels`).

:func:`chunk_backward` runs the chunk's backward recursion in one call (the examples shared out
between the threads) instead of eight torch operations per step.

:func:`chunk_pass` makes one pass over a connection's per-synapse states ``S``
``[B, N_pre, states, N_post]`` (0.5 GB for B = 256 and 956 presynaptic neurons in float32), where
the torch operations make four to six: row ``(b, i)`` at a time, the threads sharing out the
examples ``b``, each adding to its own copy of the gradient::

    grad[i]    += sum_n M0[b, n] * S[b, i, n]           (the states' share, S before the chunk)
    S[b, i, n]  = sum_m Mix[b, n, m] * S[b, i, m]       (carried through the chunk)
    S[b, i, n] += sum_k p[k, b, i] coef[k, 1 + n, b] + sum_x E[x, b, i] Eb[x, n, b]
    grad[i]    += sum_k p[k, b, i] coef[k, 0, b]

(all per postsynaptic neuron ``j``; ``p`` the chunk's delivered spikes, given by the rows and
steps of their non-zero entries).  The sums are those of the torch path in
:meth:`.chunk_spikes.ChunkSpikes.add_to_states` and :meth:`~.chunk_spikes.ChunkSpikes.weight_grad`,
in another order.  One pass serves a group of up to :data:`GROUP` chunks: the caller refers the
earlier chunks' spike coefficients to the group's end first (:func:`fold_coefs`), and the pass adds
every chunk's spikes with its own coefficients.

:func:`surrogate_` computes a chunk's surrogate derivative in one pass, :func:`filter_ends` the
presynaptic traces a chunk's spikes leave at its end.

Numba is optional (the ``torch`` extra installs it): without it the torch operations run.  It is
imported only when a chunk first runs compiled (:func:`use`), so BPTT, small networks and
``import spikeloom`` never load it.
"""

from __future__ import annotations

import importlib.util

import numpy as np
import torch

from . import devices

__all__ = [
    "AVAILABLE",
    "GROUP",
    "MIN_WORK",
    "SPARSE_BELOW",
    "SURROGATES",
    "chunk_backward",
    "chunk_pass",
    "filter_ends",
    "fold_coefs",
    "has_surrogate",
    "numba_threads",
    "row_starts",
    "surrogate_",
    "use",
]

#: whether the compiled kernels can run (Numba installed)
AVAILABLE = importlib.util.find_spec("numba") is not None

#: the smallest population (batch size x neurons) the kernels run for: below it the torch
#: operations are as fast, and a small network need not load Numba (about 160 MiB, 1 s)
MIN_WORK = 1 << 13

#: the compiled pass takes a chunk's spikes as positions up to this fraction of non-zero entries
#: (more than :data:`.spikes.SPARSE_BELOW`): its cost is one pass over the states plus a few row
#: additions per spike, where the torch operations' dense products make several passes
SPARSE_BELOW = 0.25

#: chunks whose pass over the states is made in one go (:func:`chunk_pass`): each pass costs about
#: as much as a chunk's spikes, and the group's coefficient buffers ``[K, 1 + n, B, J]`` are kept
#: until it runs (1: one pass per chunk)
GROUP = 2


def use(batch: int, n: int, device: torch.device) -> bool:
    """Whether a trained population of ``n`` neurons at batch size ``batch`` runs its chunks compiled."""
    return AVAILABLE and devices.host_paths(device) and batch * n >= MIN_WORK


def numba_threads(limit: int | None = None) -> int:
    """Set Numba's threads for the next kernel to torch's count (at most Numba's pool and
    ``limit``, at least 1) and return it."""
    import numba

    n = max(1, min(torch.get_num_threads(), numba.config.NUMBA_NUM_THREADS, limit or torch.get_num_threads()))
    numba.set_num_threads(n)
    return n


def chunk_pass(
    S: torch.Tensor | None,
    dims: tuple[int, int, int, int],
    fresh: bool,
    update: bool,
    grad: torch.Tensor,
    M0: torch.Tensor,
    Mix: torch.Tensor,
    coef: torch.Tensor,
    spikes: list,
    E: torch.Tensor,
    Eb: torch.Tensor,
    redo: dict | None = None,
) -> None:
    """One pass over the states for a group of ``G`` chunks, in place on ``S`` and ``grad``.

    ``dims`` ``(B, I, n, J)``; ``S`` ``[B, I, n, J]`` the states before the group (``fresh``: all
    zero, not read; None when neither read nor updated), replaced by those after it when
    ``update``; ``grad`` ``[I, J]``; ``M0`` ``[B, n, J]`` and ``Mix`` ``[B, n, n, J]`` the
    coefficients of the states before the group (read unless ``fresh``); per chunk ``h``, its
    spikes ``spikes[h]`` (a :class:`.chunk_spikes.ChunkSpikes` kept as positions, ``[K_h, B, I]``)
    and ``coef[h, :K_h]`` ``[K_h, 1 + n, B, J]`` (``coef`` ``[G, K, 1 + n, B, J]``) their
    coefficients (row 0 for the gradient, rows ``1 + n`` for the states after the group, read
    only when ``update``); each thread sorts its examples' spikes by row itself; ``E`` ``[X, B, I]`` the
    presynaptic traces before the group and ``Eb`` ``[X, n, B, J]`` their coefficients.
    With ``redo`` (the arguments of :func:`chunk_backward` from ``Psi`` to ``seeds``, by name, for
    the last chunk), ``coef`` holds the first ``G - 1`` chunks only: the last chunk's coefficients
    are computed again, one example at a time, into a scratch of each thread (``[K, 1 + n, J]``,
    which stays in the caches) instead of being written to and read back from a
    ``[K, 1 + n, B, J]`` buffer.
    All tensors are contiguous CPU tensors of one floating dtype.
    """
    B = dims[0]
    dtype = grad.numpy().dtype
    from .chunk_kernels import pass_rows

    K = coef.shape[1]
    bounds = np.empty((len(spikes), K * B + 1), dtype=np.int64)
    done = 0
    for h, p in enumerate(spikes):
        # where each (k, b) of chunk h starts in the concatenated indices (rows past K_h: empty)
        bounds[h, : p.K * B + 1] = row_starts(p) + done
        bounds[h, p.K * B + 1 :] = done + p.flat.size
        done += p.flat.size
    flat = np.concatenate([p.flat for p in spikes]) if len(spikes) > 1 else spikes[0].flat
    unit = all(p.vals is None for p in spikes)
    v = (
        np.zeros(1, dtype)
        if unit
        else np.concatenate([np.ones(p.flat.size, dtype) if p.vals is None else p.vals.astype(dtype) for p in spikes])
    )
    threads = numba_threads(B)
    if S is None:
        S = torch.empty((1, 1, 1, 1), dtype=grad.dtype)
    if redo is None:
        none = lambda *shape: np.empty(shape, dtype)  # noqa: E731
        recursion = (none(0, 0, 0), none(0, 0, 0, 0), none(0, 0, 0), none(0, 0, 0), none(3, 0), none(3, 0))
        recursion += (none(0), none(0), (False,) * 10, np.empty(0, np.int64))
    else:
        recursion = _recursion_args(**redo)
    grads = np.zeros((threads,) + tuple(grad.shape), dtype=dtype)
    pass_rows(
        S.numpy(),
        dims,
        fresh,
        update,
        grads,
        M0.numpy(),
        Mix.numpy(),
        coef.numpy(),
        np.asarray([p.K for p in spikes], dtype=np.int64),
        flat,
        bounds,
        v,
        unit,
        E.numpy(),
        Eb.numpy(),
        redo is not None,
        *recursion,
    )
    grad += torch.from_numpy(grads.sum(axis=0))


#: the surrogates :func:`surrogate_` computes compiled, by kind (others run the torch operations)
SURROGATES = ("superspike", "triangle")


def has_surrogate(sg) -> bool:
    """Whether :func:`surrogate_` computes ``sg``: exactly SuperSpike or Triangle (a subclass
    may change the formula)."""
    from spikeloom.surrogates import SuperSpike, Triangle

    return type(sg) in (SuperSpike, Triangle)


def surrogate_(
    sg, x: torch.Tensor, a: torch.Tensor | None, beta, v_thresh, out: torch.Tensor | None = None
) -> torch.Tensor:
    """The surrogate ``sg`` (SuperSpike or Triangle, :data:`SURROGATES`) of ``x - theta`` written
    into ``out`` (default ``x``) ``[K, B, J]`` (``x`` the membrane potentials; ``theta = v_thresh +
    beta a`` with the adaptation ``a`` ``[K, B, J]``, or ``v_thresh`` without it; ``beta`` and
    ``v_thresh`` broadcast to ``[J]``): one pass instead of the torch path's six to eight, the same
    operations in the same order, so the same values bit for bit."""
    from .chunk_kernels import surrogate

    J = x.shape[2]
    dt = x.numpy().dtype
    row = lambda v: torch.as_tensor(v, dtype=x.dtype).expand(J).contiguous().numpy()  # noqa: E731
    kind = SURROGATES.index(sg.kind)
    vt = torch.as_tensor(v_thresh, dtype=x.dtype)
    scale = row(sg.gamma / vt) if kind == 1 else row(0.0)  # as the torch path computes gamma / v_thresh
    numba_threads()
    alif = a is not None
    out = x if out is None else out
    surrogate(
        x.numpy(),
        out.numpy(),
        a.numpy() if alif else x.numpy(),
        row(beta) if alif else row(0.0),
        row(vt),
        kind,
        dt.type(sg.beta if kind == 0 else 0.0),
        scale,
        dt.type(1.0),
        alif,
    )
    return out


def row_starts(p) -> np.ndarray:
    """``[K B + 1]``: where each row ``k B + b`` of a chunk's spikes ``p`` (a
    :class:`.chunk_spikes.ChunkSpikes` kept as positions) starts in ``p.flat``; found once (one merge
    over the ascending indices) and kept on ``p`` for the chunk-end filter and the pass."""
    if p.starts is None:
        from .chunk_kernels import row_bounds

        p.starts = row_bounds(p.flat, p.I, p.K * p.B)
    return p.starts


def filter_ends(p, filters: np.ndarray, dtype) -> torch.Tensor:
    """``sum_k filters[w, k] p[k, b, i]`` ``[W, B, I]`` (``dtype``) for a chunk's spikes ``p``
    ``[K, B, I]`` (a :class:`.chunk_spikes.ChunkSpikes` kept as positions), with ``filters``
    ``[W, K]`` (float64; summed in float64, as :meth:`.chunk_spikes.ChunkSpikes.filter_end` does)."""
    from .chunk_kernels import filter_ends as kernel

    v = np.zeros(1) if p.vals is None else p.vals.astype(np.float64)
    ends = np.empty((filters.shape[0], p.B, p.I))
    numba_threads(p.B)
    kernel(p.flat, row_starts(p), v, p.vals is None, np.ascontiguousarray(filters, dtype=np.float64), ends)
    return torch.from_numpy(ends).to(dtype)


def fold_coefs(
    coef: torch.Tensor, R: torch.Tensor, Q: torch.Tensor, W: torch.Tensor, w: np.ndarray, update: bool
) -> None:
    """Refer a chunk's spike coefficients ``coef`` ``[K, 1 + n, B, J]`` (in place) to the end of the
    group of chunks it belongs to: ``coef[k, 0] += sum_m R[:, m] coef[k, 1 + m]`` (the share of the
    gradient its states owe to the later chunks) and, when ``update``,
    ``coef[k, 1 + n] = sum_m Q[:, n, m] coef[k, 1 + m] + sum_x w[x, k] W[x, n]`` (the states at the
    group's end, also through the presynaptic traces the spike leaves at the chunk's end).
    ``R`` ``[B, n, J]``, ``Q`` ``[B, n, n, J]``, ``W`` ``[X, n, B, J]``, ``w`` ``[X, K]``."""
    from .chunk_kernels import fold

    numba_threads()
    fold(coef.numpy(), R.numpy(), Q.numpy(), W.numpy(), np.ascontiguousarray(w, dtype=coef.numpy().dtype), update)


def chunk_backward(
    Psi: torch.Tensor,
    Sig: torch.Tensor | None,
    Reg: torch.Tensor | None,
    Keep: torch.Tensor | None,
    out_c: torch.Tensor,
    pop_c: torch.Tensor,
    beta: torch.Tensor | None,
    rho: torch.Tensor | None,
    flags: dict[str, bool],
    seeds: list[int],
    coef: torch.Tensor | None,
    S: int,
    C: int,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """The chunk's backward recursion, compiled: writes ``coef[:, :S]`` ``[K, S, B, J]`` (a
    contiguous buffer with at least ``S`` rows; None: the coefficients are not kept, as for a
    group's last chunk, which :func:`chunk_pass` recomputes) and returns the adjoints
    ``(lw, lu, la, lx, lI)`` before the chunk (see :func:`.chunk_kernels.backward` for the arguments)."""
    from .chunk_kernels import backward

    K, B, J = Psi.shape
    kw = dict(dtype=Psi.dtype)
    lw, lu = torch.empty((S, C, B, J), **kw), torch.empty((S, C, B, J), **kw)
    la, lx = torch.empty((S, B, J), **kw), torch.empty((S, B, J), **kw)
    store = coef is not None
    lI = coef[0, :S] if store else torch.empty((S, B, J), **kw)
    args = _recursion_args(Psi, Sig, Reg, Keep, out_c, pop_c, beta, rho, flags, seeds)
    parts = numba_threads(B)
    backward(
        *args,
        coef.numpy() if store else np.empty((0, 0, 0, 0), Psi.numpy().dtype),
        store,
        lw.numpy(),
        lu.numpy(),
        la.numpy(),
        lx.numpy(),
        lI.numpy(),
        parts,
    )
    return lw, lu, la, lx, lI


def _recursion_args(Psi, Sig, Reg, Keep, out_c, pop_c, beta, rho, flags, seeds) -> tuple:
    """The arguments of :func:`.chunk_kernels.backward_one` that describe a chunk's recursion, as
    numpy arrays (empty where a quantity is absent)."""
    J = Psi.shape[2]
    dt = Psi.numpy().dtype
    none3, none4, no_j = np.empty((0, 0, 0), dt), np.empty((0, 0, 0, 0), dt), np.zeros(J, dt)
    names = ("has_sig", "has_reg", "zero_reset", "alif", "out_delta", "out_unit_gain", "pop_delta", "unit_gain")
    return (
        Psi.numpy(),
        none4 if Sig is None else Sig.numpy(),
        none3 if Reg is None else Reg.numpy(),
        none3 if Keep is None else Keep.numpy(),
        out_c.numpy(),
        pop_c.numpy(),
        no_j if beta is None else beta.numpy(),
        no_j if rho is None else rho.numpy(),
        tuple(bool(flags[n]) for n in names) + (bool(flags["per_syn"]), bool(flags["seed"])),
        np.asarray(seeds, dtype=np.int64),
    )
