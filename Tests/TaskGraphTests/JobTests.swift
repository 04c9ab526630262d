import Logging
import Synchronization
import TaskGraphTestSupport
import XCTest

@testable import TaskGraph

struct TestTimeout: Error, CustomStringConvertible {
  var description: String { "test did not finish within its time bound" }
}

/// Runs `body` with an upper bound on its duration (a bound, not a synchronisation).
func bounded<T: Sendable>(
  _ limit: Duration = .seconds(60), _ body: @escaping @Sendable () async throws -> T
) async throws -> T {
  try await withDeadline(limit, onTimeout: { TestTimeout() }, body)
}

/// Waits until `key` has been written (watch history replays earlier writes).
func waitForKey(_ coordinator: any Coordinator, _ key: String) async throws {
  for try await event in coordinator.watch(prefix: key, fromRevision: 1) {
    if case .put(let kv) = event, kv.key == key { return }
  }
}

/// Waits until the recorder notes an event satisfying `predicate` (or has noted one).
func waitForEvent(_ recorder: Recorder, _ predicate: @escaping @Sendable (String) -> Bool)
  async
{
  let stream = await recorder.listen()
  if await recorder.events.contains(where: predicate) { return }
  for await event in stream where predicate(event) { return }
}

let fastRetry = RetryPolicy(
  backoff: Backoff(initial: .milliseconds(1), multiplier: 2, maximum: .milliseconds(20)),
  attemptTimeout: .seconds(2))

final class JobTests: XCTestCase {
  func testRegressionSeriesEmbeddedWith15Tasks() async throws {
    let recorder = Recorder()
    let job = EmbeddedJob(topology: TreeTopology(taskCount: 15, fanOut: 2), retry: fastRetry) {
      TreeSumTask(id: $0, epochs: 10, recorder: recorder)
    }
    let outcomes = try await bounded { try await job.run() }
    XCTAssertEqual(outcomes, (0..<15).map { .finished(taskID: $0) })
    let series = try await recordedSeries(job.controller)
    XCTAssertEqual(series, expectedSeries(tasks: 15, epochs: 10))
    XCTAssertEqual(series[1], 105)
    XCTAssertEqual(series[10], 1050)
    // Every node ran its exit hook; every request was served and delivered once.
    let exits = await recorder.exits
    XCTAssertEqual(exits.sorted(), Array(0..<15))
    let deliveries = await recorder.deliveries
    XCTAssertEqual(deliveries.count, 10 * 14 * 2, "14 param and 14 value requests per epoch")
    XCTAssertTrue(deliveries.values.allSatisfy { $0 == 1 })
    let serves = await recorder.serves
    XCTAssertTrue(serves.values.allSatisfy { $0 == 1 })
    // Every lease was revoked on exit.
    let leases = await job.coordinator.liveLeases
    XCTAssertEqual(leases, [])
  }

  func testExactlyOnceUnderSeededDropsDuplicatesAndReordering() async throws {
    for seed: UInt64 in [1, 2, 3] {
      let recorder = Recorder()
      let faulty = FaultInjectingTransport(
        wrapping: InProcessTransport(), seed: seed,
        plan: FaultPlan(
          dropRequest: 0.2, dropResponse: 0.2, duplicate: 0.2, delay: 0.3,
          maximumDelay: .milliseconds(3)))
      let job = EmbeddedJob(
        name: "faulty-\(seed)", topology: TreeTopology(taskCount: 15, fanOut: 2),
        transport: faulty, retry: fastRetry
      ) {
        TreeSumTask(id: $0, epochs: 10, recorder: recorder)
      }
      let outcomes = try await bounded { try await job.run() }
      XCTAssertEqual(outcomes, (0..<15).map { .finished(taskID: $0) })
      let series = try await recordedSeries(job.controller)
      XCTAssertEqual(series, expectedSeries(tasks: 15, epochs: 10), "seed \(seed)")
      let deliveries = await recorder.deliveries
      XCTAssertEqual(deliveries.count, 280)
      XCTAssertTrue(deliveries.values.allSatisfy { $0 == 1 }, "each response delivered once")
      let serves = await recorder.serves
      XCTAssertTrue(
        serves.values.allSatisfy { $0 == 1 }, "duplicates answered from the response cache")
      let counts = faulty.counts
      XCTAssertGreaterThan(counts.droppedRequests, 0)
      XCTAssertGreaterThan(counts.droppedResponses, 0)
      XCTAssertGreaterThan(counts.duplicated, 0)
      XCTAssertGreaterThan(counts.delayed, 0)
      XCTAssertEqual(counts.mismatchedDuplicates, 0)
    }
  }

