import TaskGraphLinalg
import TaskGraphML
import XCTest

/// Lasso and elastic net checked by their optimality (subgradient) conditions.
final class SparseTests: XCTestCase {
  /// Checks KKT: wⱼ ≠ 0 ⇒ |gⱼ + l1·sign(wⱼ) + l2·wⱼ| ≤ tol; wⱼ = 0 ⇒ |gⱼ| ≤ l1 + tol;
  /// |g_b| ≤ tol, with g the mean-loss gradient computed by the test in Double.
  func assertKKT(
    _ data: Dataset, _ model: LinearModel, l1: Double, l2: Double, tolerance: Double,
    _ label: String, file: StaticString = #filePath, line: UInt = #line
  ) {
    let (g, gb) = referenceGradient(
      data, w: model.coefficients, b: model.intercept, logistic: false)
    var zeros = 0
    for (j, w) in model.coefficients.enumerated() {
      if w != 0 {
        let residual = g[j] + l1 * (w > 0 ? 1 : -1) + l2 * w
        XCTAssertLessThanOrEqual(
          abs(residual), tolerance, "\(label) w[\(j)]", file: file, line: line)
      } else {
        zeros += 1
        XCTAssertLessThanOrEqual(
          abs(g[j]), l1 + tolerance, "\(label) w[\(j)] = 0", file: file, line: line)
      }
    }
    XCTAssertLessThanOrEqual(abs(gb), tolerance, "\(label) intercept", file: file, line: line)
    // The problem must be one where sparsity shows: some zero and some non-zero weights.
    XCTAssertGreaterThan(zeros, 0, "\(label): no coefficient is zero", file: file, line: line)
    XCTAssertLessThan(
      zeros, data.cols, "\(label): all coefficients are zero", file: file, line: line)
  }

  func fit<T: BLASScalar>(
    _: T.Type, _ data: Dataset, l1: Double, l2: Double, solver: Solver, gradient: Double
  ) throws -> TrainingResult {
    let x: Matrix<T> = data.matrix()
    let config = TrainingConfiguration(
      kind: l2 > 0 ? .elasticNet : .lasso, regularization: Regularization(l1: l1, l2: l2),
      solver: solver, stop: StopCriteria([.maxIterations(20_000), .gradientNorm(below: gradient)]))
    return try Trainer.fit(x: x, y: data.labels, configuration: config)
  }

  /// OWL-QN, Double: KKT to 1e-6 for lasso and elastic net on standardised diabetes.
  func testOWLQNSatisfiesKKTDouble() throws {
    let data = try loadCSV("diabetes.csv").standardised()
    for (l1, l2) in [(5.0, 0.0), (2.0, 0.5)] {
      let result = try fit(Double.self, data, l1: l1, l2: l2, solver: .auto, gradient: 1e-10)
      XCTAssertEqual(result.summary.solver, .owlqn)
      assertKKT(data, result.model, l1: l1, l2: l2, tolerance: 1e-6, "owlqn l1=\(l1) l2=\(l2)")
    }
  }

  /// OWL-QN, Float storage: KKT to 1e-3.
  func testOWLQNSatisfiesKKTFloat() throws {
    let data = try loadCSV("diabetes.csv").standardised()
    for (l1, l2) in [(5.0, 0.0), (2.0, 0.5)] {
      let result = try fit(Float.self, data, l1: l1, l2: l2, solver: .owlqn, gradient: 1e-5)
      assertKKT(data, result.model, l1: l1, l2: l2, tolerance: 1e-3, "float owlqn l1=\(l1)")
    }
  }

  /// Proximal gradient descent reaches the same KKT point, 1e-6.
  func testProximalGradientSatisfiesKKT() throws {
    let data = try loadCSV("diabetes.csv").standardised()
    let result = try fit(Double.self, data, l1: 5, l2: 0, solver: .gradientDescent, gradient: 1e-9)
    assertKKT(data, result.model, l1: 5, l2: 0, tolerance: 1e-6, "proximal gd")
  }
}
