#!/usr/bin/env bash
# Regenerates the committed Swift code for TaskGraph's protos. Not part of the build:
# the generated files are committed, and this script documents how they were made.
#
# Usage: scripts/generate-protos.sh PLUGIN_DIR
#   PLUGIN_DIR holds protoc-gen-swift and protoc-gen-grpc-swift-2, built once in a helper
#   package that depends on grpc-swift-protobuf (2.4.1) and swift-protobuf (1.39.0):
#     swift build -c release --product protoc-gen-grpc-swift-2
#     swift build -c release --product protoc-gen-swift
#   (PLUGIN_DIR is then that package's .build/release). Needs protoc (3.21 was used).
set -euo pipefail

plugins="${1:?usage: $0 PLUGIN_DIR (holding protoc-gen-swift and protoc-gen-grpc-swift-2)}"
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"

generate() {
  local out="$1"
  shift
  rm -rf "$out"
  mkdir -p "$out"
  protoc --proto_path=protos \
    --plugin=protoc-gen-swift="$plugins/protoc-gen-swift" \
    --plugin=protoc-gen-grpc-swift="$plugins/protoc-gen-grpc-swift-2" \
    --swift_out="$out" --swift_opt=Visibility=Internal \
    --grpc-swift_out="$out" --grpc-swift_opt=Visibility=Internal,Server=true,Client=true \
    "$@"
  # Keep generated code in the house style so `swift format lint --strict` passes.
  swift format --in-place --recursive "$out"
}

# etcd's v3 API subset (wire compatible with etcd 3.4) for the etcd coordinator.
generate Sources/TaskGraphEtcd/Generated etcd/kv.proto etcd/rpc.proto
# TaskGraph's data-request transport.
generate Sources/TaskGraphGRPC/Generated taskgraph_transport.proto
echo "generated into Sources/TaskGraphEtcd/Generated and Sources/TaskGraphGRPC/Generated"
