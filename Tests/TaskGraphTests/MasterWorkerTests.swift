import TaskGraph
import XCTest

/// Each epoch the master notifies every worker of the epoch; a worker asks the next worker
/// for its square and notifies the master of `e·id + square`; the master sums the three.
actor SumMaster: MasterTask {
  let epochs: UInt64
  private var epoch: UInt64 = 0
  private var received: [Int: Int64] = [:]
  init(epochs: UInt64) { self.epochs = epochs }

  func enterEpoch(_ epoch: UInt64, context: MasterContext) async {
    self.epoch = epoch
    received = [:]
    do {
      if epoch == 0 { return try await context.incrementEpoch() }
      if epoch > epochs { return try await context.shutdownJob() }
      for worker in context.workers { await context.notifyWorker(worker, message: epoch.payload) }
    } catch {}
  }

  func notified(by worker: Int, message: Payload, context: MasterContext) async throws {
    guard context.epoch == epoch else { return }
    received[worker] = Int64(bitPattern: UInt64(decoding: message))
    if received.count == context.workers.count {
      let total = received.values.reduce(0, +)
      try await context.record("sum-\(epoch)", value: UInt64(bitPattern: total).bytes)
      try await context.incrementEpoch()
    }
  }
}

actor SquareWorker: WorkerTask {
  let id: Int
  private var pending: UInt64?
  init(id: Int) { self.id = id }

  func enterEpoch(_ epoch: UInt64, context: WorkerContext) async { pending = nil }

  func notified(message: Payload, context: WorkerContext) async throws {
    pending = UInt64(decoding: message)
    let next = id % context.workers.count + 1
    await context.dataRequest(to: next, method: "square")
  }

  func dataReady(from worker: Int, method: String, response: Payload, context: WorkerContext)
    async
  {
    guard let e = pending else { return }
    let value = Int64(e) * Int64(id) + Int64(bitPattern: UInt64(decoding: response))
    await context.notifyMaster(UInt64(bitPattern: value).payload)
  }

  func serveData(from worker: Int, method: String, request: Payload, context: WorkerContext)
    async throws -> Payload
  {
    UInt64(id * id).payload
  }
}

final class MasterWorkerTests: XCTestCase {
  func testMasterWorkerOnAStar() async throws {
    let job = EmbeddedJob(
      name: "mw", topology: StarTopology(taskCount: 4), retry: fastRetry,
      builder: MasterWorker.builder(
        master: { SumMaster(epochs: 3) }, worker: { SquareWorker(id: $0) }))
    let outcomes = try await bounded { try await job.run() }
    XCTAssertEqual(outcomes, (0..<4).map { .finished(taskID: $0) })
    let records = try await job.controller.records()
    // e·(1+2+3) + (2² + 3² + 1²)
    for e in UInt64(1)...3 {
      XCTAssertEqual(
        records["sum-\(e)"].map { Int64(bitPattern: UInt64(decoding: $0)) }, Int64(e) * 6 + 14)
    }
  }
}
