import Foundation
import XCTest

/// The CLI over the grid of models × solvers × precisions × modes × raw/standardised data:
/// every cell is refused with a one-line error before any work (and writes nothing), or
/// its objective matches an independent reference (NumPy / scikit-learn, run by
/// `Tests/reference/optimum.py` in the private environment `scripts/test.sh` installs), or
/// the run says it stopped short (a warning, `converged: false`). No cell may end with a
/// signal (exit status ≥ 128).
///
/// Tolerances, relative to the reference objective: 1e-8 for float64 runs of the
/// deterministic solvers; 1e-5 for float32 (the data itself is rounded to float, which
/// moves the optimum by about 1e-7); 1e-3 for SGD (a stochastic method stopped by its
/// patience test). Raw and standardised data alike: without `--standardize` the solvers
/// still work on standardised columns with the penalty of the original ones. The same
/// cell with `--workers 3` gives the one-process objective within 1e-9 (SGD 1e-6).
final class ConformanceTests: XCTestCase {
  struct Cell: Hashable, Sendable {
    var model: String
    var solver: String
    var precision: String
    var standardize: Bool
    var workers: Bool

    var penalty: [String] { CLI.penalty(of: model) }
    var l1: Double { model == "lasso" ? 0.5 : model == "elastic-net" ? 0.3 : 0 }
    var l2: Double {
      switch model {
      case "ridge": 0.01
      case "elastic-net": 0.1
      case "logistic": 0.001
      default: 0
      }
    }
    var data: String { CLI.data(of: model).file }
    var label: String { CLI.data(of: model).label }

    /// Whether no solver of that name can solve this model: the grid's refusals.
    var unsolvable: Bool {
      switch solver {
      case "exact": model == "logistic" || l1 > 0
      case "lbfgs": l1 > 0
      case "projected": true  // no bounds given
      default: false
      }
    }

    var name: String {
      "\(model)/\(solver)/\(precision)/\(standardize ? "std" : "raw")/\(workers ? "w3" : "local")"
    }
  }

  struct Outcome {
    var objective: Double
    var converged: Bool
    var means: [Double]?
    var scales: [Double]?
  }

  static func run(_ cell: Cell, directory: String) throws -> Outcome? {
    let output = "\(directory)/\(cell.name.replacingOccurrences(of: "/", with: "_")).json"
    var args = [
      "train", "--data", CLI.dataset(cell.data), "--label", cell.label, "--model", cell.model,
      "--solver", cell.solver, "--precision", cell.precision, "--output", output, "--quiet",
    ]
    args += cell.penalty
    if cell.standardize { args.append("--standardize") }
    if cell.workers { args += ["--workers", "3"] }
    if cell.solver == "gd" || cell.solver == "sgd" { args += ["--max-iterations", "3000"] }
    let r = try CLI.run(args)
    XCTAssertLessThan(r.status, 128, "\(cell.name): \(r.stderr)")
    if r.status != 0 {
      let lines = r.stderr.split(separator: "\n")
      XCTAssertEqual(lines.count, 1, "\(cell.name): \(r.stderr)")
      XCTAssertTrue(lines.first?.hasPrefix("error: ") ?? false, "\(cell.name): \(r.stderr)")
      XCTAssertTrue(cell.unsolvable, "\(cell.name) refused: \(r.stderr)")
      XCTAssertFalse(FileManager.default.fileExists(atPath: output), "\(cell.name) wrote a file")
      return nil
    }
    XCTAssertFalse(cell.unsolvable, "\(cell.name) must be refused")
    let json =
      try CLI.json(output)
    let training = json["training"] as! [String: Any]
    let pre = json["preprocessing"] as! [String: Any]
    let converged = training["converged"] as? Bool ?? false
    if !converged {
      XCTAssertTrue(r.stderr.contains("warning:"), "\(cell.name) stopped short without a warning")
    }
    return Outcome(
      objective: training["objective"] as! Double, converged: converged,
      means: pre["means"] as? [Double], scales: pre["scales"] as? [Double])
  }

