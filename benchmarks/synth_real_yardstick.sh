#!/usr/bin/env bash
# Does the synthetic corpus teach the right things for real text? The demo's unified adapter
# (embedded SmolLM2-135M, 4 synthetic users x 16 sessions, 1 epoch, short system prompt, 3 pairs
# of context) against the base model on every assistant turn of the real sample, paired per user.
# Usage: benchmarks/synth_real_yardstick.sh [WORKDIR] [extra `data synth` options, e.g. --clean]
# A stage whose outputs exist in WORKDIR is skipped (the base model's predictions on the real
# turns do not depend on the corpus: copy a previous run's real_base/ to save its time); the
# evaluation harness resumes from its own partial predictions.
set -euo pipefail
work=${1:-runs/synth_yardstick}
shift || true
A="${PYTHON:-.venv/bin/python} -m adaptcommand"
real=data/edgewisepersona_sample/cold_start_dev.jsonl
sp="You are a smart-home assistant for TV, AC, lights, speaker and security. State every setting you apply with its value."
prompt=(--set "prompt.system_prompt=$sp" --set prompt.max_context_messages=3
        --set generation.max_new_tokens=40 --skip-assistant-turns 0)
mkdir -p "$work"
[ -f "$work/raw/sessions.jsonl" ] || $A data synth --personas 4 --sessions 16 --seed 0 --out "$work/raw" "$@"
[ -f "$work/data/edgesplits.json" ] || $A data prepare --source "$work/raw" --out "$work/data"
[ -f "$work/adapters/training_summary.json" ] ||
  $A train --strategy unified --data "$work/data" --out "$work/adapters" --model embedded \
    --set optimizer.epochs=1 --set data.max_length=256 --set early_stopping.patience=null \
    --set optimizer.learning_rate=0.001 --set "prompt.system_prompt=$sp" \
    --set prompt.max_context_messages=3
[ -f "$work/real_base/results.json" ] || $A baseline --dialogues "$real" --out "$work/real_base" "${prompt[@]}"
$A eval --adapters "$work/adapters" --dialogues "$real" --out "$work/real_unified" "${prompt[@]}"
$A compare "$work/real_base" "$work/real_unified" --out "$work/report"
