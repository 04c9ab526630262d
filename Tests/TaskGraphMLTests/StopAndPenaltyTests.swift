import TaskGraphLinalg
import XCTest

@testable import TaskGraphML

/// The stop test's estimate of the decrease still to come, and penalties on other units
/// than the solver's.
final class StopAndPenaltyTests: XCTestCase {
  /// Objectives of a method converging linearly at rate `r` to `optimum`.
  func linear(rate r: Double, steps: Int, optimum: Double = 1) -> [Double] {
    (0...steps).map { optimum + pow(r, Double($0)) }
  }

  func progress(_ f: [Double]) -> OptimizationProgress {
    var p = OptimizationProgress(
      iteration: f.count - 1, objective: f[f.count - 1], previousObjective: f[f.count - 2],
      gradientNorm: 1, elapsedSeconds: 0)
    p.recentObjectives = Array(f.suffix(2 * OptimizationProgress.window + 1))
    return p
  }

  /// Linear convergence at r = 0.999: each step lowers F by 1e-3 of what is left, so the
  /// last step alone (|Δ|) underestimates what is left by a factor of 1000; the estimate
  /// from the last iterations' rate recovers it within 1 %.
  func testRemainingDecreaseOfLinearConvergence() throws {
    let f = linear(rate: 0.999, steps: 5000)
    let p = progress(f)
    let left = f.last! - 1
    let last = f[f.count - 2] - f[f.count - 1]
    XCTAssertLessThan(last, left / 900)
    XCTAssertEqual(p.remainingDecrease!, left, accuracy: 0.01 * left)
    // The stop test at tolerance 1e-6 of the objective: the last step (≈ 6.7e-6) would pass
    // a plain relative-change test at 1e-5, the estimate (≈ 6.7e-3) does not.
    XCTAssertNil(StopCriterion.relativeObjectiveChange(below: 1e-5).reason(at: p))
    // Fast convergence: nothing is overestimated beyond the last step's order.
    let q = progress(linear(rate: 0.1, steps: 20))
    XCTAssertLessThanOrEqual(q.remainingDecrease!, 1e-19)
  }

  /// Without recent objectives the estimate is the last step, as before.
  func testRemainingDecreaseWithoutHistoryIsTheLastStep() {
    let p = OptimizationProgress(
      iteration: 1, objective: 2, previousObjective: 2.5, gradientNorm: 1, elapsedSeconds: 0)
    XCTAssertEqual(p.remainingDecrease, 0.5)
  }

  /// A penalty on original units, applied to standardised coefficients `v = s·w`, gives the
  /// penalty of `w`, and the scaled weights of one coordinate are `l1/s` and `l2/s²`.
  func testScaledPenaltyIsThePenaltyOfTheOriginalCoefficients() {
    let scales = [2.0, 0.5, 10]
    let w = [1.5, -3, 0.25]
    let v = zip(w, scales).map { $0 * $1 }
    let plain = Regularization(l1: 0.3, l2: 0.7)
    let scaled = plain.scaled(by: scales)
    XCTAssertEqual(scaled.penalty(v), plain.penalty(w), accuracy: 1e-14)
    XCTAssertEqual(scaled.l1(at: 1), 0.6, accuracy: 1e-15)
    XCTAssertEqual(scaled.l2(at: 2), 0.007, accuracy: 1e-15)
    XCTAssertNil(plain.scaled(by: [1, 1, 1]).scales)
  }

  /// Training on standardised columns with the penalty scaled back to the original units
  /// reaches the optimum of the original problem: the ridge optimum of raw columns, in
  /// closed form, within 1e-9 — by L-BFGS (with the curvature preconditioner), OWL-QN with
  /// an L1 weight of 0 and the exact solver alike.
  func testStandardisedTrainingWithOriginalPenaltyMatchesRawRidge() throws {
    var rng = SplitMix64(seed: 7)
    let (n, d) = (300, 4)
    let columnScales = [1.0, 100, 0.01, 5]
    var raw = [Double]()
    var y = [Double]()
    for _ in 0..<n {
      var row = [Double]()
      for j in 0..<d {
        row.append((Double.random(in: 0..<1, using: &rng) - 0.5) * columnScales[j] + Double(j))
      }
      raw += row
      y.append(row[0] - 0.02 * row[1] + 30 * row[2] + Double.random(in: 0..<1, using: &rng))
    }
    let l2 = 0.05
    let x = Matrix<Double>(rows: n, cols: d, storage: raw)
    let reference = try ExactSolver.cholesky(x: x, y: y, l2: l2)
    // Standardise.
    var means = [Double](repeating: 0, count: d)
    var sds = [Double](repeating: 0, count: d)
    for j in 0..<d {
      means[j] = (0..<n).reduce(0) { $0 + raw[$1 * d + j] } / Double(n)
      sds[j] =
        ((0..<n).reduce(0) { $0 + pow(raw[$1 * d + j] - means[j], 2) } / Double(n)).squareRoot()
    }
    let z = Matrix<Double>(
      rows: n, cols: d,
      storage: (0..<(n * d)).map { (raw[$0] - means[$0 % d]) / sds[$0 % d] })
    let penalty = Regularization(l2: l2).scaled(by: sds)
    for solver in [Solver.lbfgs, .exact] {
      let c = TrainingConfiguration(
        kind: .ridge, regularization: penalty, solver: solver,
        stop: StopCriteria([.maxIterations(5000), .relativeObjectiveChange(below: 1e-15)]))
      let fit = try Trainer.fit(x: z, y: y, configuration: c)
      for j in 0..<d {
        let w = fit.model.coefficients[j] / sds[j]
        XCTAssertEqual(
          w, reference.weights[j], accuracy: 1e-7 * max(1, abs(reference.weights[j])),
          "\(solver) coefficient \(j)")
      }
    }
  }
}
