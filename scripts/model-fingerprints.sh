#!/usr/bin/env bash
# Fingerprints of the models a fixed set of training runs writes: one line per run, its name
# and the SHA-256 of the model's coefficients, intercept and objective (exact bits, as JSON
# prints them: shortest round-trip). Run it before and after a change that must not change
# any model (a refactoring) and diff the two outputs:
#   git stash; ./scripts/model-fingerprints.sh > before.txt; git stash pop
#   ./scripts/model-fingerprints.sh > after.txt; diff before.txt after.txt
# Runs: one process and --workers 1..4 by rows, columns, exact and iterative solvers, every
# model, and `launch` with a worker and the master killed (SIGKILL) mid-run.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh >&2
swift build -c release --product taskgraph >&2
bin=.build/release/taskgraph
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
diabetes=(--data datasets/diabetes.csv --label progression)
cancer=(--data datasets/breast_cancer.csv --label malignant)
run() {
  local name=$1
  shift
  "$bin" "$@" --output "$work/m.json" --quiet >/dev/null 2>"$work/err" || {
    echo "$name: failed: $(tail -1 "$work/err")"
    return
  }
  python3 - "$work/m.json" "$name" <<'PY'
import hashlib, json, sys
m = json.load(open(sys.argv[1]))
key = json.dumps([m["coefficients"], m["intercept"], m["training"]["objective"]])
print(f"{sys.argv[2]}: {hashlib.sha256(key.encode()).hexdigest()[:16]}")
PY
}
run "ridge exact" train "${diabetes[@]}" --model ridge --l2 0.01
run "ridge lbfgs" train "${diabetes[@]}" --model ridge --l2 0.01 --solver lbfgs
for w in 1 2 3 4; do
  run "ridge exact --workers $w" train "${diabetes[@]}" --model ridge --l2 0.01 --workers "$w"
  run "ridge lbfgs --workers $w" train "${diabetes[@]}" --model ridge --l2 0.01 --solver lbfgs \
    --workers "$w"
  run "logistic --workers $w" train "${cancer[@]}" --model logistic --l2 0.01 --workers "$w"
done
for w in 2 3; do
  run "ridge lbfgs columns --workers $w" train "${diabetes[@]}" --model ridge --l2 0.01 \
    --solver lbfgs --workers "$w" --partition columns
  run "logistic columns --workers $w" train "${cancer[@]}" --model logistic --l2 0.01 \
    --workers "$w" --partition columns
done
run "lasso owlqn" train "${diabetes[@]}" --model lasso --l1 0.5
run "lasso owlqn --workers 3" train "${diabetes[@]}" --model lasso --l1 0.5 --workers 3
run "elastic-net gd" train "${diabetes[@]}" --model elastic-net --l1 0.1 --l2 0.1 --solver gd
run "linear sgd --workers 2" train "${diabetes[@]}" --solver sgd --standardize --workers 2
run "logistic bounds" train "${cancer[@]}" --model logistic --l2 0.01 --upper 0.2
run "logistic bounds --workers 2" train "${cancer[@]}" --model logistic --l2 0.01 --upper 0.2 \
  --workers 2
run "flights ridge --workers 2" train --data datasets/flights.csv.gz --label arr_delay \
  --categorical carrier,origin,dest --model ridge --l2 1e-6 --standardize \
  --validation-split 0.2 --workers 2
run "launch logistic chaos" launch "${cancer[@]}" --model logistic --l2 0.01 --solver lbfgs \
  --workers 2 --chaos kill-workers=1,kill-master=1 --checkpoint-every 2 \
  --checkpoint-dir "$work/checkpoints"
