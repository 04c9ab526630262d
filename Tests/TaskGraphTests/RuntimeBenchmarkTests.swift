import TaskGraph
import XCTest

/// The benchmark jobs run to completion and report what they measured (timings are not
/// asserted: they are figures, not tests).
final class RuntimeBenchmarkTests: XCTestCase {
  func testEmptyRoundsRunEveryEpoch() async throws {
    let rounds = try await RuntimeBenchmark.emptyRounds(
      coordinator: InMemoryCoordinator(), transport: InProcessTransport(), tasks: 4, epochs: 5)
    XCTAssertEqual(rounds.tasks, 4)
    XCTAssertEqual(rounds.epochs, 5)
    XCTAssertGreaterThan(rounds.total, .zero)
  }

  func testDataRequestsCarryThePayload() async throws {
    let throughput = try await RuntimeBenchmark.dataRequests(
      coordinator: InMemoryCoordinator(), transport: InProcessTransport(), payloadBytes: 8192,
      requests: 3)
    XCTAssertEqual(throughput.payloadBytes, 8192)
    XCTAssertEqual(throughput.requests, 3)
    XCTAssertEqual(throughput.bytesReceived, 3 * 8192)
    XCTAssertGreaterThan(throughput.total, .zero)
  }
}
