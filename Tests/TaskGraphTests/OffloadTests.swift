import CTaskGraphKernels
import XCTest

@testable import TaskGraph

final class OffloadTests: XCTestCase {
  /// Each priority runs on threads of its own nice value: the scheduler favours the threads
  /// that move results on over a kernel (`compute`), and both over a checkpoint write
  /// (`background`).
  func testPrioritiesRunAtTheirNiceValues() async throws {
    #if os(Linux)
      let normal = try await Offload.run { tg_thread_nice() }
      let compute = try await Offload.run(priority: .compute) { tg_thread_nice() }
      let background = try await Offload.run(priority: .background) { tg_thread_nice() }
      // Nice values are absolute; `normal` threads keep whatever their creating thread had
      // (0, or below 0 where the process may raise priorities and a pool thread did).
      XCTAssertEqual(compute, 5)
      XCTAssertEqual(background, 15)
      XCTAssertLessThan(normal, compute)
    #endif
  }
}
