"""The CUDA kernels of the CuPy backend: which ``.cu`` file holds each, and its arguments.

Each kernel is a template over the element type ``T`` (``float`` or ``double``) and is launched
one-dimensionally, most with a grid-stride loop over elements, the block loops with one block per
example (see :mod:`.launch`).  The argument kinds below are the
one description of each signature that the launchers (CuPy on a GPU, and the serial CPU emulation
of the tests) convert arguments by:

- ``i``: ``int`` (int32), ``l``: ``long long`` (int64), ``s``: a scalar ``T``;
- ``p``: ``T*`` (a C-contiguous array of the run's dtype), ``lp``: ``long long*`` (int64 array).
"""

from __future__ import annotations

from importlib.resources import files

import attrs

__all__ = [
    "KernelSpec",
    "KERNELS",
    "KERNEL_FILES",
    "SYNAPSE_TILES",
    "EP_FLAGS",
    "SYNAPSE_FIXED_FLAGS",
    "synapse_chunk_name",
    "compile_unit",
    "COMPILE_OPTIONS",
    "CUPY_ADDED_OPTIONS",
    "DTYPES",
    "SURROGATE_KINDS",
    "kernel_source",
]

#: NVRTC/nvcc options every kernel is compiled with.  ``--fmad=false`` keeps products and sums
#: separately rounded, as the NumPy reference computes them (no fused multiply-add contraction);
#: no fast-math: exp and division are the IEEE-accurate library versions.
COMPILE_OPTIONS = ("--std=c++14", "--fmad=false")

#: what CuPy itself appends to every NVRTC compilation, after the options above (NVRTC honours the
#: last occurrence): float32 subnormals (below 1.2e-38) flush to zero; float64 is unaffected.  This
#: is part of the backend's numerics; the emulation on the CPU keeps subnormals.
CUPY_ADDED_OPTIONS = ("-ftz=true",)

#: the template instantiations: NumPy dtype name -> C++ type
DTYPES = {"float32": "float", "float64": "double"}

#: surrogate kind -> the number ``common.cuh`` switches on
SURROGATE_KINDS = {"superspike": 0, "triangle": 1, "sigmoid": 2, "atan": 3}

ARG_KINDS = frozenset({"i", "l", "s", "p", "lp"})


@attrs.frozen
class KernelSpec:
    """One templated kernel: its name, the file that holds it and its argument kinds.

    ``block_sync``: the threads of a block cooperate (shared memory, ``__syncthreads``), so the
    kernel is launched with an explicit grid, block and shared-memory size
    (:meth:`~spikeloom_cupy.launch.Kernels.launch_blocks`) instead of over a number of elements.
    """

    name: str
    file: str
    args: tuple[str, ...] = attrs.field(converter=tuple)
    block_sync: bool = False
    #: the C++ template's name where several specs instantiate one template ("" : ``name``)
    function: str = ""
    #: template arguments after the dtype, as C++ text ("4, 1"; "": none)
    extra: str = ""

    def __attrs_post_init__(self) -> None:
        unknown = set(self.args) - ARG_KINDS
        if unknown:
            raise ValueError(
                f"KernelSpec.args of {self.name!r}: unknown kinds {sorted(unknown)}; known {sorted(ARG_KINDS)}"
            )

    @property
    def cxx_name(self) -> str:
        """The name of the C++ template."""
        return self.function or self.name

    def instance(self, dtype: str) -> str:
        """The C++ name of the instantiation for ``dtype`` (``"lif<float>"``, ``"f<float, 4>"``)."""
        return self.cxx_instance(DTYPES[dtype])

    def cxx_instance(self, ctype: str) -> str:
        """The C++ name of the instantiation for the C++ type ``ctype``."""
        return f"{self.cxx_name}<{ctype}{', ' + self.extra if self.extra else ''}>"


def _spec(name: str, file: str, args: str, block_sync: bool = False, function: str = "", extra: str = "") -> KernelSpec:
    return KernelSpec(name, file, args.split(), block_sync, function, extra)


#: presynaptic neurons per thread for which ``eprop_synapse_chunk`` is instantiated; the host
#: launches ``eprop_synapse_chunk_t<tile>``, or ``eprop_synapse_chunk_t<tile>_shared`` where the
#: presynaptic traces are shared by every postsynaptic neuron (template argument ``SHARED = 1``)
SYNAPSE_TILES = (1, 2, 4, 8)

#: the flag bits of the e-prop kernels (eprop.cu's ``SL_EP_*``)
EP_FLAGS = {
    "update": 1,
    "write_e": 2,
    "alif": 4,
    "syn_I": 8,
    "syn_v": 16,
    "zero_reset": 32,
    "has_L": 64,
    "has_R": 128,
    "hetero": 256,
    "r_delta": 512,
    "r_unit": 1024,
    "recompute": 2048,
}

#: the flags of :data:`EP_FLAGS` that the specialised instantiations of ``eprop_synapse_chunk``
#: take as template argument ``FIXED``, known when compiling, by the names that
#: :func:`synapse_chunk_name` gives them: the rate regulariser, a readout with a delta synapse, a
#: readout of input gain 1
SYNAPSE_FIXED_FLAGS = (("reg", EP_FLAGS["has_R"]), ("rdelta", EP_FLAGS["r_delta"]), ("runit", EP_FLAGS["r_unit"]))


