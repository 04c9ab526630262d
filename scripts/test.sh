#!/usr/bin/env bash
# The whole test suite: system packages, format lint, then every test target.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh
swift format lint --strict --recursive Sources Tests Examples Package.swift
swift build --build-tests
swift test --skip-build 2>&1 | tee .build/test-output.txt
