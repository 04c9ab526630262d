import Synchronization

/// Measurements of the runtime itself, on any coordinator and transport: the framework
/// overhead of an epoch, and the throughput of data requests.
///
/// Every node of the measured job runs in this process (one `Node` per slot, sharing the
/// coordinator and the transport), so the figures include the coordinator's and the
/// transport's round trips but no process start-up. For example, embedded:
///
/// ```swift
/// let rounds = try await RuntimeBenchmark.emptyRounds(
///   coordinator: InMemoryCoordinator(), transport: InProcessTransport(), tasks: 16,
///   epochs: 50)
/// print(rounds.perEpoch)
/// ```
public enum RuntimeBenchmark {
  /// The result of ``emptyRounds(coordinator:transport:job:tasks:epochs:)``.
  public struct Rounds: Sendable, CustomStringConvertible {
    /// The number of tasks.
    public var tasks: Int
    /// The number of measured epochs.
    public var epochs: UInt64
    /// From the master entering epoch 1 to it entering the epoch after the last.
    public var total: Duration
    /// `total / epochs`.
    public var perEpoch: Duration { total / Double(epochs) }

    /// `N tasks: T ms per epoch`.
    public var description: String {
      "\(tasks) tasks: \(milliseconds(perEpoch)) ms per epoch (\(epochs) epochs)"
    }
  }

  /// The result of ``dataRequests(coordinator:transport:job:payloadBytes:requests:)``.
  public struct Throughput: Sendable, CustomStringConvertible {
    /// The size of one response.
    public var payloadBytes: Int
    /// The number of requests, one after the other.
    public var requests: Int
    /// From the first request to the last response.
    public var total: Duration
    /// The bytes of all responses delivered (`payloadBytes · requests` if none was lost).
    public var bytesReceived: Int
    /// Response bytes per second.
    public var bytesPerSecond: Double {
      Double(payloadBytes) * Double(requests) / total.seconds
    }

    /// `N B × R: T ms per request, X MB/s`.
    public var description: String {
      let mbps = (bytesPerSecond / 1e6 * 10).rounded() / 10
      let each = milliseconds(total / Double(requests))
      return "\(payloadBytes) B × \(requests): \(each) ms per request, \(mbps) MB/s"
    }
  }

  /// Runs a job of empty rounds on a star of `tasks` tasks: in each epoch every worker flags
  /// the master, and the master advances the epoch once all have. Returns the time per
  /// epoch, the framework's overhead for an epoch in which no work is done.
  public static func emptyRounds(
    coordinator: any Coordinator, transport: any Transport, job: String = "bench-rounds",
    tasks: Int, epochs: UInt64
  ) async throws -> Rounds {
    precondition(tasks >= 2, "a round needs a master and a worker")
    precondition(epochs >= 1, "measure at least one epoch")
    let clock = StopClock()
    try await runJob(
      coordinator: coordinator, transport: transport, job: job,
      topology: StarTopology(taskCount: tasks)
    ) { id in
      RoundTask(id: id, epochs: epochs, workers: tasks - 1, clock: clock)
    }
    return Rounds(tasks: tasks, epochs: epochs, total: try clock.elapsed())
  }

  /// Runs a job of two tasks in which the master requests `payloadBytes` from the worker
  /// `requests` times, one after the other, in epoch 1. Returns the throughput.
  public static func dataRequests(
    coordinator: any Coordinator, transport: any Transport, job: String = "bench-requests",
    payloadBytes: Int, requests: Int
  ) async throws -> Throughput {
    precondition(payloadBytes >= 0 && requests >= 1, "measure at least one request")
    let clock = StopClock()
    let payload = Payload([UInt8](repeating: 0x5a, count: payloadBytes))
    try await runJob(
      coordinator: coordinator, transport: transport, job: job,
      topology: StarTopology(taskCount: 2)
    ) { id in
      RequestTask(id: id, requests: requests, payload: payload, clock: clock)
    }
    return Throughput(
      payloadBytes: payloadBytes, requests: requests, total: try clock.elapsed(),
      bytesReceived: clock.bytes)
  }

