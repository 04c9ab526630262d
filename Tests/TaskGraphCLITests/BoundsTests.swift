import Foundation
import XCTest

/// The projected solver on bounded problems, against an independent reference: SciPy's
/// L-BFGS-B polished by projected Newton steps (`Tests/reference/optimum.py`), the
/// objective within 1e-8 relative. Least squares, ridge and logistic regression, with and
/// without a penalty, raw and standardised, in one process and with two workers, and with
/// bounds that bind (each cell checks that some coefficient sits on a bound). With workers,
/// the summary named the unbounded solver (exact, lbfgs) though the master ran the projected
/// one. On raw,
/// nearly separable data, logistic regression with a projected gradient step ran into
/// `--max-iterations` 1,000 short of the optimum; the projected quasi-Newton step reaches it.
final class BoundsTests: XCTestCase {
  struct Cell {
    var data: String
    var label: String
    var model: String
    var l2: Double
    var lower: Double?
    var upper: Double?

    var flags: [String] {
      var f = ["--model", model, "--l2", "\(l2)"]
      if let lower { f += ["--lower", "\(lower)"] }
      if let upper { f += ["--upper", "\(upper)"] }
      return f
    }
  }

  static let cells = [
    Cell(data: "diabetes.csv", label: "progression", model: "linear", l2: 0, lower: -1, upper: 1),
    Cell(data: "diabetes.csv", label: "progression", model: "ridge", l2: 0.1, lower: 0, upper: nil),
    Cell(
      data: "breast_cancer.csv", label: "malignant", model: "logistic", l2: 0, lower: 0,
      upper: nil),
    Cell(
      data: "breast_cancer.csv", label: "malignant", model: "logistic", l2: 0.01, lower: nil,
      upper: 0.2),
    Cell(
      data: "breast_cancer.csv", label: "malignant", model: "logistic", l2: 0, lower: -5,
      upper: 5),
  ]

  func testBoundedFitsReachTheReferenceOptimum() throws {
    guard let python = ProcessInfo.processInfo.environment["TASKGRAPH_REFERENCE_PYTHON"] else {
      return XCTFail("TASKGRAPH_REFERENCE_PYTHON is not set: run scripts/test.sh")
    }
    let dir = try TempDir()
    var runs: [(what: String, objective: Double, request: [String: Any])] = []
    for cell in Self.cells {
      for standardize in [false, true] {
        for workers in [nil, "2"] {
          let what =
            "\(cell.model) \(cell.flags.dropFirst(2).joined(separator: " "))"
            + "\(standardize ? " --standardize" : "")\(workers.map { " --workers \($0)" } ?? "")"
          let output = dir.path("model-\(runs.count).json")
          var args = [
            "train", "--data", CLI.dataset(cell.data), "--label", cell.label, "--output", output,
            "--quiet",
          ]
          args += cell.flags + (standardize ? ["--standardize"] : [])
          if let workers { args += ["--workers", workers] }
          let r = try CLI.run(args)
          XCTAssertEqual(r.status, 0, "\(what): \(r.stderr)")
          XCTAssertFalse(r.stderr.contains("warning"), "\(what): \(r.stderr)")
          guard r.status == 0 else { continue }
          let json = try CLI.json(output)
          let training = json["training"] as? [String: Any] ?? [:]
          XCTAssertEqual(training["solver"] as? String, "projected", what)
          let w = json["coefficients"] as? [Double] ?? []
          let onBound = w.contains { $0 == cell.lower || $0 == cell.upper }
          XCTAssertTrue(onBound, "\(what): no coefficient on a bound: \(w)")
          for v in w {
            XCTAssertGreaterThanOrEqual(v, cell.lower ?? -.infinity, what)
            XCTAssertLessThanOrEqual(v, cell.upper ?? .infinity, what)
          }
          // The reference solves in the units the penalty is on: standardised columns (the
          // bounds scaled with them) under --standardize, the raw columns otherwise.
          var request: [String: Any] = [
            "data": CLI.dataset(cell.data), "label": cell.label, "model": cell.model,
            "l1": 0.0, "l2": cell.l2,
          ]
          let pre = json["preprocessing"] as? [String: Any] ?? [:]
          let scales =
            standardize ? pre["scales"] as? [Double] ?? [] : Array(repeating: 1, count: w.count)
          if standardize {
            request["means"] = pre["means"]
            request["scales"] = scales
          }
          if let lower = cell.lower { request["lower"] = scales.map { lower * $0 } }
          if let upper = cell.upper { request["upper"] = scales.map { upper * $0 } }
          runs.append((what, training["objective"] as? Double ?? .nan, request))
        }
      }
    }
    let references = try ConformanceTests.reference(python: python, runs.map(\.request))
    XCTAssertEqual(references.count, runs.count)
    var worst = 0.0
    for (run, reference) in zip(runs, references) {
      let error = abs(run.objective - reference) / abs(reference)
      worst = max(worst, error)
      XCTAssertLessThanOrEqual(
        error, 1e-8, "\(run.what): objective \(run.objective), reference \(reference)")
    }
    print("bounds: \(runs.count) cells, largest relative error from the reference \(worst)")
  }
}
