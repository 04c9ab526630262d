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
  local out="$1" grpc_options="$2"
  shift 2
  rm -rf "$out"
  mkdir -p "$out"
  protoc --proto_path=protos \
    --plugin=protoc-gen-swift="$plugins/protoc-gen-swift" \
    --plugin=protoc-gen-grpc-swift="$plugins/protoc-gen-grpc-swift-2" \
    --swift_out="$out" --swift_opt=Visibility=Internal \
    --grpc-swift_out="$out" --grpc-swift_opt="$grpc_options" \
    "$@"
  # The generated files start with `// swift-format-ignore-file`, so
  # `swift format lint --strict --recursive Sources` skips them.
}

# etcd's v3 API subset (wire compatible with etcd 3.4) for the etcd coordinator.
# Only clients: TaskGraph never serves etcd's API. kv.proto has no services.
generate Sources/TaskGraphEtcd/Generated Visibility=Internal,Server=false,Client=true \
  etcd/kv.proto etcd/rpc.proto
rm -f Sources/TaskGraphEtcd/Generated/etcd/kv.grpc.swift
# TaskGraph's data-request transport.
generate Sources/TaskGraphGRPC/Generated Visibility=Internal,Server=true,Client=true \
  taskgraph_transport.proto
echo "generated into Sources/TaskGraphEtcd/Generated and Sources/TaskGraphGRPC/Generated"
