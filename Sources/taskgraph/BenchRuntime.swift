import ArgumentParser
import Foundation
import Logging
import TaskGraph
import TaskGraphEtcd
import TaskGraphGRPC
import TaskGraphTestSupport

/// An empty round per epoch: the master notifies every worker, every worker answers, and
/// the master advances the epoch. Its time is the framework's own overhead.
actor EmptyRoundMaster: MasterTask {
  let epochs: UInt64
  var answered = Set<Int>()
  var times: [Double] = []
  var started = DispatchTime.now().uptimeNanoseconds
  let done: @Sendable ([Double]) -> Void

  init(epochs: UInt64, done: @escaping @Sendable ([Double]) -> Void) {
    self.epochs = epochs
    self.done = done
  }

  func enterEpoch(_ epoch: UInt64, context: MasterContext) async {
    let now = DispatchTime.now().uptimeNanoseconds
    if epoch > 1 { times.append(Double(now - started) / 1e6) }
    started = now
    answered = []
    if epoch > epochs {
      done(times)
      try? await context.shutdownJob()
      return
    }
    for w in context.workers { await context.notifyWorker(w, message: []) }
  }

  func notified(by worker: Int, message: Payload, context: MasterContext) async throws {
    answered.insert(worker)
    if answered.count == context.workers.count { try await context.incrementEpoch() }
  }
}

struct EmptyRoundWorker: WorkerTask {
  func enterEpoch(_ epoch: UInt64, context: WorkerContext) async {}
  func notified(message: Payload, context: WorkerContext) async throws {
    await context.notifyMaster([])
  }
}

final class TimesBox: @unchecked Sendable {
  // Unchecked Sendable: `value` is only touched under `lock`.
  private let lock = NSLock()
  private var value: [Double] = []
  func set(_ v: [Double]) {
    lock.lock()
    value = v
    lock.unlock()
  }
  var get: [Double] {
    lock.lock()
    defer { lock.unlock() }
    return value
  }
}

