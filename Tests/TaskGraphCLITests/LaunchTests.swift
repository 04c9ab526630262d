import Foundation
import Logging
import TaskGraph
import XCTest

@testable import taskgraph

/// What the launch tests (this file's and `LaunchGridTests`) read from a run.
enum LaunchRun {
  /// The training objective recorded in the model file at `path`.
  static func objective(_ path: String) throws -> Double {
    (try CLI.json(path)["training"] as! [String: Any])["objective"] as! Double
  }

  /// N of the "processes restarted: N" line `launch` prints last (without --quiet).
  static func restarts(_ r: CLIResult) -> Int? {
    r.stdout.split(separator: "\n").last { $0.hasPrefix("processes restarted: ") }
      .flatMap { Int($0.dropFirst("processes restarted: ".count)) }
  }

  /// The lines of standard error that start with "error:" (any case).
  static func errorLines(_ r: CLIResult) -> [String] {
    r.stderr.split(separator: "\n").map(String.init).filter { $0.lowercased().hasPrefix("error:") }
  }
}

/// `taskgraph launch`: a master and worker processes talking gRPC, coordinated by a private
/// etcd, killed with SIGKILL by the chaos plan.
final class LaunchTests: XCTestCase {
  func json(_ path: String) throws -> [String: Any] { try CLI.json(path) }

  /// The model files at `clean` and `chaotic` hold the same model bit for bit, and its
  /// coefficients are `reference`'s within 1e-12 of the largest.
  func assertModels(
    reference: String, clean: String, chaotic: String, file: StaticString = #filePath,
    line: UInt = #line
  ) throws {
    let a = try json(reference)["standardized_coefficients"] as! [Double]
    let b = try json(clean)["standardized_coefficients"] as! [Double]
    let c = try json(chaotic)["standardized_coefficients"] as! [Double]
    let scale = a.map(abs).max()!
    XCTAssertEqual(a.count, b.count, file: file, line: line)
    for (x, y) in zip(a, b) {
      XCTAssertEqual(x, y, accuracy: 1e-12 * scale, file: file, line: line)
    }
    XCTAssertEqual(b, c, file: file, line: line)
    XCTAssertEqual(
      try json(clean)["standardized_intercept"] as! Double,
      try json(chaotic)["standardized_intercept"] as! Double, file: file, line: line)
  }

  /// Logistic regression on breast cancer by gradient descent for exactly `iterations`
  /// steps (one epoch each, so chaos kills land inside the run), seeded with `seed`.
  func descentArgs(iterations: Int, seed: Int) -> [String] {
    [
      "--data", CLI.dataset("breast_cancer.csv"), "--label", "malignant", "--model", "logistic",
      "--l2", "0.001", "--standardize", "--solver", "gd", "--max-iterations", "\(iterations)",
      "--tolerance", "0", "--quiet", "--seed", "\(seed)",
    ]
  }

  func cancerArgs(_ out: String) -> [String] {
    [
      "--data", CLI.dataset("breast_cancer.csv"), "--label", "malignant", "--model", "logistic",
      "--l2", "0.001", "--standardize", "--tolerance", "1e-12", "--output", out, "--quiet",
    ]
  }

  func testFourWorkerProcessesEqualOneProcess() throws {
    let dir = try TempDir()
    let single = dir.path("single.json")
    XCTAssertEqual(try CLI.run(["train"] + cancerArgs(single)).status, 0)
    let multi = dir.path("multi.json")
    let start = Date()
    let r = try CLI.run(["launch", "--workers", "4"] + cancerArgs(multi))
    XCTAssertEqual(r.status, 0, r.stderr)
    XCTAssertLessThan(Date().timeIntervalSince(start), 120, "launch took too long")
    let a = try json(single)["standardized_coefficients"] as! [Double]
    let b = try json(multi)["standardized_coefficients"] as! [Double]
    let scale = a.map(abs).max()!
    XCTAssertEqual(a.count, b.count)
    for (x, y) in zip(a, b) { XCTAssertEqual(x, y, accuracy: 1e-12 * scale) }
    XCTAssertEqual((try json(multi)["training"] as! [String: Any])["workers"] as? Int, 4)
  }

