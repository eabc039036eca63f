"""A serial CPU emulation of the CuPy backend's kernels, for tests on machines without a GPU.

:func:`build_library` compiles every ``.cu`` file of the backend as C++ (g++, with
``cuda_emu.h`` standing in for the CUDA runtime) together with one generated ``extern "C"``
driver per kernel instantiation, and :class:`EmulatedKernels` launches them through ctypes with
the launch configuration the backend would use on a GPU.  ``-ffp-contract=off`` keeps products and
sums separately rounded, as ``--fmad=false`` does on the device.
"""

from __future__ import annotations

import ctypes
import hashlib
import shutil
import subprocess
import tempfile
from pathlib import Path

import numpy as np

from spikeloom_cupy.kernel_specs import DTYPES, KERNEL_FILES, KERNELS, kernel_dir
from spikeloom_cupy.launch import Kernels

HERE = Path(__file__).parent
_C_TYPES = {"i": "int", "l": "long long", "lp": "long long*"}
_CTYPES = {"i": ctypes.c_int32, "l": ctypes.c_int64, "p": ctypes.c_void_p, "lp": ctypes.c_void_p}
_LIB = None


def _c_type(kind: str, ctype: str) -> str:
    if kind == "s":
        return ctype
    if kind == "p":
        return ctype + "*"
    return _C_TYPES[kind]


def driver_source() -> str:
    """The C++ translation unit: the emulation header, every kernel file, one driver per instance."""
    kdir = Path(str(kernel_dir()))
    lines = ['#include "cuda_emu.h"']
    lines += [f'#include "{kdir / f}"' for f in KERNEL_FILES]
    for spec in KERNELS.values():
        for dname, ctype in DTYPES.items():
            params = ", ".join(f"{_c_type(k, ctype)} a{i}" for i, k in enumerate(spec.args))
            call = ", ".join(f"a{i}" for i in range(len(spec.args)))
            if spec.block_sync:
                lines.append(
                    f'extern "C" void emu_{spec.name}_{dname}(unsigned int grid, unsigned int block, '
                    f"unsigned long long shared, {params}) "
                    f"{{ sl_emulate_blocks(grid, block, shared, [&]() {{ {spec.cxx_instance(ctype)}({call}); }}); }}"
                )
                continue
            lines.append(
                f'extern "C" void emu_{spec.name}_{dname}(unsigned int grid, unsigned int block, {params}) '
                f"{{ sl_emulate(grid, block, [&]() {{ {spec.cxx_instance(ctype)}({call}); }}); }}"
            )
    return "\n".join(lines) + "\n"


def gxx() -> str | None:
    return shutil.which("g++")


def build_library(cache_dir: Path | None = None, sanitize: bool = False) -> ctypes.CDLL:
    """Compile (once per source text) and load the emulation library; with ``sanitize``, built
    with AddressSanitizer (the process must have ``libasan`` preloaded)."""
    global _LIB
    if _LIB is not None:
        return _LIB
    src = driver_source()
    kdir = Path(str(kernel_dir()))
    digest = hashlib.sha256(
        (src + "".join((kdir / f).read_text() for f in (*KERNEL_FILES, "common.cuh"))).encode()
        + (HERE / "cuda_emu.h").read_bytes()
    ).hexdigest()[:16]
    out_dir = cache_dir or Path(tempfile.gettempdir()) / "spikeloom_cupy_emu"
    out_dir.mkdir(parents=True, exist_ok=True)
    lib = out_dir / f"emu_{digest}{'_asan' if sanitize else ''}.so"
    if not lib.exists():
        cpp = out_dir / f"emu_{digest}.cpp"
        cpp.write_text(src)
        tmp = out_dir / f"emu_{digest}.{np.random.default_rng().integers(1 << 30)}.so"
        cmd = [
            gxx(),
            "-std=c++14",
            *(("-O1", "-g", "-fsanitize=address", "-fno-omit-frame-pointer") if sanitize else ("-O2",)),
            "-ffp-contract=off",
            "-fPIC",
            "-pthread",
            "-shared",
            f"-I{HERE}",
            str(cpp),
            "-o",
            str(tmp),
        ]
        subprocess.run(cmd, check=True, capture_output=True, text=True)
        tmp.replace(lib)
    _LIB = ctypes.CDLL(str(lib))
    return _LIB


class EmulatedKernels(Kernels):
    """The backend's kernels run serially on the CPU, on NumPy arrays."""

    def __init__(self, dtype) -> None:
        super().__init__(dtype)
        self._lib = build_library()
        self.launches: dict[str, int] = {}

    def _is_array(self, value) -> bool:
        return isinstance(value, np.ndarray)

    def _launch(self, name, cfg, args) -> None:
        spec = KERNELS[name]
        fn = getattr(self._lib, f"emu_{name}_{self.dtype.name}")
        c_args = [ctypes.c_uint(cfg[0]), ctypes.c_uint(cfg[1])]
        if spec.block_sync:
            c_args.append(ctypes.c_ulonglong(cfg[2]))
        scalar = ctypes.c_float if self.dtype == np.float32 else ctypes.c_double
        for kind, value in zip(spec.args, args, strict=True):
            if kind in ("p", "lp"):
                c_args.append(ctypes.c_void_p(value.ctypes.data))
            elif kind == "s":
                c_args.append(scalar(float(value)))
            else:
                c_args.append(_CTYPES[kind](int(value)))
        fn(*c_args)
        self.launches[name] = self.launches.get(name, 0) + 1
