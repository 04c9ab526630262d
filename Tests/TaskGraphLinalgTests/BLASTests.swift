import XCTest

@testable import TaskGraphLinalg

final class BLASTests: XCTestCase {
  func testGemvGemmAgainstLoops() {
    let a = Matrix<Double>([[1, 2, 3], [4, 5, 6]])
    XCTAssertEqual(BLAS.gemv(a, [1, 0, -1]), [-2, -2])
    XCTAssertEqual(BLAS.gemv(a, [1, 1], transposed: true), [5, 7, 9])
    let b = Matrix<Double>([[1, 0], [0, 1], [1, 1]])
    XCTAssertEqual(BLAS.gemm(a, b), Matrix([[4, 5], [10, 11]]))
    XCTAssertEqual(BLAS.gemm(a, a, transposeB: true), Matrix([[14, 32], [32, 77]]))
    let af: Matrix<Float> = a.converted()
    XCTAssertEqual(BLAS.gemv(af, [1, 0, -1]), [-2, -2])
  }

  func testLevelOne() {
    var y: [Double] = [1, 2, 3]
    BLAS.axpy(2, [1, 1, 1], &y)
    XCTAssertEqual(y, [3, 4, 5])
    XCTAssertEqual(BLAS.dot(y, [1, 0, 1]), 8)
    XCTAssertEqual(BLAS.nrm2([3.0, 4.0]), 5, accuracy: 1e-15)
    BLAS.scal(0.5, &y)
    XCTAssertEqual(y, [1.5, 2, 2.5])
  }

  func testSolvers() throws {
    // A = [[4, 2], [2, 3]], b = [2, 1]: x = [0.5, 0] exactly.
    let a = Matrix<Double>([[4, 2], [2, 3]])
    let x = try LAPACK.solvePositiveDefinite(a, [2, 1])
    XCTAssertEqual(x[0], 0.5, accuracy: 1e-15)
    XCTAssertEqual(x[1], 0, accuracy: 1e-15)
    XCTAssertThrowsError(
      try LAPACK.solvePositiveDefinite(Matrix<Double>([[1, 2], [2, 1]]), [1, 1]))
    // Overdetermined: fit y = 1 + 2t at t = 0, 1, 2 exactly.
    let design = Matrix<Double>([[1, 0], [1, 1], [1, 2]])
    let coef = try LAPACK.leastSquares(design, [1, 3, 5])
    XCTAssertEqual(coef[0], 1, accuracy: 1e-12)
    XCTAssertEqual(coef[1], 2, accuracy: 1e-12)
  }
}
