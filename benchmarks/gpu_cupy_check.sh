#!/usr/bin/env bash
# The CuPy backend's checks on a CUDA machine, and the torch backend's, in about 8 minutes (H200).
# The parts, in the order they run (keys for PARTS in brackets):
#   1. [gpu_tests] the gpu-marked tests of tests/plugins/cupy (NVRTC compiles every kernel; the
#      corpus against the NumPy reference in float64 and float32; the device against the emulated
#      kernels);
#   2. [eprop_sizes] e-prop training steps of cupy against torch on the same GPU at T=1000 B=256
#      with N = 512 and 1024 recurrent ALIF: CuPy also with recurrent spikes delivered
#      event-driven in every step, its synapse kernel reading every flag at run time, its
#      warps without groups, 8 presynaptic neurons per thread, the shared presynaptic traces
#      updated in every synapse's thread, 32 steps per synapse launch, and its products through
#      cupy.matmul;
#   3. [bptt_sizes] the same for BPTT: CuPy also event-driven in every step, with its products
#      through cupy.matmul, and with either loop forward and backward;
#   4. [speed] both rules at T=200 B=64 and T=1000 B=256 with N=256, CuPy also with every time
#      loop step by step, and CuPy e-prop memory at two T;
#   5. [conformance_cupy] the conformance kit on the cupy backend (device cuda);
#   6. [torch_gpu_tests], [conformance_torch] the torch backend on CUDA: its gpu-marked tests and
#      the conformance kit;
#   7. [profile] Nsight Compute (ncu) on the first two launches of e-prop's synapse kernel in a
#      training step with 1024 ALIF (throughput, occupancy, warp stalls; ncu may be refused the
#      hardware counters on some machines, and then this part fails alone).
# Each part runs even if an earlier one fails; the summary at the end says what passed (with the
# test counts; a part where every test was skipped counts as a failure).
# Run from anywhere:  bash benchmarks/gpu_cupy_check.sh
# PARTS=gpu_tests,eprop_sizes runs those parts only, in that order.
# With $OUT set, the full log of each part, junit XML, the JSON of the speed parts and summary.txt
# go there.
set -u
cd "$(dirname "$0")/.."
PY=${PYTHON:-$(command -v python || command -v python3)}
RESULTS=${OUT:-}
if [ -n "$RESULTS" ]; then mkdir -p "$RESULTS"; fi
XML=${RESULTS:-$(mktemp -d)}

# the package importable even where it is not installed (then no entry points: handled below)
if ! $PY -c "import spikeloom, spikeloom_cupy, spikeloom_conformance" 2>/dev/null; then
    export PYTHONPATH="$PWD/core:$PWD/plugins:$PWD/conformance${PYTHONPATH:+:$PYTHONPATH}"
fi
# the kit's pytest plugin: through its entry point when installed, else loaded by name
KIT_PLUGIN=""
if ! $PY -c "import sys; from importlib.metadata import entry_points; sys.exit(0 if any(e.name == 'spikeloom_conformance' for e in entry_points(group='pytest11')) else 1)"; then
    KIT_PLUGIN="-p spikeloom_conformance.pytest_plugin"
fi
junit() { echo "--junitxml=$XML/$1.xml"; }
# "N passed, N failed, N skipped" from a pytest junit file (a run where everything skipped is no pass)
counts() {
    $PY - "$XML/$1.xml" <<'PYEOF'
import sys, xml.etree.ElementTree as ET
try:
    root = ET.parse(sys.argv[1]).getroot()
except Exception as exc:
    print(f"no results ({type(exc).__name__})"); sys.exit()
s = root if root.tag == "testsuite" else root.find("testsuite")
n, f, e, sk = (int(s.get(k, 0)) for k in ("tests", "failures", "errors", "skipped"))
print(f"{n - f - e - sk} passed, {f + e} failed, {sk} skipped")
PYEOF
}

# the parts, in this order unless PARTS (keys, comma-separated) picks some: the most telling first,
# so that a run cut short by the device's time still has them
ALL_PARTS="gpu_tests,eprop_sizes,bptt_sizes,speed,conformance_cupy,torch_gpu_tests,conformance_torch,profile"
PARTS=${PARTS:-$ALL_PARTS}

SUMMARY=()
part() {  # part NAME SECONDS command...
    local name=$1 limit=$2 xml=$3
    shift 3
    echo
    echo "=================== $name (limit ${limit}s) ==================="
    local t0=$SECONDS
    local log="$XML/${xml:-$PART_KEY}.log"
    timeout --kill-after=10 "$limit" "$@" > "$log" 2>&1
    local rc=$?
    # the whole output stays in the log (under $OUT when set); the end of it is shown here
    tail -n "${TAIL_LINES:-45}" "$log"
    local took=$((SECONDS - t0))
    local detail=""
    if [ -n "$xml" ]; then
        detail=" [$(counts "$xml")]"
        case "$detail" in *"[0 passed"*) [ $rc -eq 0 ] && rc=99 ;; esac
    fi
    if [ $rc -eq 99 ]; then
        SUMMARY+=("FAIL  $name: nothing ran (everything skipped)$detail")
    elif [ $rc -eq 0 ]; then
        SUMMARY+=("PASS  $name (${took}s)$detail")
    elif [ $rc -eq 124 ] || [ $rc -eq 137 ]; then
        SUMMARY+=("FAIL  $name: timed out after ${limit}s$detail")
    else
        SUMMARY+=("FAIL  $name: exit status $rc (${took}s)$detail")
    fi
}

