/// An error from a LAPACK routine: the matrix was singular or not positive definite.
public struct LinalgError: Error, CustomStringConvertible, Sendable {
  /// The routine that failed, e.g. `posv`.
  public let routine: String
  /// LAPACK's `info` value.
  public let info: Int32
  /// A human explanation.
  public let message: String
  public var description: String { "\(routine) failed (info \(info)): \(message)" }
}

/// LAPACK solvers over `Matrix`.
public enum LAPACK {
  /// Solves `A x = b` for symmetric positive-definite `A` by Cholesky (`posv`). O(n³).
  public static func solvePositiveDefinite<T: BLASScalar>(_ a: Matrix<T>, _ b: [T]) throws -> [T] {
    precondition(a.rows == a.cols, "posv: A must be square, is \(a.rows)×\(a.cols)")
    precondition(b.count == a.rows, "posv: b has \(b.count) elements, expected \(a.rows)")
    if a.rows == 0 { return [] }
    var a = a
    var x = b
    let info = a.withUnsafeMutableBufferPointer { ap in
      x.withUnsafeMutableBufferPointer { xp in
        T.posv(
          n: ap.count == 0 ? 0 : b.count, nrhs: 1, a: ap.baseAddress!, lda: b.count,
          b: xp.baseAddress!, ldb: 1)
      }
    }
    if info != 0 {
      throw LinalgError(
        routine: "posv", info: info,
        message: info > 0
          ? "matrix is not positive definite (leading minor \(info))" : "illegal argument \(-info)")
    }
    return x
  }

  /// Least-squares solution of `min ‖A x − b‖₂` by QR (`gels`), `A` of full column rank. O(mn²).
  public static func leastSquares<T: BLASScalar>(_ a: Matrix<T>, _ b: [T]) throws -> [T] {
    precondition(b.count == a.rows, "gels: b has \(b.count) elements, expected \(a.rows)")
    precondition(a.rows >= a.cols, "gels: needs at least as many rows as columns")
    if a.cols == 0 { return [] }
    var a = a
    var x = b
    let (m, n) = (a.rows, a.cols)
    let info = a.withUnsafeMutableBufferPointer { ap in
      x.withUnsafeMutableBufferPointer { xp in
        T.gels(m: m, n: n, nrhs: 1, a: ap.baseAddress!, lda: n, b: xp.baseAddress!, ldb: 1)
      }
    }
    if info != 0 {
      throw LinalgError(
        routine: "gels", info: info,
        message: info > 0
          ? "matrix does not have full rank (diagonal \(info) of R is zero)"
          : "illegal argument \(-info)")
    }
    return Array(x.prefix(n))
  }
}
