import TaskGraphLinalg
import TaskGraphML
import XCTest

final class ExactSolverTests: XCTestCase {
  /// OLS on raw diabetes: Cholesky and QR vs the test's own Gaussian elimination, 1e-8.
  func testOrdinaryLeastSquaresMatchesGaussianEliminationDouble() throws {
    let data = try loadCSV("diabetes.csv")
    XCTAssertEqual(data.rows, 442)
    XCTAssertEqual(data.cols, 10)
    let reference = referenceRidge(data, l2: 0)
    let x: Matrix<Double> = data.matrix()
    for solver in [Solver.exact, .qr, .auto] {
      let result = try Trainer.fit(
        x: x, y: data.labels, configuration: TrainingConfiguration(kind: .linear, solver: solver))
      XCTAssertEqual(result.summary.stopReason, .exactSolution)
      XCTAssertLessThan(
        relativeError(result.model.coefficients, reference.w), 1e-8, "\(solver) coefficients")
      XCTAssertEqual(
        result.model.intercept, reference.b, accuracy: 1e-8 * abs(reference.b), "\(solver)")
    }
  }

  /// The same in Float storage on standardised features: 1e-3 relative.
  func testOrdinaryLeastSquaresFloat() throws {
    let data = try loadCSV("diabetes.csv").standardised()
    let reference = referenceRidge(data, l2: 0)
    let x: Matrix<Float> = data.matrix()
    for solver in [Solver.exact, .qr] {
      let result = try Trainer.fit(
        x: x, y: data.labels, configuration: TrainingConfiguration(kind: .linear, solver: solver))
      XCTAssertLessThan(
        relativeError(
          result.model.coefficients + [result.model.intercept], reference.w + [reference.b]),
        1e-3, "\(solver)")
    }
  }

  /// Ridge by Cholesky and by augmented QR vs Gaussian elimination, 1e-8 relative.
  func testRidgeClosedForms() throws {
    let data = try loadCSV("diabetes.csv")
    let l2 = Regularization.ridge(alpha: 10, rows: data.rows).l2
    let reference = referenceRidge(data, l2: l2)
    let x: Matrix<Double> = data.matrix()
    let chol = try ExactSolver.cholesky(x: x, y: data.labels, l2: l2)
    let qr = try ExactSolver.qr(x: x, y: data.labels, l2: l2)
    XCTAssertLessThan(relativeError(chol.weights, reference.w), 1e-8)
    XCTAssertLessThan(relativeError(qr.weights, reference.w), 1e-8)
    XCTAssertEqual(chol.intercept, reference.b, accuracy: 1e-8 * abs(reference.b))
    XCTAssertEqual(qr.intercept, reference.b, accuracy: 1e-8 * abs(reference.b))
  }

  /// Without an intercept the solution is the plain normal-equation solution.
  func testNoIntercept() throws {
    let data = try loadCSV("diabetes.csv").standardised()
    let x: Matrix<Double> = data.matrix()
    let p = try ExactSolver.cholesky(x: x, y: data.labels, l2: 0.1, fitIntercept: false)
    let q = try ExactSolver.qr(x: x, y: data.labels, l2: 0.1, fitIntercept: false)
    XCTAssertEqual(p.intercept, 0)
    XCTAssertLessThan(relativeError(p.weights, q.weights), 1e-10)
    // Stationarity of the objective without intercept: (1/n)Xᵀ(Xw − y) + l2 w = 0.
    let g = referenceGradient(data, w: p.weights, b: 0, logistic: false).g
    for j in 0..<data.cols { XCTAssertEqual(g[j] + 0.1 * p.weights[j], 0, accuracy: 1e-9) }
  }

  /// A constant column makes the centred XᵀX singular: Cholesky throws `singularSystem`.
  func testSingularSystemThrows() {
    let x = Matrix<Double>([[1, 5], [2, 5], [3, 5]])
    XCTAssertThrowsError(try ExactSolver.cholesky(x: x, y: [1, 2, 3], l2: 0)) { error in
      XCTAssertEqual((error as? MLError)?.code, .singularSystem)
    }
  }
}
