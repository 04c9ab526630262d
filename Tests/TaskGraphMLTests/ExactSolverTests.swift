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

  /// A constant column and a duplicated one make the centred XᵀX singular: the exact
  /// solver names them aliased (the later of collinear columns), gives them coefficient 0,
  /// and fits the rest as least squares without them: fitted values equal QR's on the
  /// columns kept, within 1e-12 relative. A penalty keeps every column.
  func testAliasedColumnsGetZero() throws {
    let rows: [[Double]] = [
      [1, 5, 2, 1], [2, 5, 1, 2], [3, 5, 4, 3], [4, 5, 3, 4], [5, 5, 7, 5],
    ]
    let y: [Double] = [1, 3, 2, 5, 4]
    let x = Matrix<Double>(rows)
    let stats = GramStatistics(x: x, y: y)
    let (p, aliased) = try stats.solveReportingAliased(l2: 0)
    XCTAssertEqual(aliased, [1, 3])
    XCTAssertEqual(p.weights[1], 0)
    XCTAssertEqual(p.weights[3], 0)
    let kept = Matrix<Double>(rows.map { [$0[0], $0[2]] })
    let q = try ExactSolver.qr(x: kept, y: y)
    XCTAssertEqual(p.weights[0], q.weights[0], accuracy: 1e-12 * abs(q.weights[0]))
    XCTAssertEqual(p.weights[2], q.weights[1], accuracy: 1e-12 * abs(q.weights[1]))
    XCTAssertEqual(p.intercept, q.intercept, accuracy: 1e-12 * abs(q.intercept))
    let (_, none) = try stats.solveReportingAliased(l2: 0.1)
    XCTAssertEqual(none, [])
  }

  /// One-hot levels of a column beside the intercept (every level kept): the last level is
  /// aliased, and the fitted values equal those of treatment coding (first level dropped).
  /// In Float storage too: its Gram matrix is formed in Double, so the aliasing is found
  /// there as well (the coefficients then match within Float's rounding of the data, 1e-6).
  func testOneHotBesideInterceptIsAliased() throws {
    var rng = SplitMix64(seed: 11)
    var full: [[Double]] = []
    var y: [Double] = []
    for _ in 0..<200 {
      let level = Int(rng.next() % 3)
      let v = Double(rng.next() >> 11) / Double(1 << 53)
      full.append([v] + (0..<3).map { $0 == level ? 1 : 0 })
      y.append(2 * v + Double(level) + Double(rng.next() >> 11) / Double(1 << 53))
    }
    let (p, aliased) = try GramStatistics(x: Matrix<Double>(full), y: y).solveReportingAliased(
      l2: 0)
    XCTAssertEqual(aliased, [3])
    let floats = Matrix<Float>(full.map { $0.map(Float.init) })
    let (pf, aliasedFloat) = try GramStatistics(x: floats, y: y).solveReportingAliased(l2: 0)
    XCTAssertEqual(aliasedFloat, [3])
    for j in 0..<3 {
      XCTAssertEqual(pf.weights[j], p.weights[j], accuracy: 1e-6 * max(1, abs(p.weights[j])))
    }
    let treatment = try ExactSolver.qr(x: Matrix<Double>(full.map { [$0[0], $0[2], $0[3]] }), y: y)
    for row in full {
      let a = zip(row, p.weights).reduce(p.intercept) { $0 + $1.0 * $1.1 }
      let b =
        treatment.intercept + treatment.weights[0] * row[0] + treatment.weights[1] * row[2]
        + treatment.weights[2] * row[3]
      XCTAssertEqual(a, b, accuracy: 1e-10 * max(1, abs(b)))
    }
  }
}
