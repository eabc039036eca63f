"""Every kernel file compiles with nvcc to PTX, for every dtype instantiation (skipped only where
nvcc is absent); and the kernel declarations are consistent with the files."""

from __future__ import annotations

import re
import shutil
import subprocess

import pytest

from spikeloom_cupy.kernel_specs import (
    COMPILE_OPTIONS,
    CUPY_ADDED_OPTIONS,
    DTYPES,
    KERNEL_FILES,
    KERNELS,
    kernel_dir,
    kernel_source,
)

NVCC = shutil.which("nvcc")


def _instantiating_source(file: str) -> str:
    """The file (``common.cuh`` inlined) plus one host-side reference to every instantiation, which
    makes nvcc emit them."""
    refs = [
        f"auto* sl_ref_{spec.name}_{dname} = &{spec.instance(dname)};"
        for spec in KERNELS.values()
        if spec.file == file
        for dname in DTYPES
    ]
    return kernel_source(file) + "\n" + "\n".join(refs) + "\n"


@pytest.mark.skipif(NVCC is None, reason="nvcc is not installed")
@pytest.mark.parametrize("file", KERNEL_FILES)
def test_nvcc_ptx_compiles_every_instantiation(file, tmp_path):
    src = tmp_path / file
    src.write_text(_instantiating_source(file))
    ptx = tmp_path / (file + ".ptx")
    # the options NVRTC receives through CuPy
    cmd = [NVCC, "--ptx", *COMPILE_OPTIONS, *CUPY_ADDED_OPTIONS, str(src), "-o", str(ptx)]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert "warning" not in proc.stderr.lower(), proc.stderr
    entries = re.findall(r"\.entry\s+(\S+)\(", ptx.read_text())
    for spec in KERNELS.values():
        if spec.file != file:
            continue
        # Itanium mangling: the name, then the template arguments: f (float) or d (double), and
        # each int N as LiNE (a negative one as LinNE)
        extra = "".join(f"Li{n.strip().replace('-', 'n')}E" for n in spec.extra.split(",")) if spec.extra else ""
        for code in ("f", "d"):
            mangled = f"{len(spec.cxx_name)}{spec.cxx_name}I{code}{extra}E"
            assert any(mangled in e for e in entries), (spec.name, mangled, entries)
    assert len(entries) == 2 * sum(1 for k in KERNELS.values() if k.file == file)


def test_every_declared_kernel_is_defined_in_its_file_with_matching_arity():
    for spec in KERNELS.values():
        text = kernel_dir().joinpath(spec.file).read_text()
        m = re.search(r"__global__ void " + spec.cxx_name + r"\((.*?)\)\s*\{", text, re.S)
        assert m, f"{spec.name} not found in {spec.file}"
        params = [p for p in m.group(1).split(",") if p.strip()]
        assert len(params) == len(spec.args), (spec.name, len(params), len(spec.args))
        for kind, param in zip(spec.args, params, strict=True):
            ctype = param.split()[-2] if param.split()[0] == "const" else param.split()[0]
            expected = {"i": "int", "l": "long", "s": "T", "p": "T*", "lp": "long"}[kind]
            assert ctype.startswith(expected), (spec.name, param, kind)


def test_every_kernel_file_is_declared_and_ships_with_the_package():
    on_disk = {p.name for p in kernel_dir().iterdir() if p.name.endswith(".cu")}
    assert on_disk == set(KERNEL_FILES)
    assert kernel_dir().joinpath("common.cuh").is_file()


def test_compile_options_declare_no_fast_math():
    assert "--fmad=false" in COMPILE_OPTIONS
    assert not any("fast" in o for o in COMPILE_OPTIONS + CUPY_ADDED_OPTIONS)
    assert CUPY_ADDED_OPTIONS == ("-ftz=true",)  # documented in docs/cupy-backend.md


def _defines(file: str, prefix: str) -> dict[str, int]:
    text = kernel_dir().joinpath(file).read_text()
    return {m.group(1).lower(): int(m.group(2)) for m in re.finditer(rf"#define {prefix}(\w+)\s+(\d+)", text)}


def test_host_constants_match_the_kernels_defines():
    from spikeloom_cupy.forward import REC_A, REC_I, REC_PSI, REC_REF
    from spikeloom_cupy.kernel_specs import EP_FLAGS, SURROGATE_KINDS

    assert _defines("eprop.cu", "SL_EP_") == {k.lower(): v for k, v in EP_FLAGS.items()}
    assert _defines("neuron.cu", "SL_REC_") == {"i": REC_I, "a": REC_A, "ref": REC_REF, "psi": REC_PSI}
    assert _defines("common.cuh", "SL_") == SURROGATE_KINDS


#: registers one block may hold on sm_90 (and on every architecture since sm_50)
REGISTERS_PER_BLOCK = 65536


@pytest.mark.skipif(NVCC is None, reason="nvcc is not installed")
@pytest.mark.parametrize("file", KERNEL_FILES)
def test_registers_fit_the_threads_each_kernel_is_launched_with(file, tmp_path):
    """``ptxas -v`` for sm_90 (the H200 the GPU numbers come from): a block of a kernel's threads,
    ``BLOCK_LOOP_THREADS`` for the block loops and ``BLOCK`` for the rest, fits in one block's
    registers (allocated per thread in multiples of 8), so that no launch fails for want of them.
    Other architectures allocate differently; this checks the one measured."""
    from spikeloom_cupy.launch import BLOCK, BLOCK_LOOP_THREADS

    src = tmp_path / file
    src.write_text(_instantiating_source(file))
    cmd = [NVCC, "--cubin", "-arch=sm_90", *COMPILE_OPTIONS, *CUPY_ADDED_OPTIONS, "-Xptxas", "-v"]
    proc = subprocess.run([*cmd, str(src), "-o", str(tmp_path / "k.cubin")], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    used, entry = {}, None
    for line in proc.stderr.splitlines():
        m = re.search(r"Compiling entry function '(\S+)'", line)
        entry = m.group(1) if m else entry
        m = re.search(r"Used (\d+) registers", line)
        if m:
            used[entry] = int(m.group(1))
    assert len(used) == 2 * sum(1 for k in KERNELS.values() if k.file == file), proc.stderr[-2000:]
    for spec in KERNELS.values():
        if spec.file != file:
            continue
        threads = BLOCK_LOOP_THREADS if spec.block_sync else BLOCK
        regs = max(r for e, r in used.items() if f"{len(spec.cxx_name)}{spec.cxx_name}I" in e)
        assert -(-regs // 8) * 8 * threads <= REGISTERS_PER_BLOCK, (spec.name, regs, threads)