  /// Lays out `job`, runs one node per slot in this process until the job ends.
  private static func runJob(
    coordinator: any Coordinator, transport: any Transport, job: String,
    topology: any Topology, builder: @escaping Node.TaskBuilder
  ) async throws {
    let controller = Controller(
      coordinator: coordinator, job: job,
      spec: JobSpec(taskCount: topology.taskCount, topology: topology.description))
    try await controller.create()
    try await withThrowingTaskGroup(of: Void.self) { group in
      for id in 0..<topology.taskCount {
        let node = Node(
          configuration: NodeConfiguration(job: job, slot: .exactly(id)),
          coordinator: coordinator, transport: transport, topology: topology, builder: builder)
        group.addTask { _ = try await node.run() }
      }
      try await group.waitForAll()
    }
  }
}

/// The start and stop instants of a measurement, set from inside tasks.
final class StopClock: Sendable {
  private let instants = Mutex<(start: ContinuousClock.Instant?, stop: ContinuousClock.Instant?)>(
    (nil, nil))
  private let received = Atomic<Int>(0)

  /// The bytes counted with `add(bytes:)`.
  var bytes: Int { received.load(ordering: .relaxed) }
  func add(bytes: Int) { received.add(bytes, ordering: .relaxed) }

  func start() { instants.withLock { $0.start = .now } }
  func stop() { instants.withLock { $0.stop = .now } }

  func elapsed() throws -> Duration {
    let (start, stop) = instants.withLock { $0 }
    guard let start, let stop else {
      throw CoordinatorError(code: .internalError, message: "the benchmark job did not finish")
    }
    return stop - start
  }
}

/// An empty round: workers flag the master, which advances the epoch once all have.
actor RoundTask: GraphTask {
  let id: Int
  let epochs: UInt64
  let workers: Int
  let clock: StopClock
  private var flagged: Set<Int> = []

  init(id: Int, epochs: UInt64, workers: Int, clock: StopClock) {
    self.id = id
    self.epochs = epochs
    self.workers = workers
    self.clock = clock
  }

  func enterEpoch(_ epoch: UInt64, context: TaskContext) async {
    flagged = []
    do {
      if id != 0 {
        if epoch >= 1 { try await context.flagMeta(linkType: StarTopology.master, meta: "done") }
      } else if epoch == 0 {
        try await context.incrementEpoch()
      } else if epoch > epochs {
        clock.stop()
        try await context.shutdownJob()
      } else if epoch == 1 {
        clock.start()
      }
    } catch {
      // The epoch ended under us; the next one carries on.
    }
  }

  func metaReady(from task: Int, linkType: String, meta: String, context: TaskContext) async {
    guard id == 0, context.epoch >= 1 else { return }
    flagged.insert(task)
    if flagged.count == workers { try? await context.incrementEpoch() }
  }

  func serveData(from task: Int, method: String, request: Payload, context: TaskContext)
    async throws -> Payload
  { [] }
}

/// The master requests the worker's payload `requests` times in epoch 1, then ends the job.
actor RequestTask: GraphTask {
  let id: Int
  let requests: Int
  let payload: Payload
  let clock: StopClock
  private var received = 0

  init(id: Int, requests: Int, payload: Payload, clock: StopClock) {
    self.id = id
    self.requests = requests
    self.payload = payload
    self.clock = clock
  }

  func enterEpoch(_ epoch: UInt64, context: TaskContext) async {
    guard id == 0 else { return }
    if epoch == 0 {
      try? await context.incrementEpoch()
    } else if epoch == 1 {
      clock.start()
      await context.dataRequest(to: 1, method: "payload")
    }
  }

  func dataReady(from task: Int, method: String, response: Payload, context: TaskContext) async {
    received += 1
    clock.add(bytes: response.count)
    if received < requests {
      await context.dataRequest(to: 1, method: "payload")
    } else {
      clock.stop()
      try? await context.shutdownJob()
    }
  }

  func serveData(from task: Int, method: String, request: Payload, context: TaskContext)
    async throws -> Payload
  { payload }
}

/// `duration` in milliseconds, rounded to microseconds.
private func milliseconds(_ duration: Duration) -> Double {
  (duration.seconds * 1e6).rounded() / 1e3
}