struct BenchRuntime: AsyncParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "runtime",
    abstract: "Time empty epochs, data requests and etcd calls, embedded and over gRPC + etcd.",
    discussion: """
      Starts a private etcd on a free loopback port. For each task count, runs empty rounds \
      (master notifies every worker, each answers, master advances the epoch) on the \
      embedded coordinator and in-process transport, then on etcd and gRPC, and prints the \
      median ms per epoch: with etcd's data directory on disk (under the temporary \
      directory), and again in memory (/dev/shm, when there is one) to separate the \
      framework's overhead from the disk's flush latency of etcd's one write per epoch. \
      Then one data request of 8 B, 8 KB and 8 MB over gRPC (MB/s; sizes of whole doubles \
      travel as doubles, as training's vectors do), the same payloads pushed to 2 servers at \
      once (--fan-out; as a master sends every worker the parameters, MB/s counting one \
      copy), and etcd put / get / compare-and-swap latencies.
      """
  )

  @Option(help: "Comma-separated task counts (a master and N−1 workers).") var tasks = "2,4,16"
  @Option(help: "Epochs per run.") var epochs: UInt64 = 50
  @Option(help: "Comma-separated payload sizes of the data requests, bytes.")
  var payloads = "8,8192,8388608"
  @Option(help: "Comma-separated parts to run: epochs, requests, etcd.")
  var parts = "epochs,requests,etcd"
  @Option(
    help:
      "Comma-separated counts of servers each payload is also pushed to at once (a master sending every worker the parameters)."
  )
  var fanOut = "2"

  func run() async throws {
    Log.setup(verbose: false)
    let parts = Set(list(self.parts))
    let shm = "/dev/shm"
    let server = try await EtcdTestServer.start()
    var inMemory: EtcdTestServer?
    // Every etcd started here stops however the run ends: a failed run must not leave one
    // behind.
    try await withCleanup {
      if parts.contains("epochs") && FileManager.default.fileExists(atPath: shm) {
        inMemory = try await EtcdTestServer.start(parent: shm)
      }
      try await measure(parts: parts, server: server, inMemory: inMemory)
    } cleanup: {
      await inMemory?.shutdown()
      await server.shutdown()
    }
  }

  /// Runs the benchmark's `parts` with `server` (and `inMemory`, etcd with its data in
  /// memory, for the epochs).
  private func measure(parts: Set<String>, server: EtcdTestServer, inMemory: EtcdTestServer?)
    async throws
  {
    let quiet = Logger(label: "bench", factory: { _ in SwiftLogNoOpLogHandler() })
    if parts.contains("epochs") {
      print("empty epoch (master ↔ all workers, epoch advanced in the coordinator)")
      print("tasks   embedded ms/epoch   gRPC+etcd ms/epoch   (etcd data in memory)")
    }
    for n in list(tasks).compactMap({ Int($0) }).filter({ $0 >= 2 }) where parts.contains("epochs")
    {
      let embedded = try await emptyRounds(
        tasks: n, coordinator: InMemoryCoordinator(), transport: InProcessTransport(),
        job: "bench-embedded-\(n)", logger: quiet)
      let remote = try await remoteRounds(
        tasks: n, etcd: server, job: "bench-grpc-\(n)", logger: quiet)
      var memory = "-"
      if let inMemory {
        let ms = try await remoteRounds(
          tasks: n, etcd: inMemory, job: "bench-shm-\(n)", logger: quiet)
        memory = String(format: "%.3f", ms)
      }
      print(String(format: "%5d %18.3f %20.3f %@", n, embedded, remote, memory.leftPad(24)))
    }
    // Idle, it would only add noise to what follows.
    await inMemory?.shutdown()
    if parts.contains("requests") {
      print("\none data request over gRPC on loopback")
      let sizes = list(payloads).compactMap { Int($0) }
      let fan = list(fanOut).compactMap { Int($0) }
      for f in try await GRPCTransportBenchmark.run(payloadSizes: sizes, fanOut: fan) {
        print("  \(f)")
      }
    }
    guard parts.contains("etcd") else { return }
    print("\netcd on loopback")
    let coordinator = try await EtcdCoordinator.connect(
      EtcdConfiguration(endpoint: server.endpoint))
    try await withCleanup {
      for f in try await EtcdCoordinatorBenchmark.run(coordinator, iterations: 100) {
        print("  \(f)")
      }
    } cleanup: {
      await coordinator.close()
    }
  }

  /// Median milliseconds per empty epoch over gRPC, coordinated by `etcd`.
  func remoteRounds(tasks: Int, etcd: EtcdTestServer, job: String, logger: Logger)
    async throws -> Double
  {
    let coordinator = try await EtcdCoordinator.connect(EtcdConfiguration(endpoint: etcd.endpoint))
    let transport = GRPCTransport()
    let ms = try await emptyRounds(
      tasks: tasks, coordinator: coordinator, transport: transport, job: job, logger: logger)
    await transport.close()
    await coordinator.close()
    return ms
  }

  /// Median milliseconds per empty epoch.
  func emptyRounds(
    tasks: Int, coordinator: any Coordinator, transport: any Transport, job: String,
    logger: Logger
  ) async throws -> Double {
    let topology = StarTopology(taskCount: tasks)
    let box = TimesBox()
    let epochs = self.epochs
    try await Controller(
      coordinator: coordinator, job: job,
      spec: JobSpec(taskCount: tasks, topology: topology.description)
    ).create()
    let builder = MasterWorker.builder(
      master: { EmptyRoundMaster(epochs: epochs) { box.set($0) } },
      worker: { _ in EmptyRoundWorker() })
    try await withThrowingTaskGroup(of: Void.self) { group in
      for id in 0..<tasks {
        let node = Node(
          configuration: NodeConfiguration(job: job, slot: .exactly(id)),
          coordinator: coordinator, transport: transport, topology: topology, logger: logger,
          builder: builder)
        group.addTask { _ = try await node.run() }
      }
      try await group.waitForAll()
    }
    let t = box.get.sorted()
    return t.isEmpty ? .nan : t[t.count / 2]
  }
}

extension String {
  /// The string right-aligned in `width` columns.
  func leftPad(_ width: Int) -> String {
    String(repeating: " ", count: max(0, width - count)) + self
  }
}
