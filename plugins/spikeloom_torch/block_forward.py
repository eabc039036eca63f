"""A LIF/ALIF population run a block of steps at a time in one compiled call (Numba, CPU).

The step-by-step forward pass costs about ten torch operations per population and step, plus
finding the positions of the spikes for the sparse recurrent products; at the sizes of a training
batch those calls, not the arithmetic, take most of the time.  A population whose only inputs from
spiking populations are its own spikes (one recurrent connection, any delay) can instead run ``L``
steps in one call, given its feed-forward drive for them: each thread takes a share of the
examples and runs their steps one after another (the examples do not interact), adding the rows
of the recurrent weights that the delivered spikes select, then updating the neurons with the
operations of :func:`.dynamics.spiking_step` in its order, multiply-adds rounded once as torch's
``addcmul`` rounds them.  It also lists the spikes it finds, as :func:`.dynamics.spike_positions`
would.  Used by the e-prop forward pass (:class:`.dynamics.Stepper` with ``fuse``).

Numba is optional (the ``torch`` extra installs it); without it the torch operations run.
"""

from __future__ import annotations

import math
import sys

import numpy as np
import torch

from . import chunk_compiled
from .dynamics import PopConst

__all__ = ["BlockRunner", "available", "scan", "slots_needed"]


def available(p: PopConst, batch: int) -> bool:
    """Whether population ``p`` can run compiled blocks at batch size ``batch``: where e-prop's
    chunks run compiled (:func:`.chunk_compiled.use`: CPU, Numba, at least
    :data:`.chunk_compiled.MIN_WORK` batch entries x neurons), for a spiking population of a
    floating dtype Numba takes."""
    return (
        p.spiking
        and p.alpha_mem.dtype in (torch.float32, torch.float64)
        and chunk_compiled.use(batch, p.n, p.alpha_mem.device)
    )


