"""Launch configuration and the kernel launchers.

Every kernel loops over its elements with a grid-stride loop, so any grid covers any number of
elements; :func:`launch_config` picks one block size and as many blocks as the elements need, up
to :data:`MAX_BLOCKS` (further elements are taken by the same threads on later rounds of their
loop).  :class:`CupyKernels` compiles the ``.cu`` files with ``cupy.RawModule`` (once per
:func:`~.kernel_specs.compile_unit`, dtype and process, when a unit's kernel is first launched)
and launches them; the tests drive the same host code with a serial CPU emulation of the
same kernels through the :class:`Kernels` interface.
"""

from __future__ import annotations

import numpy as np

from .kernel_specs import COMPILE_OPTIONS, KERNELS, compile_unit, kernel_source

__all__ = [
    "BLOCK",
    "MAX_BLOCKS",
    "BLOCK_LOOP_THREADS",
    "BLOCK_LOOP_MAX_SHARED",
    "launch_config",
    "block_config",
    "thread_elements",
    "Kernels",
    "CupyKernels",
    "convert_args",
]

#: threads per block: a multiple of the warp size that keeps registers per thread ample
BLOCK = 256
#: at most this many blocks per launch (the grid-stride loop covers the rest)
MAX_BLOCKS = 65535
#: threads of a warp
WARP = 32
#: at most this many threads per block in the block loops (one block per example; on an H200,
#: 512 threads took BPTT with 512 and 1024 neurons from 116 / 170 ms to 96 / 157 ms per step, 1024
#: threads gained nothing more)
BLOCK_LOOP_THREADS = 512
#: the block loops keep one row of the population in shared memory: at most this many bytes
#: (the default limit of dynamic shared memory per block)
BLOCK_LOOP_MAX_SHARED = 48 * 1024


