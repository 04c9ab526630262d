import Foundation
import XCTest

/// `taskgraph launch`: a master and worker processes talking gRPC, coordinated by a private
/// etcd, killed with SIGKILL by the chaos plan.
final class LaunchTests: XCTestCase {
  func json(_ path: String) throws -> [String: Any] {
    try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: path)))
      as! [String: Any]
  }

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
}
