#!/usr/bin/env bash
# The whole test suite: system packages, format lint, then every test target.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh
swift format lint --strict --recursive Sources Tests Examples Package.swift
# The independent references of the conformance tests (NumPy, scikit-learn), installed
# privately; the tests find the interpreter through TASKGRAPH_REFERENCE_PYTHON.
venv=.build/reference-venv
[ -x "$venv/bin/python" ] || python3 -m venv "$venv"
"$venv/bin/python" -c "import numpy, sklearn" 2>/dev/null ||
  "$venv/bin/pip" install -q numpy scikit-learn
export TASKGRAPH_REFERENCE_PYTHON="$PWD/$venv/bin/python"
swift build --build-tests
swift test --skip-build 2>&1 | tee .build/test-output.txt