def launch_config(n: int, block: int = BLOCK, max_blocks: int = MAX_BLOCKS) -> tuple[int, int] | None:
    """``(grid, block)`` for a kernel over ``n`` elements, or None when there is nothing to do."""
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)):
        raise ValueError(f"launch_config: n must be an integer, got {n!r}")
    if block < 1 or block > 1024:
        raise ValueError(f"launch_config: block must lie in [1, 1024] threads, got {block}")
    if max_blocks < 1:
        raise ValueError(f"launch_config: max_blocks must be >= 1, got {max_blocks}")
    n = int(n)
    if n <= 0:
        return None
    return min(-(-n // block), max_blocks), block


def block_config(examples: int, neurons: int, itemsize: int) -> tuple[int, int, int] | None:
    """``(grid, block, shared bytes)`` of a block loop: one block per example (at most
    :data:`MAX_BLOCKS`; the kernels stride over the rest), a whole number of warps covering the
    neurons up to :data:`BLOCK_LOOP_THREADS` (each thread then takes every ``block``-th neuron), and
    the shared memory both block loops need: a row of ``neurons`` values of ``itemsize`` bytes
    (backward), or a list of ``neurons`` ints and two scan buffers of ``block`` ints (forward).
    None when there is nothing to do."""
    for field, value in (("examples", examples), ("neurons", neurons), ("itemsize", itemsize)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 0:
            raise ValueError(f"block_config: {field} must be a non-negative integer, got {value!r}")
    if examples == 0 or neurons == 0:
        return None
    block = min(BLOCK_LOOP_THREADS, -(-int(neurons) // WARP) * WARP)
    shared = max(int(neurons) * int(itemsize), (int(neurons) + 2 * block) * 4)
    return min(int(examples), MAX_BLOCKS), block, shared


def thread_elements(n: int, grid: int, block: int, thread: int) -> range:
    """The elements one thread (global index ``thread``) handles in a grid-stride loop over ``n``."""
    return range(thread, n, grid * block)


_INT32: dict[int, np.int32] = {}
_INT64: dict[int, np.int64] = {}


def _int32(value) -> np.int32:
    """``np.int32(value)``, memoised: the same few flags and sizes recur at every launch."""
    out = _INT32.get(value)
    if out is None:
        out = np.int32(value)
        if len(_INT32) < 4096:
            _INT32[value] = out
    return out


def _int64(value) -> np.int64:
    out = _INT64.get(value)
    if out is None:
        out = np.int64(value)
        if len(_INT64) < 4096:
            _INT64[value] = out
    return out


_SCALARS: dict[tuple, object] = {}


def _scalar(dtype: np.dtype, value):
    """``dtype.type(value)``, memoised like the integers (decay factors, surrogate constants)."""
    key = (dtype.char, value)
    try:
        out = _SCALARS.get(key)
    except TypeError:  # an unhashable value: converted as it is
        return dtype.type(value)
    if out is None:
        out = dtype.type(value)
        if len(_SCALARS) < 4096:
            _SCALARS[key] = out
    return out


#: per kernel, the argument kinds as small integers (0 ``p``, 1 ``lp``, 2 ``i``, 3 ``l``, 4 ``s``)
_CODES: dict[str, tuple[int, ...]] = {}
_KIND_CODES = {"p": 0, "lp": 1, "i": 2, "l": 3, "s": 4}
_INT64_DTYPE = np.dtype(np.int64)


def _codes(name: str) -> tuple[int, ...]:
    codes = _CODES.get(name)
    if codes is None:
        codes = _CODES[name] = tuple(_KIND_CODES[k] for k in KERNELS[name].args)
    return codes


def _convert_one(name: str, pos: int, code: int, value, dtype: np.dtype, is_array):
    if code <= 1:
        want = dtype if code == 0 else _INT64_DTYPE
        if not is_array(value):
            raise ValueError(f"kernel {name}: argument {pos} must be an array of {want}, got {type(value).__name__}")
        if value.dtype != want or not value.flags.c_contiguous:
            raise ValueError(
                f"kernel {name}: argument {pos} must be a C-contiguous {want} array, got "
                f"{value.dtype} (contiguous: {value.flags.c_contiguous})"
            )
        return value
    if code == 2:
        return _int32(value)
    if code == 3:
        return _int64(value)
    return _scalar(dtype, value)


def convert_args(name: str, args, dtype: np.dtype, is_array, scalar=None):
    """Check ``args`` against the kernel's declared kinds; arrays pass through (the launcher turns
    them into pointers), numbers become ``int32``/``int64``/the dtype's scalar type."""
    codes = _codes(name)
    if len(args) != len(codes):
        raise ValueError(f"kernel {name}: expected {len(codes)} arguments, got {len(args)}")
    return [
        _convert_one(name, pos, code, value, dtype, is_array)
        for pos, (code, value) in enumerate(zip(codes, args, strict=True))
    ]


class Kernels:
    """Launches the named kernels for one dtype: ``launch(name, n, *args)`` runs ``n`` elements."""

    def __init__(self, dtype) -> None:
        self.dtype = np.dtype(dtype)
        #: per call site (see :meth:`launch`): the last arguments as given and as converted
        self._sites: dict = {}
        #: launch_config(n) by n (the time loops launch over the same few sizes at every step)
        self._configs: dict[int, tuple[int, int]] = {}

    def launch(self, name: str, n: int, *args, site=None) -> None:
        """Launch ``name`` over ``n`` elements.  With ``site`` (any hashable naming the call site of
        a time loop), only the arguments that are not the very objects of the previous launch from
        that site are checked and converted again (the rest keep their conversion: an array's
        dtype and layout do not change); :meth:`release` forgets the sites."""
        cfg = self._configs.get(n) if type(n) is int else None
        if cfg is None:
            cfg = launch_config(n)
            if cfg is not None and type(n) is int and len(self._configs) < 4096:
                self._configs[n] = cfg
        if cfg is None:
            return
        if KERNELS[name].block_sync:
            raise ValueError(f"kernel {name}: a block-sync kernel; launch it with launch_blocks()")
        if site is None:
            self._launch(name, cfg, convert_args(name, args, self.dtype, self._is_array))
            return
        key = (name, site)
        prev = self._sites.get(key)
        if prev is None or len(prev[0]) != len(args):
            conv = convert_args(name, args, self.dtype, self._is_array)
        else:
            raw, conv = prev
            conv = list(conv)
            codes = _codes(name)
            for pos, value in enumerate(args):
                if value is not raw[pos]:
                    conv[pos] = _convert_one(name, pos, codes[pos], value, self.dtype, self._is_array)
        self._sites[key] = (args, conv)
        self._launch(name, cfg, conv)

    def launch_blocks(self, name: str, grid: int, block: int, shared_bytes: int, *args) -> None:
        """Launch a ``block_sync`` kernel with an explicit configuration (see :func:`block_config`)."""
        if not KERNELS[name].block_sync:
            raise ValueError(f"kernel {name}: not a block-sync kernel; launch it over elements with launch()")
        self._launch(name, (grid, block, shared_bytes), convert_args(name, args, self.dtype, self._is_array))

    def release(self) -> None:
        """Forget the arguments kept per call site (they hold references to arrays)."""
        self._sites.clear()

    def prepare(self, name: str, n: int, *args):
        """Check and convert the arguments once; returns ``run(t)``, which launches with the first
        argument (the step) replaced by ``t``.  The time loops launch the same kernel on the same
        arrays at every step, so only the step number changes."""
        cfg = launch_config(n)
        rest = convert_args(name, args, self.dtype, self._is_array)[1:]
        if cfg is None:
            return lambda t: None

        def run(t: int) -> None:
            self._launch(name, cfg, [_int32(t), *rest])

        return run

    def _is_array(self, value) -> bool:  # pragma: no cover - overridden
        raise NotImplementedError

    def _launch(self, name, cfg, args) -> None:  # pragma: no cover - overridden
        raise NotImplementedError


#: the compiled modules of this process: (compile unit, dtype name) -> ``cupy.RawModule``
_MODULES: dict[tuple[tuple[str, ...], str], object] = {}


class CupyKernels(Kernels):
    """The kernels compiled with ``cupy.RawModule`` (NVRTC, :data:`COMPILE_OPTIONS`), one module
    per :func:`~.kernel_specs.compile_unit` and dtype, compiled when one of its kernels is first
    launched."""

    def __init__(self, dtype) -> None:
        super().__init__(dtype)
        import cupy

        self._cupy = cupy
        self._functions = {}

    def _function(self, name: str):
        fn = self._functions.get(name)
        if fn is None:
            spec = KERNELS[name]
            unit = compile_unit(name)
            key = (unit, self.dtype.name)
            module = _MODULES.get(key)
            if module is None:
                module = self._cupy.RawModule(
                    code=kernel_source(spec.file),
                    options=COMPILE_OPTIONS,
                    name_expressions=[KERNELS[n].instance(self.dtype.name) for n in unit],
                )
                _MODULES[key] = module
            fn = self._functions[name] = module.get_function(spec.instance(self.dtype.name))
        return fn

    def _is_array(self, value) -> bool:
        return isinstance(value, self._cupy.ndarray)

    def _launch(self, name, cfg, args) -> None:
        grid, block, *shared = cfg
        self._function(name)((grid,), (block,), tuple(args), shared_mem=shared[0] if shared else 0)
