import Foundation
import XCTest

/// `launch --workers 2` with a worker and the master killed by SIGKILL, over a covering set
/// of the grid: every model {linear, ridge, lasso, elastic-net, logistic} and every solver
/// {auto, exact, gd, sgd, lbfgs, owlqn, projected} in at least one cell. Each cell ends with
/// exit status 0, restarts the two killed processes ("processes restarted: 2"), and its
/// model's training objective equals that of the same training in one process (`train`)
/// within 1e-9 relative (SGD 1e-6). The exact solver's job is over in its first rounds,
/// before the kills (planned from round 2 on) land; its model must match all the same.
/// The penalties are those of `ConformanceTests`; data standardised; gd and sgd stop at
/// 300 and 50 iterations (both runs alike), to keep the grid under a minute.
final class LaunchGridTests: XCTestCase {
  struct Cell {
    var model: String
    var solver: String
    /// Flags beyond model, solver and penalty, the same for both runs.
    var extra: [String] = []
    /// The last round a kill may land in: before the job's last round, so both land.
    var lastKillRound: Int = 8

    var training: [String] {
      let (data, label) = CLI.data(of: model)
      return [
        "--data", CLI.dataset(data), "--label", label, "--model", model, "--solver", solver,
        "--standardize",
      ] + CLI.penalty(of: model) + extra
    }
  }

  func check(_ cell: Cell, file: StaticString = #filePath, line: UInt = #line) throws {
    let dir = try TempDir()
    let single = dir.path("single.json")
    let r0 = try CLI.run(["train", "--output", single, "--quiet"] + cell.training)
    XCTAssertEqual(r0.status, 0, r0.stderr, file: file, line: line)
    let chaotic = dir.path("launch.json")
    let r1 = try CLI.run(
      [
        "launch", "--workers", "2", "--output", chaotic, "--chaos", "kill-workers=1,kill-master=1",
        "--chaos-last-epoch", "\(cell.lastKillRound)", "--checkpoint-every", "2",
        "--lease-ttl", "1",
      ] + cell.training)
    XCTAssertEqual(r1.status, 0, r1.stderr, file: file, line: line)
    guard r0.status == 0, r1.status == 0 else { return }
    let kills = r1.stderr.components(separatedBy: "with SIGKILL").count - 1
    let restarts = LaunchRun.restarts(r1)
    XCTAssertEqual(restarts, kills, r1.stdout + r1.stderr, file: file, line: line)
    if cell.solver == "exact" {
      // One round of statistics: the kills, planned from round 2 on, may come after the end.
      XCTAssertLessThanOrEqual(kills, 2, r1.stderr, file: file, line: line)
    } else {
      XCTAssertEqual(kills, 2, r1.stderr, file: file, line: line)
      XCTAssertGreaterThanOrEqual(restarts ?? 0, 2, r1.stdout, file: file, line: line)
    }
    let a = try LaunchRun.objective(single)
    let b = try LaunchRun.objective(chaotic)
    let tolerance = cell.solver == "sgd" ? 1e-6 : 1e-9
    XCTAssertEqual(
      b, a, accuracy: tolerance * abs(a), "\(cell.model)/\(cell.solver)", file: file, line: line)
  }

  func testLinearExact() throws {
    try check(Cell(model: "linear", solver: "exact"))
  }

  func testLinearProjectedNonNegative() throws {
    try check(Cell(model: "linear", solver: "projected", extra: ["--nonnegative"]))
  }

  func testRidgeLBFGS() throws {
    try check(Cell(model: "ridge", solver: "lbfgs"))
  }

  func testLassoOWLQN() throws {
    try check(Cell(model: "lasso", solver: "owlqn"))
  }

  func testElasticNetAuto() throws {
    try check(Cell(model: "elastic-net", solver: "auto"))
  }

  func testLogisticGradientDescent() throws {
    try check(Cell(model: "logistic", solver: "gd", extra: ["--max-iterations", "300"]))
  }

  func testLogisticSGD() throws {
    try check(Cell(model: "logistic", solver: "sgd", extra: ["--max-iterations", "50"]))
  }

  func testLogisticLBFGS() throws {
    try check(Cell(model: "logistic", solver: "lbfgs"))
  }
}