  /// Ridge on flights (one-hot, standardised) with the exact solver: four worker processes
  /// send their shards' least-squares statistics, the master merges and solves; the model
  /// equals the single-process Cholesky fit within 1e-12 relative. (l2 = 1e-3 keeps the
  /// system's condition number small enough that rounding in the order of the sums stays
  /// below that; at l2 = 1e-6 the two agree to about 1e-10.)
  func testFlightsRidgeFourWorkerProcessesEqualOneProcess() throws {
    let dir = try TempDir()
    let args = [
      "--data", CLI.dataset("flights.csv.gz"), "--label", "arr_delay", "--categorical",
      "carrier,origin,dest", "--model", "ridge", "--l2", "1e-3", "--standardize", "--quiet",
    ]
    let single = dir.path("single.json")
    XCTAssertEqual(try CLI.run(["train", "--output", single] + args).status, 0)
    let multi = dir.path("multi.json")
    let r = try CLI.run(["launch", "--workers", "4", "--output", multi] + args)
    XCTAssertEqual(r.status, 0, r.stderr)
    let a = try json(single)
    let b = try json(multi)
    let ca = a["standardized_coefficients"] as! [Double]
    let cb = b["standardized_coefficients"] as! [Double]
    XCTAssertEqual(ca.count, 135)
    XCTAssertEqual(ca.count, cb.count)
    let scale = ca.map(abs).max()!
    for (x, y) in zip(ca, cb) { XCTAssertEqual(x, y, accuracy: 1e-12 * scale) }
    XCTAssertEqual(
      a["standardized_intercept"] as! Double, b["standardized_intercept"] as! Double,
      accuracy: 1e-12 * scale)
    let training = b["training"] as! [String: Any]
    XCTAssertEqual(training["workers"] as? Int, 4)
    XCTAssertEqual(training["stop_reason"] as? String, "exactSolution")
    XCTAssertEqual(training["train_rows"] as? Int, 291_140)
  }

  func testChaosKillsGiveTheFaultFreeModel() throws {
    let dir = try TempDir()
    // Gradient descent for 200 iterations: at least 200 epochs.
    let args = descentArgs(iterations: 200, seed: 7)
    let clean = dir.path("clean.json")
    let r0 = try CLI.run(["launch", "--workers", "4", "--output", clean] + args)
    XCTAssertEqual(r0.status, 0, r0.stderr)
    let chaotic = dir.path("chaos.json")
    let start = Date()
    let r1 = try CLI.run(
      [
        "launch", "--workers", "4", "--output", chaotic, "--chaos", "kill-workers=5,kill-master=1",
        "--chaos-last-epoch", "150", "--checkpoint-every", "5", "--lease-ttl", "1",
      ] + args)
    XCTAssertEqual(r1.status, 0, r1.stderr)
    XCTAssertLessThan(Date().timeIntervalSince(start), 240, "chaos run took too long")
    let a = try json(clean)
    let b = try json(chaotic)
    XCTAssertEqual(
      a["standardized_coefficients"] as! [Double], b["standardized_coefficients"] as! [Double])
    XCTAssertEqual(a["standardized_intercept"] as! Double, b["standardized_intercept"] as! Double)
    XCTAssertEqual(
      (a["training"] as! [String: Any])["iterations"] as? Int, 200)
    // Six SIGKILLs (five workers, one master), each answered by a restart.
    let kills = r1.stderr.components(separatedBy: "with SIGKILL").count - 1
    XCTAssertEqual(kills, 6, r1.stderr)
    let restarts = r1.stderr.components(separatedBy: "restarting it").count - 1
    XCTAssertEqual(restarts, 6, r1.stderr)
  }

  /// Workers sending their gradients in blocks (`--gradient-blocks 7`: 5 blocks of the 30
  /// features) across processes: the model equals the whole-gradient run's within 1e-12,
  /// and with workers and the master killed by SIGKILL it is the fault-free one bit for bit.
  func testGradientBlocksAcrossProcessesSurviveChaos() throws {
    let dir = try TempDir()
    let args = descentArgs(iterations: 80, seed: 3) + ["--workers", "3"]
    let whole = dir.path("whole.json")
    let r0 = try CLI.run(["launch", "--gradient-blocks", "0", "--output", whole] + args)
    XCTAssertEqual(r0.status, 0, r0.stderr)
    let clean = dir.path("clean.json")
    let r1 = try CLI.run(["launch", "--gradient-blocks", "7", "--output", clean] + args)
    XCTAssertEqual(r1.status, 0, r1.stderr)
    let chaotic = dir.path("chaos.json")
    let r2 = try CLI.run(
      [
        "launch", "--gradient-blocks", "7", "--output", chaotic, "--chaos",
        "kill-workers=2,kill-master=1", "--chaos-last-epoch", "60", "--checkpoint-every", "5",
        "--lease-ttl", "1",
      ] + args)
    XCTAssertEqual(r2.status, 0, r2.stderr)
    XCTAssertEqual(r2.stderr.components(separatedBy: "with SIGKILL").count - 1, 3, r2.stderr)
    try assertModels(reference: whole, clean: clean, chaotic: chaotic)
  }

