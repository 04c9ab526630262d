import Foundation
import TaskGraphML
import XCTest

/// Finite values too large to square. A column near 1e308 must be fitted as its scaled copy
/// (the standardisation's sums are taken on scaled values when the plain ones overflow); a
/// label whose squared residual overflows cannot give a trustworthy objective, so the run is
/// refused rather than written with exit status 0.
final class HugeValueTests: XCTestCase {
  /// `y,a,b` with `b = t·1e308` (or `b = t` when `scale` is empty), `t` in [−1, 1] with four
  /// decimals, and `y` linear in `a` and `t` plus noise.
  static func table(scale: String, rows: Int = 200) -> String {
    var rng = SplitMix64(seed: 5)
    func uniform() -> Double { Double(rng.next() % 20_001) / 10_000 - 1 }
    var text = "y,a,b\n"
    for _ in 0..<rows {
      let (a, t, noise) = (uniform() * 3, uniform(), uniform() / 10)
      text += "\(2 + 1.5 * a - 4 * t + noise),\(a),\(t)\(scale)\n"
    }
    return text
  }

  /// The column space of the huge table is the small table's, so least squares must give
  /// the same fitted values: per row, |ŷ − ŷ_ref| ≤ tol · (1 + |ŷ_ref|), against NumPy's
  /// `lstsq` on the small table (`Tests/reference/lstsq.py`); tol is 1e-9 for the exact
  /// solver and 1e-7 for L-BFGS, which stops on a relative objective change of 1e-12 (a
  /// parameter error of order its square root times the conditioning's spread). The plain sums of squares
  /// overflowed, the scale fell back to 1 and the exact solver then failed inside LAPACK.
  func testColumnNear1e308IsFittedLikeItsScaledCopy() throws {
    guard let python = ProcessInfo.processInfo.environment["TASKGRAPH_REFERENCE_PYTHON"] else {
      return XCTFail("TASKGRAPH_REFERENCE_PYTHON is not set: run scripts/test.sh")
    }
    let dir = try TempDir()
    let huge = try dir.write("huge.csv", Self.table(scale: "e308"))
    let small = try dir.write("small.csv", Self.table(scale: ""))
    let request: [String: Any] = ["data": small, "label": "y", "categorical": [String]()]
    let reference =
      (try CLI.reference(python: python, script: "lstsq.py", request: request)
      as? [String: Any])?["fitted"] as? [Double] ?? []
    XCTAssertEqual(reference.count, 200)
    for extra in [
      ["--solver", "exact"], ["--solver", "lbfgs"], ["--solver", "exact", "--workers", "2"],
      ["--solver", "lbfgs", "--workers", "2"], ["--solver", "lbfgs", "--standardize"],
    ] {
      let model = dir.path("model.json")
      let r = try CLI.run(
        ["train", "--data", huge, "--label", "y", "--output", model, "--quiet"] + extra)
      XCTAssertEqual(r.status, 0, "\(extra): \(r.stderr)")
      guard r.status == 0 else { continue }
      let p = try CLI.run(["predict", "--model", model, "--data", huge])
      XCTAssertEqual(p.status, 0, p.stderr)
      let fitted = p.stdout.split(separator: "\n").dropFirst().map {
        Double($0.split(separator: ",").last!) ?? .nan
      }
      XCTAssertEqual(fitted.count, reference.count, "\(extra)")
      var worst = 0.0
      for (a, b) in zip(fitted, reference) { worst = max(worst, abs(a - b) / (1 + abs(b))) }
      print("huge column \(extra): largest relative difference from lstsq \(worst)")
      XCTAssertLessThanOrEqual(worst, extra.contains("exact") ? 1e-9 : 1e-7, "\(extra)")
    }
  }

  /// One label of 1e300 among ordinary ones: its squared residual is infinite, and the run
  /// wrote a model with objective inf or NaN (exit status 0). Now every solver, in one process
  /// or with workers, refuses with a one-line error and leaves the old model in place.
  func testLabelTooLargeToSquareIsRefused() throws {
    let dir = try TempDir()
    var text = "y,a\n"
    for i in 0..<50 { text += "\(i == 7 ? "1e300" : "\(Double(i) * 0.5 + 1)"),\(i % 9)\n" }
    let data = try dir.write("big-label.csv", text)
    let model = dir.path("model.json")
    try Data("previous model".utf8).write(to: URL(fileURLWithPath: model))
    for extra in [
      ["--solver", "exact"], ["--solver", "lbfgs"], ["--solver", "gd"], ["--solver", "sgd"],
      ["--solver", "exact", "--workers", "2"], ["--solver", "lbfgs", "--workers", "2"],
    ] {
      let r = try CLI.run(
        ["train", "--data", data, "--label", "y", "--output", model, "--quiet"] + extra)
      XCTAssertNotEqual(r.status, 0, "\(extra): \(r.stdout)")
      let errors = r.stderr.split(separator: "\n").filter { $0.hasPrefix("error:") }
      XCTAssertEqual(errors.count, 1, "\(extra): \(r.stderr)")
      XCTAssertTrue(r.stderr.contains("too large"), "\(extra): \(r.stderr)")
      XCTAssertEqual(try String(contentsOfFile: model, encoding: .utf8), "previous model")
    }
  }
}