def synapse_chunk_name(tile: int, shared: bool, flags: int | None = None) -> str:
    """The name of an instantiation of ``eprop_synapse_chunk``: ``eprop_synapse_chunk_t<tile>``,
    ``..._shared`` with shared presynaptic traces (template argument ``FIXED = -1``: every flag
    read at run time), or, given the ``flags`` of a launch, the one that knows those of
    :data:`SYNAPSE_FIXED_FLAGS` when compiling (``..._shared_rdelta_runit``, ``..._t4_reg``,
    ``..._plain`` with none of them)."""
    name = f"eprop_synapse_chunk_t{tile}{'_shared' if shared else ''}"
    if flags is None:
        return name
    return name + "_" + ("_".join(n for n, bit in SYNAPSE_FIXED_FLAGS if flags & bit) or "plain")


def _fixed_subsets() -> list[int]:
    """Every combination of the bits of :data:`SYNAPSE_FIXED_FLAGS` (0 first)."""
    out = [0]
    for _, bit in SYNAPSE_FIXED_FLAGS:
        out += [m | bit for m in out]
    return out


KERNELS: dict[str, KernelSpec] = {
    k.name: k
    for k in (
        _spec(
            "spiking_forward",
            "neuron.cu",
            "i i i p i  p p p p p p lp  i i i  p p p p p",
        ),
        _spec(
            "spiking_step",
            "neuron.cu",
            "i i i i p i i p i  p p i i i i  p p p p lp  p p p p p p lp  i i i i s s  p p p p p p",
        ),
        _spec(
            "spiking_block_loop",
            "neuron.cu",
            "i i i p i p i  p p p p lp  p p p p p p lp  i i i  p p p p p",
            block_sync=True,
        ),
        _spec("li_forward", "neuron.cu", "i i i p i p p p p i p p"),
        _spec("li_step", "neuron.cu", "i i i p i p p i i i i p p p p p p"),
        _spec("propagate_csr", "propagate.cu", "l i lp lp p p p i"),
        _spec("propagate_scan", "propagate.cu", "i i i p p p i"),
        _spec(
            "spiking_backward",
            "bptt.cu",
            "i i i p i p p p p i  p p p p p p  i i i i s s  p p",
        ),
        _spec(
            "spiking_backward_step",
            "bptt.cu",
            "i i i i p i i  p p i i i  p p p p i p  p p p p p p  i i i i s s  p p",
        ),
        _spec(
            "spiking_block_backward",
            "bptt.cu",
            "i i i p i p i  p p p p i p  p p p p p p  i i i i s s  p p",
            block_sync=True,
        ),
        _spec("li_backward", "bptt.cu", "i i i p i p p p p p"),
        _spec(
            "eprop_synapse_step",
            "eprop.cu",
            "i i i i i i i i  p p p p p  p p p p p  p p p  p p p p  p p p p p  p p p s p",
        ),
        *(
            _spec(
                synapse_chunk_name(tile, bool(shared), None if fixed < 0 else fixed),
                "eprop.cu",
                "i i i i i i i i i  p p p p p  p p p p p  p p p p p  p p p p p  p p s p",
                function="eprop_synapse_chunk",
                extra=f"{tile}, {shared}, {fixed}",
            )
            for tile in SYNAPSE_TILES
            for shared in (0, 1)
            for fixed in (-1, *_fixed_subsets())
        ),
        _spec("eprop_pre_chunk", "eprop.cu", "i i i i i p  p p p p  p p p  p"),
        _spec("eprop_loss_step", "eprop.cu", "i i i i p p s  p p p p p  p p p"),
        _spec("eprop_out_grad", "eprop.cu", "i i i i i i i i  p p p p  p p p p  p p"),
        _spec("eprop_out_grad_chunk", "eprop.cu", "i i i i i i i i i  p p p p  p p p p  p p"),
    )
}


def compile_unit(name: str) -> tuple[str, ...]:
    """The kernels compiled together with kernel ``name`` in one NVRTC call (one
    ``cupy.RawModule`` per unit and dtype): the kernels of its file that instantiate a template of
    their own; or, for one of a family of instantiations of a shared template (``function`` set:
    the 72 per dtype of ``eprop_synapse_chunk``), that one alone.  A process compiles only the
    units it launches: on a 2-core machine, ``nvcc --ptx`` of all of ``eprop.cu`` for one dtype
    takes 4.6 s, of the file's other kernels 0.35 s and of one synapse instantiation 0.2 s."""
    try:
        spec = KERNELS[name]
    except KeyError:
        raise ValueError(f"kernel name {name!r}: not declared in KERNELS") from None
    if spec.function:
        return (name,)
    return tuple(k.name for k in KERNELS.values() if k.file == spec.file and not k.function)


#: every kernel file, in a fixed order
KERNEL_FILES = tuple(sorted({k.file for k in KERNELS.values()}))


def kernel_dir():
    """The directory (a ``Traversable``) that holds the ``.cu`` files and ``common.cuh``."""
    return files(__package__).joinpath("kernels")


def kernel_source(file: str) -> str:
    """The text of one kernel file with ``common.cuh`` inlined (NVRTC then needs no include path)."""
    d = kernel_dir()
    common = d.joinpath("common.cuh").read_text()
    text = d.joinpath(file).read_text()
    return text.replace('#include "common.cuh"', common.replace("#pragma once", ""), 1)