  /// Columns partitioned across processes (`--partition columns`: each of 3 workers holds
  /// every row and 10 of the 30 features, its gradient sent in blocks of 3): the model
  /// equals the single-process one within 1e-12, and with workers and the master killed by
  /// SIGKILL it is the fault-free one bit for bit. The exact solver is refused up front.
  func testColumnsPartitionedAcrossProcessesSurviveChaos() throws {
    let dir = try TempDir()
    let args = descentArgs(iterations: 80, seed: 3)
    let single = dir.path("single.json")
    let r0 = try CLI.run(["train", "--output", single] + args)
    XCTAssertEqual(r0.status, 0, r0.stderr)
    let launch = ["launch", "--workers", "3", "--partition", "columns", "--gradient-blocks", "3"]
    let clean = dir.path("clean.json")
    let r1 = try CLI.run(launch + ["--output", clean] + args)
    XCTAssertEqual(r1.status, 0, r1.stderr)
    let chaotic = dir.path("chaos.json")
    let r2 = try CLI.run(
      launch + [
        "--output", chaotic, "--chaos", "kill-workers=2,kill-master=1", "--chaos-last-epoch",
        "120", "--checkpoint-every", "5", "--lease-ttl", "1",
      ] + args)
    XCTAssertEqual(r2.status, 0, r2.stderr)
    XCTAssertEqual(r2.stderr.components(separatedBy: "with SIGKILL").count - 1, 3, r2.stderr)
    try assertModels(reference: single, clean: clean, chaotic: chaotic)
    let exact = try CLI.run(
      launch + ["--output", dir.path("exact.json")] + [
        "--data", CLI.dataset("diabetes.csv"), "--label", "progression", "--model", "ridge",
        "--l2", "0.01",
      ])
    XCTAssertNotEqual(exact.status, 0)
    XCTAssertTrue(exact.stderr.contains("needs an iterative solver"), exact.stderr)
    XCTAssertFalse(FileManager.default.fileExists(atPath: dir.path("exact.json")))
  }

  /// A master that always dies from a signal shortly after it starts is restarted 3 times
  /// with backoff, then launch gives up: every process stopped, exit status 1, one error
  /// line naming the master, the signal and the count, and no model file. The deaths are
  /// real SIGKILLs from the chaos plan: 20 master kills, all planned for round 2, so each
  /// master is killed as soon as it is seen in round 2 or later (within a second or two of
  /// its start), with no test hook.
  func testMasterThatAlwaysDiesGivesUpAfterMaxRestarts() throws {
    let dir = try TempDir()
    let output = dir.path("model.json")
    let checkpoints = dir.path("checkpoints")
    let start = Date()
    let r = try CLI.run(
      [
        "launch", "--workers", "1", "--output", output, "--checkpoint-dir", checkpoints,
        "--max-restarts", "3", "--chaos", "kill-master=20", "--chaos-last-epoch", "2",
        "--lease-ttl", "1",
        // Bounds the run should the kills stop: a master that has fitted for a minute ends.
        "--time-limit", "60",
      ] + descentArgs(iterations: 100_000, seed: 5))
    let seconds = Date().timeIntervalSince(start)
    XCTAssertTrue((1..<128).contains(r.status), "exit status \(r.status): \(r.stderr)")
    XCTAssertEqual(
      LaunchRun.errorLines(r),
      ["error: the master died from signal 9 4 times; giving up after --max-restarts 3"],
      r.stderr)
    XCTAssertEqual(r.stderr.components(separatedBy: "restarting it").count - 1, 3, r.stderr)
    // Backoff: 0.1 s, 0.2 s, 0.4 s before the three restarts.
    for delay in ["0.10", "0.20", "0.40"] {
      XCTAssertTrue(r.stderr.contains("restarting it in \(delay) s"), r.stderr)
    }
    XCTAssertLessThan(seconds, 90, "giving up took too long")
    XCTAssertFalse(FileManager.default.fileExists(atPath: output))
    // No process of the job outlives launch: none runs with its checkpoint directory.
    XCTAssertEqual(processes(mentioning: checkpoints, within: 5), [], "processes left running")
  }

