import TaskGraph
import TaskGraphEtcd
import TaskGraphGRPC
import TaskGraphTestSupport

/// `--bench`: the runtime's framework overhead and data-request throughput, embedded and
/// over gRPC + a private etcd on loopback (every node in this process).
enum RuntimeBench {
  static let taskCounts = [2, 4, 16]
  static let payloads = [8, 8 * 1024, 8 * 1024 * 1024]

  static func run(epochs: UInt64) async throws {
    for tasks in taskCounts {
      let rounds = try await RuntimeBenchmark.emptyRounds(
        coordinator: InMemoryCoordinator(), transport: InProcessTransport(), tasks: tasks,
        epochs: epochs)
      print("embedded     empty round, \(rounds)")
    }
    for bytes in payloads {
      let throughput = try await RuntimeBenchmark.dataRequests(
        coordinator: InMemoryCoordinator(), transport: InProcessTransport(),
        payloadBytes: bytes, requests: requests(bytes))
      print("embedded     data request, \(throughput)")
    }
    let server = try await EtcdTestServer.start()
    let coordinator: EtcdCoordinator
    do {
      coordinator = try await EtcdCoordinator.connect(EtcdConfiguration(endpoint: server.endpoint))
    } catch {
      await server.shutdown()
      throw error
    }
    let transport = GRPCTransport()
    do {
      for tasks in taskCounts {
        let rounds = try await RuntimeBenchmark.emptyRounds(
          coordinator: coordinator, transport: transport, job: "rounds-\(tasks)", tasks: tasks,
          epochs: epochs)
        print("gRPC + etcd  empty round, \(rounds)")
      }
      for bytes in payloads {
        let throughput = try await RuntimeBenchmark.dataRequests(
          coordinator: coordinator, transport: transport, job: "requests-\(bytes)",
          payloadBytes: bytes, requests: requests(bytes))
        print("gRPC + etcd  data request, \(throughput)")
      }
    } catch {
      await transport.close()
      await coordinator.close()
      await server.shutdown()
      throw error
    }
    await transport.close()
    await coordinator.close()
    await server.shutdown()
  }

  static func requests(_ bytes: Int) -> Int { bytes >= 1024 * 1024 ? 10 : 200 }
}
