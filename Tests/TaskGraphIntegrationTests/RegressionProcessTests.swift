import Foundation
import Synchronization
import Testing

/// The regression example across processes: `regression-example --launch` starts a private
/// etcd, a controller process and task processes talking gRPC, and prints the master's
/// aggregate per epoch. Every test asserts the exact series and a bound on the run's time.
@Suite("Regression example across processes", .serialized)
struct RegressionProcessTests {
  /// How long one launch may take, from starting etcd to the last process's exit (the
  /// launcher gives up by itself at this bound).
  static let bound: Duration = .seconds(180)

  /// With 7 tasks in a tree of fan-out 2, epoch e aggregates e·(1+…+6) = 21·e.
  static func expected(tasks: Int, epochs: UInt64) -> [String] {
    let sum = UInt64((1..<tasks).reduce(0, +))
    return (1...epochs).map { "epoch \($0) aggregate \(sum * $0)" }
  }

  @Test("No failure: 7 task processes compute 21·e for 5 epochs")
  func noFailure() async throws {
    let run = try await Launch.run(["--tasks", "7", "--epochs", "5"])
    #expect(run.status == 0, "\(run.stderr)")
    #expect(run.series == Self.expected(tasks: 7, epochs: 5), "\(run.stderr)")
    #expect(run.restarts == 0, "\(run.stderr)")
    #expect(run.elapsed < Self.bound)
  }

  @Test("The master is SIGKILLed entering epoch 1; its restarted process takes slot 0 over")
  func masterKilled() async throws {
    let run = try await Launch.run([
      "--tasks", "7", "--epochs", "5", "--fail", "master-at-epoch=1",
    ])
    #expect(run.status == 0, "\(run.stderr)")
    #expect(run.series == Self.expected(tasks: 7, epochs: 5), "\(run.stderr)")
    #expect(run.restarts == 1, "\(run.stderr)")
    #expect(run.stderr.contains("master (task 0) entering epoch 1"), "\(run.stderr)")
    #expect(run.elapsed < Self.bound)
  }

  @Test("Non-master tasks are SIGKILLed with probability 3% at their data points (seeded)")
  func tasksKilled() async throws {
    let run = try await Launch.run([
      "--tasks", "7", "--epochs", "5", "--fail", "tasks=3%", "--seed", "7",
    ])
    #expect(run.status == 0, "\(run.stderr)")
    #expect(run.series == Self.expected(tasks: 7, epochs: 5), "\(run.stderr)")
    #expect(run.restarts >= 1, "the seed must kill at least one task: \(run.stderr)")
    #expect(run.elapsed < Self.bound)
  }

  @Test("etcd is killed and restarted as the job reaches epoch 2")
  func etcdRestarted() async throws {
    let run = try await Launch.run([
      "--tasks", "7", "--epochs", "5", "--fail", "etcd-restart-at-epoch=2",
    ])
    #expect(run.status == 0, "\(run.stderr)")
    #expect(run.series == Self.expected(tasks: 7, epochs: 5), "\(run.stderr)")
    #expect(run.stderr.contains("etcd restarted"), "\(run.stderr)")
    #expect(run.elapsed < Self.bound)
  }

  @Test("A hot standby takes the master's slot over; dead processes are not restarted")
  func hotStandbyMaster() async throws {
    let run = try await Launch.run([
      "--tasks", "7", "--epochs", "5", "--standbys", "1", "--no-restart",
      "--fail", "master-at-epoch=2",
    ])
    #expect(run.status == 0, "\(run.stderr)")
    #expect(run.series == Self.expected(tasks: 7, epochs: 5), "\(run.stderr)")
    #expect(run.restarts == 0, "\(run.stderr)")
    #expect(run.stderr.contains("master (task 0) entering epoch 2"), "\(run.stderr)")
    #expect(run.elapsed < Self.bound)
  }
}

/// One run of `regression-example --launch`.
struct Launch {
  var status: Int32
  var stdout: String
  var stderr: String
  var elapsed: Duration

  /// The `epoch E aggregate V` lines, in order.
  var series: [String] {
    stdout.split(separator: "\n").map(String.init).filter { $0.hasPrefix("epoch ") }
  }

  /// The launcher's count of restarted task processes (-1 if it did not print one).
  var restarts: Int {
    let prefix = "processes restarted: "
    let line = stdout.split(separator: "\n").last { $0.hasPrefix(prefix) }
    return line.flatMap { Int($0.dropFirst(prefix.count)) } ?? -1
  }

  /// The example's executable, built beside the test bundle.
  static var executable: URL {
    URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent()
      .appendingPathComponent("regression-example")
  }

  /// Runs `regression-example --launch` with `arguments`, waits for it to exit (killing it
  /// after the test bound), and returns its output.
  static func run(_ arguments: [String]) async throws -> Launch {
    let directory = FileManager.default.temporaryDirectory
      .appendingPathComponent("regression-launch-\(UUID().uuidString)")
    try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
    defer { try? FileManager.default.removeItem(at: directory) }
    let outURL = directory.appendingPathComponent("stdout")
    let errURL = directory.appendingPathComponent("stderr")
    FileManager.default.createFile(atPath: outURL.path, contents: nil)
    FileManager.default.createFile(atPath: errURL.path, contents: nil)
    let out = try FileHandle(forWritingTo: outURL)
    let err = try FileHandle(forWritingTo: errURL)
    defer {
      try? out.close()
      try? err.close()
    }

    let process = Process()
    process.executableURL = executable
    let limit = RegressionProcessTests.bound.components.seconds
    process.arguments = ["--launch", "--timeout", "\(limit)"] + arguments
    process.standardOutput = out
    process.standardError = err
    let exit = ExitStatus()
    process.terminationHandler = { exit.set($0.terminationStatus) }
    let clock = ContinuousClock()
    let start = clock.now
    try process.run()
    // The launcher gives up by itself at the bound; this is the last resort if it hangs.
    let pid = process.processIdentifier
    let backstop = Task {
      try await Task.sleep(for: RegressionProcessTests.bound + .seconds(30))
      kill(pid, SIGKILL)
    }
    let status = await exit.wait()
    backstop.cancel()
    let elapsed = clock.now - start
    let stdout = String(decoding: try Data(contentsOf: outURL), as: UTF8.self)
    let stderr = String(decoding: try Data(contentsOf: errURL), as: UTF8.self)
    print("regression-example --launch \(arguments.joined(separator: " ")): \(elapsed)")
    print(stdout)
    return Launch(status: status, stdout: stdout, stderr: stderr, elapsed: elapsed)
  }
}

/// A process's exit status, set by its termination handler and awaited by the test.
final class ExitStatus: Sendable {
  private struct State {
    var status: Int32?
    var waiters: [CheckedContinuation<Int32, Never>] = []
  }
  private let state = Mutex(State())

  /// Records the status and wakes the waiters.
  func set(_ status: Int32) {
    let waiters = state.withLock { state in
      state.status = status
      defer { state.waiters = [] }
      return state.waiters
    }
    for waiter in waiters { waiter.resume(returning: status) }
  }

  /// Waits for the status.
  func wait() async -> Int32 {
    await withCheckedContinuation { continuation in
      let status = state.withLock { state in
        if state.status == nil { state.waiters.append(continuation) }
        return state.status
      }
      if let status { continuation.resume(returning: status) }
    }
  }
}
