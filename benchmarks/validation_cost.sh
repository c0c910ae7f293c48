#!/usr/bin/env bash
# What the val loss of a one-epoch run costs: the same per-user training (the study's
# settings but the default system prompt, embedded model) with
# throughput.single_epoch_validation=true (the reference: every epoch validated, as before) and
# =false (the default: a one-epoch run skips the val loss it cannot use), one after the other in
# this run. Prints both wall times and their ratio; the adapters are the same either way
# (tests/test_training_engine.py).
#
#   OMP_NUM_THREADS=2 benchmarks/validation_cost.sh DATA_DIR OUT_DIR [PERSONAS]
#
# DATA_DIR: a `data prepare` directory (e.g. a study run's data/); OUT_DIR must not hold a
# finished run of the same settings (training skips finished adapters).
set -euo pipefail
data=$1
out=$2
personas=${3:-persona_001,persona_002,persona_003,persona_004}
python=${PYTHON:-.venv/bin/python}
calc() { awk -v a="$2" -v b="$3" "BEGIN { printf \"%.3f\", $1 }"; }  # calc "a / b" A B
declare -A seconds
for validate in true false; do
  start=$(date +%s.%N)
  "$python" -m adaptcommand train --strategy per-user --data "$data" --personas "$personas" \
    --model embedded --out "$out/validate_$validate" \
    --set optimizer.epochs=1 --set early_stopping.patience=null \
    --set optimizer.learning_rate=0.001 --set data.max_length=512 \
    --set prompt.max_context_messages=10 \
    --set throughput.single_epoch_validation=$validate >/dev/null
  seconds[$validate]=$(calc "a - b" "$(date +%s.%N)" "$start")
done
echo "validated (reference): ${seconds[true]} s"
echo "val loss skipped:      ${seconds[false]} s"
echo "ratio skipped/validated: $(calc "a / b" "${seconds[false]}" "${seconds[true]}")"
