import TaskGraphTestSupport
import XCTest

@testable import TaskGraph

/// Serves its epoch, so a test sees which epoch a request was served in.
struct EpochServingTask: GraphTask {
  func enterEpoch(_ epoch: UInt64, context: TaskContext) async {}
  func serveData(from task: Int, method: String, request: Payload, context: TaskContext)
    async throws -> Payload
  { Payload(epochBytes(context.epoch)) }
}

/// A request for task 0's epoch, sent in `epoch`.
private func earlyRequest(job: String, epoch: UInt64) -> DataRequest {
  DataRequest(job: job, from: 0, to: 0, epoch: epoch, id: 1, method: "epoch")
}

/// A request of an epoch the serving node has not entered yet: held until the node enters
/// it (its requester read the epoch from the coordinator), refused once the hold is over.
final class EarlyRequestTests: XCTestCase {
  /// Runs a one-task job whose node holds early requests for `hold`, and `body` with the
  /// coordinator, the transport and the node's address.
  private func withNode(
    job: String, hold: Duration,
    _ body:
      @escaping @Sendable (InMemoryCoordinator, InProcessTransport, String) async throws
      -> Void
  ) async throws {
    let coordinator = InMemoryCoordinator()
    let transport = InProcessTransport()
    let layout = JobLayout(job: job)
    try await Controller(
      coordinator: coordinator, job: job, spec: JobSpec(taskCount: 1, topology: "full(1)")
    ).create()
    let node = Node(
      configuration: NodeConfiguration(job: job, earlyRequestHold: hold),
      coordinator: coordinator, transport: transport, topology: FullTopology(taskCount: 1)
    ) { _ in EpochServingTask() }
    let running = Task { try await node.run() }
    try await bounded { try await waitForKey(coordinator, layout.address(0)) }
    let record = try await coordinator.get(layout.address(0)).flatMap { AddressRecord($0.value) }
    let address = try XCTUnwrap(record?.address)
    try await body(coordinator, transport, address)
    _ = try await coordinator.put(layout.status, Array(JobLayout.done.utf8), lease: nil)
    let outcome = try await bounded { try await running.value }
    XCTAssertEqual(outcome, .finished(taskID: 0))
  }

  func testEarlyRequestIsServedOnceTheNodeEntersItsEpoch() async throws {
    try await withNode(job: "early", hold: .seconds(60)) { coordinator, transport, address in
      let request = earlyRequest(job: "early", epoch: 1)
      // Sent before the epoch advances: the node is in epoch 0 (or has not read it yet).
      let response = Task {
        try await transport.send(request, to: address, timeout: .seconds(60))
      }
      let layout = JobLayout(job: "early")
      let swapped = try await coordinator.compareAndSwap(
        layout.epoch, expected: epochBytes(0), new: epochBytes(1))
      XCTAssertTrue(swapped)
      let served = try await bounded { try await response.value }
      XCTAssertEqual(served.bytes, epochBytes(1), "served in the request's epoch, not refused")
    }
  }

  func testEarlyRequestIsRefusedAsStaleWhenTheHoldRunsOut() async throws {
    try await withNode(job: "late", hold: .milliseconds(100)) { _, transport, address in
      let start = ContinuousClock.now
      do {
        _ = try await transport.send(
          earlyRequest(job: "late", epoch: 5), to: address, timeout: .seconds(60))
        XCTFail("a request of an epoch that never comes must be refused")
      } catch let error as TransportError {
        XCTAssertEqual(error.code, .staleEpoch)
        XCTAssertEqual(error.serverEpoch, 0, "the server is behind, in epoch 0")
      }
      XCTAssertGreaterThanOrEqual(ContinuousClock.now - start, .milliseconds(100))
    }
  }

  func testRequestOfTheCurrentEpochIsServedAndOfAPastOneRefused() async throws {
    try await withNode(job: "now", hold: .seconds(60)) { coordinator, transport, address in
      let layout = JobLayout(job: "now")
      _ = try await coordinator.compareAndSwap(
        layout.epoch, expected: epochBytes(0), new: epochBytes(1))
      let served = try await bounded {
        try await transport.send(
          earlyRequest(job: "now", epoch: 1), to: address, timeout: .seconds(60))
      }
      XCTAssertEqual(served.bytes, epochBytes(1))
      do {
        _ = try await transport.send(
          earlyRequest(job: "now", epoch: 0), to: address, timeout: .seconds(60))
        XCTFail("a request of a past epoch must be refused")
      } catch let error as TransportError {
        XCTAssertEqual(error.code, .staleEpoch)
        XCTAssertEqual(error.serverEpoch, 1)
      }
    }
  }
}
