import Foundation
import Logging
import TaskGraphData
import XCTest

@testable import TaskGraphTraining

/// Final class so that the heartbeat's record can be shared with the test (locked).
private final class GapLog: @unchecked Sendable {
  // Unchecked Sendable: `longest` and `stopped` are only touched under `lock`.
  private let lock = NSLock()
  private var longest = 0.0
  private var stopped = false
  func record(_ gap: Double) {
    lock.lock()
    longest = max(longest, gap)
    lock.unlock()
  }
  func stop() {
    lock.lock()
    stopped = true
    lock.unlock()
  }
  var isStopped: Bool {
    lock.lock()
    defer { lock.unlock() }
    return stopped
  }
  var longestGap: Double {
    lock.lock()
    defer { lock.unlock() }
    return longest
  }
}

final class WorkerResponsivenessTests: XCTestCase {
  /// Workers decode a job of many features off Swift's cooperative pool. When every worker
  /// of a process decoded such a job on the pool at once, no other task (lease keep-alives
  /// among them) could run for seconds: every node lost its slot and the job started over,
  /// forever. Here as many workers as the pool has threads decode a large job at once while
  /// a heartbeat on the pool records the longest gap between its 10 ms ticks. (Decoding on
  /// libdispatch's queues instead, global or private, stalled it 1.1–1.9 s: see `Offload`.)
  func testDecodingALargeJobLeavesTheCooperativePoolFree() async throws {
    let features = 400_000
    let columns = (0..<features).map { FittedPipeline.Column(name: "f\($0)", kind: .numeric) }
    let pipeline = FittedPipeline(label: "y", columns: columns, missing: .drop)
    let job = JobDescription(
      dataPath: "/nonexistent/taskgraph-test.csv", pipeline: pipeline, precision: .float64,
      loss: .squared, threads: 1, dataFingerprint: "0", configFingerprint: "0")
    let message = MasterMessage.load(job).encoded()
    XCTAssertGreaterThan(message.count, ParameterServerWorker.offloadBytes)
    // How long one decode takes here, for the bound below.
    let t0 = Date()
    _ = try MasterMessage.decodeTagged(message)
    let decodeSeconds = Date().timeIntervalSince(t0)

    let log = GapLog()
    let heartbeat = Task {
      var last = Date()
      while !log.isStopped {
        try? await Task.sleep(for: .milliseconds(10))
        let now = Date()
        log.record(now.timeIntervalSince(last))
        last = now
      }
    }
    let poolWidth = ProcessInfo.processInfo.activeProcessorCount
    let quiet = Logger(label: "test", factory: { _ in SwiftLogNoOpLogHandler() })
    try await withThrowingTaskGroup(of: Void.self) { group in
      for id in 1...poolWidth {
        let worker = ParameterServerWorker(
          taskID: id, workerCount: poolWidth, localDataPath: nil, logger: quiet)
        group.addTask {
          // The data file does not exist: after decoding, the worker fails to fingerprint it.
          do {
            try await worker.handle(message) { _ in }
            XCTFail("a missing data file must fail")
          } catch {}
        }
      }
      try await group.waitForAll()
    }
    log.stop()
    await heartbeat.value
    // On the pool the decodes would stall the heartbeat for about one decode; off it, only
    // the operating system's scheduling delays it.
    XCTAssertLessThan(
      log.longestGap, max(0.3, decodeSeconds / 2),
      "heartbeat stalled \(log.longestGap) s (one decode takes \(decodeSeconds) s)")
    XCTAssertGreaterThan(decodeSeconds, 0.6, "the job decodes too fast to show a stall")
  }
}