  /// `--max-restarts` below 0 is refused before anything starts: one error line naming the
  /// flag, a usage exit status.
  func testNegativeMaxRestartsIsRefused() throws {
    let dir = try TempDir()
    let output = dir.path("model.json")
    for flag in [["--max-restarts", "-1"], ["--max-restarts=-1"]] {
      let r = try CLI.run(
        ["launch", "--workers", "1", "--output", output] + flag + cancerArgs(output))
      XCTAssertTrue([1, 64].contains(r.status), "exit status \(r.status): \(r.stderr)")
      let errors = LaunchRun.errorLines(r)
      XCTAssertEqual(errors.count, 1, r.stderr)
      XCTAssertTrue(errors.first?.contains("--max-restarts") ?? false, r.stderr)
      XCTAssertFalse(r.stderr.contains("Missing value"), r.stderr)
      XCTAssertFalse(FileManager.default.fileExists(atPath: output))
    }
  }

  /// The restart policy alone: backoff doubling from 0.1 s to 5 s for restarts in a row of
  /// one process, a new row after 10 s up, and giving up on the restart that would exceed
  /// `maxRestarts` with one line naming the process, its signal and its deaths.
  func testRestartPolicy() {
    var policy = RestartPolicy.defaults
    policy.maxRestarts = 9
    let delays = (1...8).map { _ in policy.died("master", signal: 9, upFor: .seconds(1)) }
    XCTAssertEqual(
      delays,
      [0.1, 0.2, 0.4, 0.8, 1.6, 3.2, 5, 5].map {
        .restart(after: .milliseconds(Int(($0 * 1000).rounded())))
      })
    // Up for 10 s: a new row. Another process has a row of its own.
    XCTAssertEqual(
      policy.died("master", signal: 9, upFor: .seconds(10)), .restart(after: .milliseconds(100)))
    XCTAssertEqual(policy.restarts, 9)
    XCTAssertEqual(
      policy.died("worker 2", signal: 6, upFor: .seconds(1)),
      .giveUp(
        reason:
          "worker 2 died from signal 6 once (other processes were restarted 9 times); giving up after --max-restarts 9"
      ))
    var none = RestartPolicy.defaults
    none.maxRestarts = 0
    XCTAssertEqual(
      none.died("master", signal: 11, upFor: .zero),
      .giveUp(reason: "the master died from signal 11 once; giving up after --max-restarts 0"))
    XCTAssertEqual(RestartPolicy.defaults.maxRestarts, 10)
  }

  /// A process waiting out its backoff when the job ends is never started again: stopping
  /// the supervisor cancels the restart, and nothing runs afterwards.
  func testRestartWaitingOutItsBackoffIsCancelledWhenTheJobEnds() async throws {
    let dir = try TempDir()
    let log = dir.path("starts")
    var policy = RestartPolicy.defaults
    policy.backoff = Backoff(initial: .seconds(60), multiplier: 2, maximum: .seconds(60))
    let supervisor = Supervisor(
      executable: "/bin/sh", policy: policy, logger: Logger(label: "test"))
    // Records its start, then dies from SIGKILL.
    await supervisor.start("worker 1", ["-c", "echo started >> '\(log)'; kill -9 $$"])
    await supervisor.waitForRestarts(1)
    let start = ContinuousClock.now
    await supervisor.stopAll()
    XCTAssertLessThan(ContinuousClock.now - start, .seconds(10), "stopping waited the backoff")
    let starts = await supervisor.started
    XCTAssertEqual(starts, 1)
    let restarts = await supervisor.restarts
    XCTAssertEqual(restarts, 1)
    XCTAssertEqual(try String(contentsOfFile: log, encoding: .utf8), "started\n")
  }

  /// The pids of running processes whose command line contains `text`, once none is left
  /// or after `seconds` (a process killed with SIGKILL just before launch exited may take
  /// a moment to go).
  func processes(mentioning text: String, within seconds: Double) -> [Int32] {
    let deadline = Date().addingTimeInterval(seconds)
    while true {
      var found: [Int32] = []
      let entries = (try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? []
      for entry in entries {
        guard let pid = Int32(entry),
          let cmdline = FileManager.default.contents(atPath: "/proc/\(entry)/cmdline")
        else { continue }
        if String(decoding: cmdline, as: UTF8.self).contains(text) { found.append(pid) }
      }
      if found.isEmpty || Date() > deadline { return found }
      usleep(50_000)
    }
  }
}