  func testGridIsRightOrRefused() throws {
    guard let python = ProcessInfo.processInfo.environment["TASKGRAPH_REFERENCE_PYTHON"] else {
      return XCTFail(
        "TASKGRAPH_REFERENCE_PYTHON is not set: run scripts/test.sh, which installs the reference")
    }
    let dir = try TempDir()
    var cells: [Cell] = []
    for model in ["linear", "ridge", "lasso", "elastic-net", "logistic"] {
      for solver in ["auto", "exact", "gd", "sgd", "lbfgs", "owlqn", "projected"] {
        for standardize in [false, true] {
          for precision in ["float64", "float32"] {
            cells.append(
              Cell(
                model: model, solver: solver, precision: precision, standardize: standardize,
                workers: false))
          }
          cells.append(
            Cell(
              model: model, solver: solver, precision: "float64", standardize: standardize,
              workers: true))
        }
      }
    }
    nonisolated(unsafe) var outcomes = [Outcome?](repeating: nil, count: cells.count)
    let lock = NSLock()
    let (grid, directory) = (cells, dir.url.path)
    // Two at a time: the machine's two cores.
    DispatchQueue.concurrentPerform(iterations: grid.count) { i in
      let o = try? Self.run(grid[i], directory: directory)
      lock.lock()
      outcomes[i] = o
      lock.unlock()
    }
    // The references, one per successful cell.
    var requests: [[String: Any]] = []
    var index: [Int] = []
    for (i, o) in outcomes.enumerated() {
      guard let o else { continue }
      let c = cells[i]
      var q: [String: Any] = [
        "data": CLI.dataset(c.data), "label": c.label, "model": c.model, "l1": c.l1, "l2": c.l2,
      ]
      if c.standardize, let means = o.means, let scales = o.scales {
        q["means"] = means
        q["scales"] = scales
      }
      requests.append(q)
      index.append(i)
    }
    let references = try Self.reference(python: python, requests)
    XCTAssertEqual(references.count, index.count)
    var checked = 0
    var short: [String] = []
    var worst: [String: Double] = [:]
    for (k, i) in index.enumerated() {
      let c = cells[i]
      let o = outcomes[i]!
      let ref = references[k]
      guard o.converged else {
        short.append(c.name)
        continue
      }
      let tolerance = c.solver == "sgd" ? 1e-3 : c.precision == "float32" ? 1e-5 : 1e-8
      let error = abs(o.objective - ref) / abs(ref)
      worst[c.solver] = max(worst[c.solver] ?? 0, error)
      XCTAssertEqual(
        o.objective, ref, accuracy: tolerance * abs(ref),
        "\(c.name): \(o.objective) vs reference \(ref)")
      checked += 1
    }
    // Every strong solver reaches the optimum of standardised float64 data.
    for (i, c) in cells.enumerated()
    where c.standardize && c.precision == "float64" && !c.unsolvable
      && ["auto", "exact", "lbfgs", "owlqn"].contains(c.solver)
    {
      XCTAssertEqual(outcomes[i]?.converged, true, "\(c.name) did not converge")
    }
    // One process and three workers agree.
    for (i, c) in cells.enumerated() where c.workers {
      var local = c
      local.workers = false
      guard let j = cells.firstIndex(of: local), let a = outcomes[i], let b = outcomes[j] else {
        continue
      }
      XCTAssertEqual(
        a.objective, b.objective, accuracy: (c.solver == "sgd" ? 1e-6 : 1e-9) * abs(b.objective),
        "\(c.name) vs one process")
    }
    XCTAssertGreaterThan(checked, 50)
    let figures = worst.sorted { $0.key < $1.key }.map {
      String(format: "%@ %.1e", $0.key, $0.value)
    }
    print("conformance: largest relative error by solver: \(figures.joined(separator: ", "))")
    print(
      "conformance: \(cells.count) cells, \(checked) within tolerance of the reference, \(short.count) stopped short with a warning: \(short.joined(separator: ", "))"
    )
  }

  /// Linear least squares with every coefficient ≥ 0 (`--nonnegative`, the projected
  /// solver) reaches scikit-learn's `LinearRegression(positive=True)` optimum within 1e-8.
  func testNonNegativeLeastSquaresMatchesReference() throws {
    guard let python = ProcessInfo.processInfo.environment["TASKGRAPH_REFERENCE_PYTHON"] else {
      return XCTFail("TASKGRAPH_REFERENCE_PYTHON is not set: run scripts/test.sh")
    }
    let dir = try TempDir()
    let output = dir.path("nnls.json")
    let r = try CLI.run([
      "train", "--data", CLI.dataset("diabetes.csv"), "--label", "progression", "--standardize",
      "--nonnegative", "--output", output, "--quiet", "--max-iterations", "100000",
    ])
    XCTAssertEqual(r.status, 0, r.stderr)
    let json =
      try CLI.json(output)
    let training = json["training"] as! [String: Any]
    let pre = json["preprocessing"] as! [String: Any]
    XCTAssertEqual(training["solver"] as? String, "projected")
    let coefficients = json["coefficients"] as! [Double]
    XCTAssertTrue(coefficients.allSatisfy { $0 >= 0 }, "\(coefficients)")
    XCTAssertTrue(coefficients.contains(0), "the bound is active for some feature")
    let ref = try Self.reference(
      python: python,
      [
        [
          "data": CLI.dataset("diabetes.csv"), "label": "progression", "model": "linear",
          "l1": 0.0, "l2": 0.0, "nonnegative": true, "means": pre["means"]!,
          "scales": pre["scales"]!,
        ]
      ])[0]
    let objective = training["objective"] as! Double
    XCTAssertEqual(objective, ref, accuracy: 1e-8 * ref)
  }

  static func reference(python: String, _ requests: [[String: Any]]) throws -> [Double] {
    try CLI.reference(python: python, script: "optimum.py", request: requests) as? [Double] ?? []
  }
}