$PY - <<'PYEOF'
import spikeloom_cupy.backend as b
print("cupy backend availability:", b.cupy_problem() or "available")
try:
    import cupy
    print("cupy", cupy.__version__, "device:", cupy.cuda.runtime.getDeviceProperties(0)["name"].decode())
except Exception as exc:
    print("cupy:", exc)
PYEOF

run_part() {  # run_part KEY: one part of the check, by its key (see PARTS above)
    PART_KEY=$1  # the name of its log
    case $1 in
    gpu_tests) part "gpu tests (tests/plugins/cupy -m gpu)" 150 gpu_tests \
        $PY -m pytest tests/plugins/cupy -m gpu -k "not conformance_kit" -q -rs --tb=short -p no:cacheprovider $(junit gpu_tests) ;;
    eprop_sizes) part "speed: cupy vs torch, e-prop with 512 and 1024 ALIF, synapse variants" 225 "" \
        $PY benchmarks/cupy_vs_torch.py --rules eprop --sizes 1000x256x512,1000x256x1024 \
            --backends torch,cupy,cupy-events,cupy-generic,cupy-group1,cupy-tile8,cupy-inthread,cupy-k32,cupy-matmul --repeats 2 --budget 180 \
            ${RESULTS:+--json "$RESULTS/cupy_vs_torch_eprop_sizes.json"} ;;
    bptt_sizes) part "speed: cupy vs torch, BPTT with 512 and 1024 ALIF, both loops each way" 110 "" \
        $PY benchmarks/cupy_vs_torch.py --rules bptt --sizes 1000x256x512,1000x256x1024 \
            --backends torch,cupy,cupy-events,cupy-matmul,cupy-fwd-block,cupy-bwd-block,cupy-bwd-gemm --repeats 2 --budget 90 \
            ${RESULTS:+--json "$RESULTS/cupy_vs_torch_bptt_sizes.json"} ;;
    speed) part "speed: cupy vs torch (train_step, CUDA)" 130 "" \
        $PY benchmarks/cupy_vs_torch.py --sizes 200x64x256,1000x256x256 --eprop-memory 250x256,1000x256 \
            --backends torch,cupy,cupy-steps --repeats 2 --budget 90 ${RESULTS:+--json "$RESULTS/cupy_vs_torch.json"} ;;
    conformance_cupy) part "conformance kit on cupy (cuda)" 100 conformance_cupy \
        $PY -m pytest --pyargs spikeloom_conformance $KIT_PLUGIN --spikeloom-backend spikeloom_cupy.backend:CupyBackend \
            --spikeloom-device cuda -q --tb=line -p no:cacheprovider -o junit_family=xunit1 $(junit conformance_cupy) ;;
    torch_gpu_tests) part "gpu tests (tests/plugins/torch -m gpu)" 60 torch_gpu_tests \
        $PY -m pytest tests/plugins/torch -m gpu -q -rs --tb=short -p no:cacheprovider $(junit torch_gpu_tests) ;;
    conformance_torch) part "conformance kit on torch (cuda)" 70 conformance_torch \
        $PY -m pytest --pyargs spikeloom_conformance $KIT_PLUGIN --spikeloom-backend spikeloom_torch.backend:TorchBackend \
            --spikeloom-device cuda -q --tb=line -p no:cacheprovider -o junit_family=xunit1 $(junit conformance_torch) ;;
    profile) part "profile: e-prop's synapse kernel with 1024 ALIF (Nsight Compute)" 150 "" \
        ncu --kernel-name regex:eprop_synapse_chunk --launch-count 2 --section SpeedOfLight --section Occupancy \
            --section LaunchStats --section ComputeWorkloadAnalysis --section MemoryWorkloadAnalysis \
            --section SchedulerStats --section WarpStateStats \
            $PY benchmarks/cupy_vs_torch.py --rules eprop --sizes 1000x256x1024 --backends cupy --repeats 0 ;;
    *) SUMMARY+=("FAIL  part '$1': no such part (PARTS takes: $ALL_PARTS)") ;;
    esac
}

for key in ${PARTS//,/ }; do
    run_part "$key"
done

echo
echo "=================== summary ==================="
for line in "${SUMMARY[@]}"; do echo "$line"; done
if [ -n "$RESULTS" ]; then printf '%s\n' "${SUMMARY[@]}" > "$RESULTS/summary.txt"; fi
