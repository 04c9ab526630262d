import Foundation
import TaskGraphEtcd
import TaskGraphGRPC
import TaskGraphTestSupport
import Testing

/// The benchmarks, run only when `TASKGRAPH_BENCH=1` (use a release build:
/// `TASKGRAPH_BENCH=1 swift test -c release --filter BenchmarkTests`).
@Suite(
  "Benchmarks", .serialized,
  .enabled(if: ProcessInfo.processInfo.environment["TASKGRAPH_BENCH"] == "1"))
struct BenchmarkTests {
  @Test("one gRPC data request of 8 B, 8 KB, 8 MB")
  func transport() async throws {
    for figure in try await GRPCTransportBenchmark.run() { print("bench grpc:", figure) }
  }

  @Test("etcd put, get and compare-and-swap latency")
  func etcd() async throws {
    try await withEtcdTestServer { server in
      try await withEtcdCoordinator(EtcdConfiguration(endpoint: server.endpoint)) { etcd in
        for figure in try await EtcdCoordinatorBenchmark.run(etcd) { print("bench etcd:", figure) }
      }
    }
  }
}