  func testKilledTasksAreReplacedAndToldTheCurrentEpoch() async throws {
    let recorder = Recorder()
    let coordinator = InMemoryCoordinator()
    let transport = InProcessTransport()
    let topology = TreeTopology(taskCount: 15, fanOut: 2)
    let layout = JobLayout(job: "replace")
    let controller = Controller(
      coordinator: coordinator, job: layout.job,
      spec: JobSpec(taskCount: 15, topology: topology.description))
    try await controller.create()
    let kills: [Int: (epoch: UInt64, point: KillPoint)] = [
      3: (4, .parameterArrived), 5: (6, .serveValue), 0: (8, .enterEpoch),
    ]
    @Sendable func node(_ slot: Int, kill: (epoch: UInt64, point: KillPoint)?) -> Node {
      Node(
        configuration: NodeConfiguration(
          job: layout.job, leaseTTL: .seconds(30), retry: fastRetry, slot: .exactly(slot)),
        coordinator: coordinator, transport: transport, topology: topology
      ) { id in
        TreeSumTask(id: id, epochs: 10, recorder: recorder, kill: kill)
      }
    }
    let outcomes = try await bounded {
      try await withThrowingTaskGroup(of: NodeOutcome.self) { group in
        for slot in 0..<15 {
          let n = node(slot, kill: kills[slot])
          group.addTask { try await n.run() }
        }
        var outcomes: [NodeOutcome] = []
        for try await outcome in group {
          outcomes.append(outcome)
          if case .killed(let id) = outcome {
            // The crashed node's lease runs out; a fresh node claims the slot.
            let address = try await coordinator.get(layout.address(id))
            let expired = await coordinator.expireLease(address!.lease!)
            XCTAssertTrue(expired)
            let fresh = node(id, kill: nil)
            group.addTask { try await fresh.run() }
          }
        }
        return outcomes
      }
    }
    XCTAssertEqual(outcomes.filter { if case .killed = $0 { true } else { false } }.count, 3)
    XCTAssertEqual(outcomes.filter { if case .finished = $0 { true } else { false } }.count, 15)
    let series = try await recordedSeries(controller)
    XCTAssertEqual(series, expectedSeries(tasks: 15, epochs: 10))
    let events = await recorder.events
    for (id, kill) in kills {
      XCTAssertTrue(events.contains("killed \(id) \(kill.epoch)"))
      XCTAssertEqual(
        events.filter { $0 == "enter \(id) \(kill.epoch)" }.count, 2,
        "the replacement of \(id) is told the current epoch")
    }
    let exits = await recorder.exits
    XCTAssertEqual(exits.sorted(), Array(0..<15), "killed nodes run no exit hook")
  }

  func testHotStandbyTakesOverWhenThePrimaryLeaseExpires() async throws {
    let recorder = Recorder()
    let coordinator = InMemoryCoordinator(sweepInterval: .milliseconds(20))
    let transport = InProcessTransport()
    let topology = TreeTopology(taskCount: 7, fanOut: 2)
    let layout = JobLayout(job: "standby")
    let controller = Controller(
      coordinator: coordinator, job: layout.job,
      spec: JobSpec(taskCount: 7, topology: topology.description))
    try await controller.create()
    @Sendable func node(
      _ slot: Int, standby: Bool = false, kill: (epoch: UInt64, point: KillPoint)? = nil
    ) -> Node {
      Node(
        configuration: NodeConfiguration(
          job: layout.job, leaseTTL: .seconds(1), keepAliveInterval: .milliseconds(100),
          retry: fastRetry, slot: .exactly(slot), standby: standby),
        coordinator: coordinator, transport: transport, topology: topology
      ) { id in
        TreeSumTask(id: id, epochs: 6, recorder: recorder, kill: kill)
      }
    }
    let outcomes = try await bounded {
      try await withThrowingTaskGroup(of: NodeOutcome.self) { group in
        for slot in 0..<7 {
          let n = node(slot, kill: slot == 0 ? (3, .enterEpoch) : nil)
          group.addTask { try await n.run() }
        }
        try await waitForKey(coordinator, layout.address(0))
        let backup = node(0, standby: true)
        group.addTask { try await backup.run() }
        await waitForEvent(recorder) { $0 == "backup 0" }
        var outcomes: [NodeOutcome] = []
        for try await outcome in group { outcomes.append(outcome) }
        return outcomes
      }
    }
    XCTAssertEqual(outcomes.filter { $0 == .killed(taskID: 0) }.count, 1)
    XCTAssertEqual(outcomes.filter { if case .finished = $0 { true } else { false } }.count, 7)
    let events = await recorder.events
    let backup = events.firstIndex(of: "backup 0")!
    let killed = events.firstIndex(of: "killed 0 3")!
    let primary = events.firstIndex(of: "primary 0")!
    XCTAssertLessThan(backup, primary)
    XCTAssertLessThan(killed, primary)
    XCTAssertEqual(events.filter { $0 == "enter 0 3" }.count, 2)
    // Every other task heard once that slot 0 has a new node, and of no other slot.
    let replaced = events.filter { $0.hasPrefix("replaced") }
    XCTAssertEqual(replaced.sorted(), (1..<7).map { "replaced 0 seen by \($0)" }, "\(events)")
    let series = try await recordedSeries(controller)
    XCTAssertEqual(series, expectedSeries(tasks: 7, epochs: 6))
  }