class BlockRunner:
    """Population ``p``'s state and the kept buffers of its blocks, for one run of ``batch`` examples.

    ``W`` ``[N, N]``: the weights of its recurrent connection (None without one), delivered with
    ``delay`` steps.  ``block`` the longest block; ``slots`` how many blocks' values stay valid
    (the values of a block live in slot ``index % slots``, so a caller holding the values of the
    last ``slots - 1`` blocks sees them unchanged).  ``alloc(key, shape, dtype)`` gives kept,
    uninitialised buffers (None: new ones).  ``W_in``: the weights of one input given to
    :meth:`run` by the positions of its spikes.  ``surrogate`` (SuperSpike or Triangle,
    :func:`.chunk_compiled.has_surrogate`): each step's surrogate derivative ``psi`` (0 while
    refractory) is computed in the call, with the operations of
    :func:`.chunk_compiled.surrogate_`, and kept instead of ``V`` and ``a``.
    """

    def __init__(
        self,
        p: PopConst,
        batch: int,
        W: torch.Tensor | None,
        delay: int,
        block: int,
        slots: int,
        alloc=None,
        W_in: torch.Tensor | None = None,
        surrogate=None,
    ) -> None:
        if alloc is None:
            alloc = lambda key, shape, dtype: torch.empty(shape, dtype=dtype)  # noqa: E731
        self.p, self.B, self.block, self.slots = p, batch, block, slots
        J, dtype = p.n, p.alpha_mem.dtype
        self.W = None if W is None else W.detach().contiguous()
        self.W_in = None if W_in is None else W_in.detach().contiguous()
        self.delay = int(delay)
        if self.W is not None and self.delay < 1:
            raise ValueError(f"delay: a recurrent connection needs a delay of at least 1 step, got {delay}")
        row = lambda v, fill=0.0: (  # noqa: E731
            torch.full((J,), fill, dtype=dtype) if v is None else torch.as_tensor(v, dtype=dtype).expand(J)
        )
        self.consts = torch.stack(
            [row(p.alpha_mem), row(p.alpha_syn), row(p.g), row(p.v_thresh), row(p.rho), row(p.beta)]
        ).contiguous()
        self.n_ref = (
            torch.zeros(J, dtype=torch.int64) if p.n_ref is None else torch.as_tensor(p.n_ref).expand(J).contiguous()
        )
        self.flags = (
            False,
            False,
            self.W is not None,
            p.kind == "ALIF",
            p.delta,
            p.unit_gain,
            p.reset == "subtract",
            p.refractory,
        )
        # the state between blocks (the reference's zero initial state)
        self.I, self.V, self.a, self.z = (torch.zeros((batch, J), dtype=dtype) for _ in range(4))
        self.ref = torch.zeros((batch, J), dtype=torch.int64)
        shape = (slots, block, batch, J)
        # with a surrogate, its values psi take the place of V and a (kept by nothing else)
        self.sg = self._surrogate_args(surrogate, dtype)
        with_psi = surrogate is not None
        self.rec = {
            "V": None if with_psi else alloc("V", shape, dtype),
            "z": alloc("z", shape, dtype),
            "a": alloc("a", shape, dtype) if p.kind == "ALIF" and not with_psi else None,
            "refractory": alloc("refractory", shape, torch.bool) if p.refractory else None,
            "psi": alloc("psi", shape, dtype) if with_psi else None,
        }
        self.counts = np.empty((block, batch), dtype=np.int64)
        self.cols = alloc("cols", (block, batch, J), torch.int32).numpy()
        self.index = -1  # the last block run
        self._dummy = torch.zeros((1, 1, 1), dtype=dtype)

    def _surrogate_args(self, sg, dtype: torch.dtype) -> tuple:
        """``(kind, slope, scale [J])`` of :func:`.block_kernels.run_block` for surrogate ``sg``
        (None: kind -1), as :func:`.chunk_compiled.surrogate_` passes them."""
        J = self.p.n
        np_dtype = torch.empty(0, dtype=dtype).numpy().dtype
        if sg is None:
            return -1, np_dtype.type(0.0), np.zeros(J, dtype=np_dtype)
        if not chunk_compiled.has_surrogate(sg):
            raise ValueError(f"surrogate: {type(sg).__name__} is not computed compiled; pass None")
        kind = chunk_compiled.SURROGATES.index(sg.kind)
        vt = torch.as_tensor(self.p.v_thresh, dtype=dtype)
        scale = torch.as_tensor(sg.gamma / vt if kind == 1 else 0.0, dtype=dtype).expand(J).contiguous().numpy()
        return kind, np_dtype.type(sg.beta if kind == 0 else 0.0), scale

    def run(
        self,
        steps: int,
        hext: torch.Tensor | None,
        past: list[torch.Tensor],
        inp: tuple[np.ndarray, np.ndarray] | None = None,
    ) -> dict[str, torch.Tensor]:
        """The next ``steps`` steps (at most ``block``): ``{variable: [steps, B, N]}`` (``V``
        before the reset, ``z``, and ``a``, ``refractory`` where the population has them; with a
        surrogate, ``psi`` in place of ``V`` and ``a``), views of this block's slot.

        ``hext`` ``[steps, B, N]``: the drive from everything but the recurrent connection (None:
        zero); ``inp``: ``(flat, bounds)`` (:func:`scan`) of 0/1 input spikes ``[steps, B, N_in]``
        delivered through ``W_in`` (added to ``hext``); ``past``: the population's spikes ``[B, N]``
        before the block, latest first, at least ``delay`` of them when there is a recurrent
        connection.  Also sets :attr:`positions`.
        """
        from .block_kernels import gather_positions, run_block

        self.index += 1
        slot = self.index % self.slots
        rec = {k: v[slot, :steps] for k, v in self.rec.items() if v is not None}
        if inp is not None and self.W_in is None:
            raise ValueError("inp: this population was set up without input weights (W_in)")
        flags = (hext is not None, inp is not None) + self.flags[2:]
        if hext is not None:
            hext = hext.contiguous()
        W, delay = self.W, self.delay
        past_t = torch.stack(past[:delay]) if W is not None else self._dummy
        chunk_compiled.numba_threads(self.B)
        counts = self.counts[:steps]
        dummy = self._dummy.numpy()
        no_index = np.zeros(1, dtype=np.int64)
        run_block(
            dummy if hext is None else hext.numpy(),
            (no_index, no_index) if inp is None else inp,
            dummy[0] if self.W_in is None else self.W_in.numpy(),
            dummy[0] if W is None else W.numpy(),
            delay,
            past_t.numpy(),
            self.consts.numpy(),
            self.n_ref.numpy(),
            flags,
            self.I.numpy(),
            self.V.numpy(),
            self.a.numpy(),
            self.z.numpy(),
            self.ref.numpy(),
            rec["V"].numpy() if "V" in rec else dummy,
            rec["a"].numpy() if "a" in rec else dummy,
            rec["z"].numpy(),
            rec["refractory"].numpy() if "refractory" in rec else np.zeros((1, 1, 1), dtype=np.bool_),
            counts,
            self.cols[:steps],
            self.sg,
            rec["psi"].numpy() if "psi" in rec else dummy,
        )
        offsets = np.zeros(steps + 1, dtype=np.int64)
        np.cumsum(counts.sum(axis=1), out=offsets[1:])
        flat = np.empty(int(offsets[-1]), dtype=np.int64)
        columns = np.empty_like(flat)
        starts = np.empty((steps, self.B), dtype=np.int64)
        gather_positions(counts, self.cols[:steps], offsets, flat, columns, starts)
        #: per step of the block: ``(flat indices, columns, where each example starts)``, as
        #: :func:`.dynamics.spike_positions` gives them
        self.positions = [
            (
                flat[offsets[t] : offsets[t + 1]],
                torch.from_numpy(columns[offsets[t] : offsets[t + 1]]),
                torch.from_numpy(starts[t]),
            )
            for t in range(steps)
        ]
        return rec


