import TaskGraphLinalg
import TaskGraphML
import XCTest

final class IterativeRidgeTests: XCTestCase {
  let l2 = 0.05

  func closedForm() throws -> (Dataset, [Double]) {
    let data = try loadCSV("diabetes.csv").standardised()
    let r = referenceRidge(data, l2: l2)
    return (data, r.w + [r.b])
  }

  /// L-BFGS and gradient descent reach the ridge closed form to 1e-6 relative (Double).
  func testRidgeIterativeMatchesClosedFormDouble() throws {
    let (data, reference) = try closedForm()
    let x: Matrix<Double> = data.matrix()
    for solver in [Solver.lbfgs, .gradientDescent] {
      let config = TrainingConfiguration(
        kind: .ridge, regularization: Regularization(l2: l2), solver: solver,
        stop: StopCriteria([.maxIterations(20_000), .gradientNorm(below: 1e-10)]))
      let result = try Trainer.fit(x: x, y: data.labels, configuration: config)
      let got = result.model.coefficients + [result.model.intercept]
      XCTAssertLessThan(
        relativeError(got, reference), 1e-6, "\(solver): \(result.summary.stopReason)")
      XCTAssertGreaterThan(result.summary.iterations, 1)
      // The objective never increases beyond rounding.
      for (a, b) in zip(result.summary.objectives, result.summary.objectives.dropFirst()) {
        XCTAssertLessThanOrEqual(b, a + 1e-9 * abs(a), "\(solver)")
      }
    }
  }

  /// The same in Float storage: 1e-3 relative.
  func testRidgeIterativeFloat() throws {
    let (data, reference) = try closedForm()
    let x: Matrix<Float> = data.matrix()
    for solver in [Solver.lbfgs, .gradientDescent] {
      let config = TrainingConfiguration(
        kind: .ridge, regularization: Regularization(l2: l2), solver: solver,
        stop: StopCriteria([.maxIterations(5_000), .gradientNorm(below: 1e-4)]))
      let result = try Trainer.fit(x: x, y: data.labels, configuration: config)
      let got = result.model.coefficients + [result.model.intercept]
      XCTAssertLessThan(relativeError(got, reference), 1e-3, "\(solver)")
    }
  }

  /// A warm start at the solution stops before the first iteration.
  func testWarmStartAtOptimumTakesNoIteration() throws {
    let (data, reference) = try closedForm()
    let x: Matrix<Double> = data.matrix()
    let config = TrainingConfiguration(
      kind: .ridge, regularization: Regularization(l2: l2), solver: .lbfgs,
      stop: StopCriteria([.maxIterations(100), .gradientNorm(below: 1e-8)]))
    let start = Parameters(weights: Array(reference.dropLast()), intercept: reference.last!)
    let result = try Trainer.fit(x: x, y: data.labels, configuration: config, initial: start)
    XCTAssertEqual(result.summary.iterations, 0)
    XCTAssertEqual(result.summary.stopReason, .gradientTolerance)
  }
}