  func testEpochChangeCancelsPendingWork() async throws {
    let recorder = Recorder()
    let coordinator = InMemoryCoordinator()
    let layout = JobLayout(job: "cancel")
    let topology = FullTopology(taskCount: 2)
    let controller = Controller(
      coordinator: coordinator, job: layout.job,
      spec: JobSpec(taskCount: 2, topology: topology.description))
    try await controller.create()
    let advanced = try await coordinator.compareAndSwap(
      layout.epoch, expected: Array("0".utf8), new: Array("1".utf8))
    XCTAssertTrue(advanced)
    let transport = InProcessTransport()
    let nodes = (0..<2).map { slot in
      Node(
        configuration: NodeConfiguration(job: layout.job, retry: fastRetry, slot: .exactly(slot)),
        coordinator: coordinator, transport: transport, topology: topology
      ) { id in SlowPairTask(id: id, recorder: recorder) }
    }
    let outcomes = try await bounded {
      try await withThrowingTaskGroup(of: NodeOutcome.self) { group in
        let served = Task { await waitForEvent(recorder) { $0 == "serving 1" } }
        for n in nodes { group.addTask { try await n.run() } }
        await served.value
        let cancelled = Task { await waitForEvent(recorder) { $0 == "serve cancelled 1" } }
        let entered = Task { await waitForEvent(recorder) { $0 == "enter 0 2" } }
        let moved = try await coordinator.compareAndSwap(
          layout.epoch, expected: Array("1".utf8), new: Array("2".utf8))
        XCTAssertTrue(moved)
        await cancelled.value
        await entered.value
        _ = try await coordinator.put(layout.status, Array("done".utf8), lease: nil)
        var outcomes: [NodeOutcome] = []
        for try await outcome in group { outcomes.append(outcome) }
        return outcomes
      }
    }
    XCTAssertEqual(Set(outcomes), [.finished(taskID: 0), .finished(taskID: 1)])
    let events = await recorder.events
    XCTAssertFalse(events.contains { $0.hasPrefix("data") }, "no response of epoch 1: \(events)")
    let exits = await recorder.exits
    XCTAssertEqual(exits.sorted(), [0, 1])
  }

  func testFailsFastOnMissingJobAndOnFullJob() async throws {
    let coordinator = InMemoryCoordinator()
    let transport = InProcessTransport()
    let topology = FullTopology(taskCount: 1)
    @Sendable func node(_ job: String) -> Node {
      Node(
        configuration: NodeConfiguration(job: job), coordinator: coordinator,
        transport: transport, topology: topology
      ) { id in IdleTask() }
    }
    do {
      _ = try await bounded { try await node("missing").run() }
      XCTFail("a node of a missing job must fail")
    } catch let error as CoordinatorError {
      XCTAssertEqual(error.code, .jobNotFound)
      XCTAssertTrue(error.message.contains("missing"))
    }
    let controller = Controller(
      coordinator: coordinator, job: "small", spec: JobSpec(taskCount: 1, topology: "full(1)"))
    try await controller.create()
    do {
      try await controller.create()
      XCTFail("a job cannot be created twice")
    } catch let error as CoordinatorError {
      XCTAssertEqual(error.code, .jobExists)
    }
    let first = Task { try await node("small").run() }
    try await bounded { try await waitForKey(coordinator, JobLayout(job: "small").address(0)) }
    do {
      _ = try await bounded { try await node("small").run() }
      XCTFail("a node of a full job must fail")
    } catch let error as CoordinatorError {
      XCTAssertEqual(error.code, .jobFull)
    }
    _ = try await coordinator.put(JobLayout(job: "small").status, Array("done".utf8), lease: nil)
    let outcome = try await bounded { try await first.value }
    XCTAssertEqual(outcome, .finished(taskID: 0))
    let leases = await coordinator.liveLeases
    XCTAssertEqual(leases, [], "the failed nodes gave their leases back")
  }

