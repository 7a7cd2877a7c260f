#!/usr/bin/env bash
# The checks of the README's "On a GPU machine", run in one go: the GPU tests, then speed and memory against
# torch (gpu.py), where the GPU time goes (stages.py) and foreground estimation on the GPU (foreground.py).
#
#   bash benchmarks/gpu_checks.sh [LOG_DIR [STEP ...]]      LOG_DIR: gpu_logs; STEP: all five, in this order
#
# Each step writes its output to LOG_DIR/STEP.log as well as to the terminal, and has a time limit (seconds,
# below; 560 in all, so that the whole fits in 10 minutes), so that one slow or hanging step costs only its
# own results. A step that fails or runs out of time is reported and the next one runs; the exit status is the
# number of steps that failed. Needs minimatte with CuPy (`pip install -e '.[test,cupy]'`), and for gpu.py torch
# with CUDA and transformers.
set -uo pipefail
LOG_DIR=${1:-gpu_logs}
case $LOG_DIR in /*) ;; *) LOG_DIR=$PWD/$LOG_DIR ;; esac   # before the cd: a relative LOG_DIR is the caller's
cd "$(dirname "$0")/.."
ALL_STEPS=(environment tests speed stages foreground)
STEPS=("${ALL_STEPS[@]}")
[ $# -gt 1 ] && STEPS=("${@:2}")
for step in "${STEPS[@]}"; do
    if [[ " ${ALL_STEPS[*]} " != *" $step "* ]]; then
        echo "gpu_checks.sh: unknown step '$step' (expected one of: ${ALL_STEPS[*]})"
        exit 2
    fi
done
mkdir -p "$LOG_DIR"
export PYTHONUNBUFFERED=1   # each line reaches the log as it is printed, also from a step stopped at its limit

run_step() {  # name, time limit, command...
    local name=$1 limit=$2
    shift 2
    echo "== $name (at most $limit s): $*" | tee "$LOG_DIR/$name.log"
    local start=$SECONDS
    timeout --kill-after=10 "$limit" "$@" 2>&1 | tee -a "$LOG_DIR/$name.log"
    local status=$?
    local outcome="exit status $status"
    [ "$status" -eq 124 ] || [ "$status" -eq 137 ] && outcome="stopped at its limit"
    echo "== $name: $outcome after $((SECONDS - start)) s" | tee -a "$LOG_DIR/$name.log"
    return "$status"
}

failed=0
for step in "${STEPS[@]}"; do
    case $step in
        environment) run_step environment 20 bash -c 'nvidia-smi; python3 -c "
import sys, numpy, cupy; print(sys.version.split()[0], \"numpy\", numpy.__version__, \"cupy\", cupy.__version__)
import torch, transformers; print(\"torch\", torch.__version__, \"transformers\", transformers.__version__)"' ;;
        tests) run_step tests 180 python3 -m pytest -q -rs -p no:cacheprovider tests/test_gpu.py ;;
        speed) run_step speed 240 python3 benchmarks/gpu.py --warmups 3 --rounds 5 ;;
        stages) run_step stages 50 python3 benchmarks/stages.py --backend cupy --size 2048x2048 --rounds 3 ;;
        foreground) run_step foreground 70 python3 benchmarks/foreground.py --backends numpy cupy ;;
    esac || failed=$((failed + 1))
done
echo "== $failed of the steps failed"
exit "$failed"
