#!/usr/bin/env bash
# Time TaskGraph side by side with scikit-learn and pandas (installed here, privately).
# `--only csv`: just the CSV load times and the peak memory of training runs; `--only npy`: the
# .npy load time against np.load; `--only fit`: the solver timings.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh
swift build -c release --product taskgraph
venv=.build/bench-venv
[ -x "$venv/bin/python" ] || python3 -m venv "$venv"
"$venv/bin/pip" install -q scikit-learn pandas threadpoolctl
exec "$venv/bin/python" benchmarks/compare.py --taskgraph .build/release/taskgraph "$@"
