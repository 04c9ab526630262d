#!/usr/bin/env bash
# The main job: ridge regression of arrival delay on the NYC flights data, on this machine,
# with the parameter server embedded in one process (a master and 2 worker tasks).
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh
swift build -c release --product taskgraph
.build/release/taskgraph train --data datasets/flights.csv.gz --label arr_delay \
  --categorical carrier,origin,dest --model ridge --l2 1e-6 --standardize \
  --validation-split 0.2 --workers 2 --output flights-model.json "$@"