  func testNodeWhoseLeaseExpiresStopsActing() async throws {
    let coordinator = InMemoryCoordinator(sweepInterval: nil)
    let layout = JobLayout(job: "lease")
    let controller = Controller(
      coordinator: coordinator, job: layout.job, spec: JobSpec(taskCount: 1, topology: "full(1)"))
    try await controller.create()
    let node = Node(
      configuration: NodeConfiguration(job: layout.job), coordinator: coordinator,
      transport: InProcessTransport(), topology: FullTopology(taskCount: 1)
    ) { _ in IdleTask() }
    let running = Task { try await node.run() }
    try await bounded { try await waitForKey(coordinator, layout.address(0)) }
    let lease = try await coordinator.get(layout.address(0))!.lease!
    await coordinator.expireLease(lease)
    let outcome = try await bounded { try await running.value }
    XCTAssertEqual(outcome, .leaseLost(taskID: 0))
    // The slot is free again for a fresh node.
    let free = try await coordinator.get(layout.address(0))
    XCTAssertNil(free)
  }
}

/// Task 0 asks task 1 for data in epoch 1; task 1 serves it only when cancelled.
actor SlowPairTask: GraphTask {
  let id: Int
  let recorder: Recorder
  init(id: Int, recorder: Recorder) {
    self.id = id
    self.recorder = recorder
  }

  func enterEpoch(_ epoch: UInt64, context: TaskContext) async {
    await recorder.note("enter \(id) \(epoch)")
    if id == 0 && epoch == 1 { await context.dataRequest(to: 1, method: "slow") }
  }

  func dataReady(from task: Int, method: String, response: Payload, context: TaskContext) async {
    await recorder.note("data \(id) \(context.epoch)")
  }

  func serveData(from task: Int, method: String, request: Payload, context: TaskContext)
    async throws -> Payload
  {
    await recorder.note("serving \(context.epoch)")
    do {
      try await Task.sleep(for: .seconds(3600))
    } catch {
      await recorder.note("serve cancelled \(context.epoch)")
      throw error
    }
    return []
  }

  func exit() async { await recorder.exited(id) }
}

struct IdleTask: GraphTask {
  func enterEpoch(_ epoch: UInt64, context: TaskContext) async {}
  func serveData(from task: Int, method: String, request: Payload, context: TaskContext)
    async throws -> Payload
  { [] }
}

/// A task that ends the job in its first epoch and counts its live instances.
private final class CountedTask: GraphTask {
  static let live = Mutex(0)
  let id: Int
  init(id: Int) {
    self.id = id
    Self.live.withLock { $0 += 1 }
  }
  deinit { Self.live.withLock { $0 -= 1 } }
  func enterEpoch(_ epoch: UInt64, context: TaskContext) async {
    if id == 0 && epoch == 0 { try? await context.shutdownJob() }
  }
  func serveData(from task: Int, method: String, request: Payload, context: TaskContext)
    async throws -> Payload
  { [] }
}

final class NodeLifetimeTests: XCTestCase {
  /// When its job ends a node lets go of its task (and so of the task's data): contexts hold
  /// the node's runtime, and a runtime holding its own context would keep both alive, which
  /// adds up when one process runs many jobs (benchmarks, tests, a service).
  func testFinishedNodesReleaseTheirTasks() async throws {
    let before = CountedTask.live.withLock { $0 }
    let job = EmbeddedJob(topology: StarTopology(taskCount: 4)) { id in CountedTask(id: id) }
    let outcomes = try await job.run()
    XCTAssertEqual(outcomes.count, 4)
    XCTAssertEqual(CountedTask.live.withLock { $0 }, before)
  }
}
