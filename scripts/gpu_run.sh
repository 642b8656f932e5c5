#!/usr/bin/env bash
# One prepared GPU session (the `device` tool): trains the shipped cascade (final + leave-one-
# patient-out folds) and the synthetic-lesion experiment side by side on one GPU from the carried
# training cache (work_data/cache) and wheels (.whl), evaluates the experiment on the GPU, and
# returns weights and results through $OUT. Usage there: BUDGET=3.0 bash scripts/gpu_run.sh
set -u
export PYTHONUNBUFFERED=1
T0=$(date +%s)
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target /tmp/site .whl/*.whl >/dev/null 2>&1 \
  || { echo "wheel install failed"; exit 3; }
export PYTHONPATH=/tmp/site:$PWD/src
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader
python3 -c "import torch; print('torch', torch.__version__, torch.cuda.is_available())"
python3 scripts/train_plan.py --plan all --device cuda --out runs/plan --budget-minutes "${BUDGET:-3.0}" > "$OUT/plan.log" 2>&1
echo "training done after $(( $(date +%s) - T0 )) s"; tail -2 "$OUT/plan.log"
python3 scripts/eval_tumor_experiment.py --runs runs/plan --device cuda --json "$OUT/experiment.json" \
  --markdown "$OUT/experiment.md" > "$OUT/eval.log" 2>&1
echo "eval done after $(( $(date +%s) - T0 )) s"
tar czf /tmp/w.tgz --exclude='*/last.pt' --exclude='*/tensorboard' --exclude='runs/plan/exp_*/best.pt' runs/plan
split -b 15m /tmp/w.tgz "$OUT/weights.tgz.part-"
ls -la "$OUT"