def slots_needed(block: int, max_delay: int) -> int:
    """How many blocks' values must stay valid (:class:`BlockRunner` ``slots``) for a consumer that
    keeps a step's values until the spikes of ``max_delay`` steps later have arrived (e-prop's
    chunks wait for the readout's learning signals): the block being written, and the blocks that
    delay reaches back into."""
    return 1 + math.ceil(max(max_delay, 1) / block)


def scan(block: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
    """``(flat, bounds)``: the flat indices (ascending, int64) of the non-zero entries of the bool
    spikes ``block`` ``[L, B, N]`` and where each row ``(t, b)`` starts among them ``[L B + 1]``,
    read eight entries at a time (most words of sparse spikes are all zero): about half of
    ``np.flatnonzero``'s time, with the row starts besides.  None where ``block`` is not a contiguous bool array (or on a
    big-endian machine): the caller scans it another way."""
    if block.dtype != np.bool_ or not block.flags.c_contiguous or sys.byteorder != "little" or block.ndim != 3:
        return None
    from .block_kernels import scan_rows

    chunk_compiled.numba_threads()
    x = block.reshape(-1).view(np.uint8)
    words = x[: x.size // 8 * 8].view(np.uint64)
    rows, n = block.shape[0] * block.shape[1], block.shape[2]
    counts = np.empty(rows, dtype=np.int64)
    none = np.empty(0, dtype=np.int64)
    scan_rows(x, words, n, counts, none, False)
    bounds = np.zeros(rows + 1, dtype=np.int64)
    np.cumsum(counts, out=bounds[1:])
    flat = np.empty(int(bounds[-1]), dtype=np.int64)
    scan_rows(x, words, n, bounds[:-1].copy(), flat, True)
    return flat, bounds
