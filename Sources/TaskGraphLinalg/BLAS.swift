/// Shape-checked BLAS level 1–3 operations on `Matrix` and `[Scalar]` vectors.
///
/// Every function traps on a shape mismatch (a caller bug) and otherwise forwards to
/// OpenBLAS. Complexity is that of the BLAS routine: O(n) for level 1, O(mn) for gemv,
/// O(mnk) for gemm.
public enum BLAS {
  /// `y = alpha * A x + beta * y` (`transposed`: `y = alpha * Aᵀ x + beta * y`).
  public static func gemv<T: BLASScalar>(
    _ a: Matrix<T>, _ x: [T], into y: inout [T], alpha: T = 1, beta: T = 0,
    transposed: Bool = false
  ) {
    let (inCount, outCount) = transposed ? (a.rows, a.cols) : (a.cols, a.rows)
    precondition(x.count == inCount, "gemv: x has \(x.count) elements, expected \(inCount)")
    precondition(y.count == outCount, "gemv: y has \(y.count) elements, expected \(outCount)")
    if a.rows == 0 || a.cols == 0 {
      for i in y.indices { y[i] = beta == 0 ? 0 : beta * y[i] }
      return
    }
    a.withUnsafeBufferPointer { ap in
      x.withUnsafeBufferPointer { xp in
        y.withUnsafeMutableBufferPointer { yp in
          T.gemv(
            trans: transposed, m: a.rows, n: a.cols, alpha: alpha, a: ap.baseAddress!,
            lda: a.cols, x: xp.baseAddress!, beta: beta, y: yp.baseAddress!)
        }
      }
    }
  }

  /// `A x` (or `Aᵀ x`) as a new vector.
  public static func gemv<T: BLASScalar>(_ a: Matrix<T>, _ x: [T], transposed: Bool = false) -> [T]
  {
    var y = [T](repeating: 0, count: transposed ? a.cols : a.rows)
    gemv(a, x, into: &y, transposed: transposed)
    return y
  }

  /// `C = alpha * op(A) op(B) + beta * C`.
  public static func gemm<T: BLASScalar>(
    _ a: Matrix<T>, _ b: Matrix<T>, into c: inout Matrix<T>, alpha: T = 1, beta: T = 0,
    transposeA: Bool = false, transposeB: Bool = false
  ) {
    let m = transposeA ? a.cols : a.rows
    let k = transposeA ? a.rows : a.cols
    let kb = transposeB ? b.cols : b.rows
    let n = transposeB ? b.rows : b.cols
    precondition(k == kb, "gemm: inner dimensions \(k) and \(kb) differ")
    precondition(c.rows == m && c.cols == n, "gemm: C is \(c.rows)×\(c.cols), expected \(m)×\(n)")
    if m == 0 || n == 0 { return }
    if k == 0 {
      c.withUnsafeMutableBufferPointer { cp in for i in cp.indices { cp[i] = beta * cp[i] } }
      return
    }
    let ldc = c.cols
    a.withUnsafeBufferPointer { ap in
      b.withUnsafeBufferPointer { bp in
        c.withUnsafeMutableBufferPointer { cp in
          T.gemm(
            transA: transposeA, transB: transposeB, m: m, n: n, k: k, alpha: alpha,
            a: ap.baseAddress!, lda: a.cols, b: bp.baseAddress!, ldb: b.cols, beta: beta,
            c: cp.baseAddress!, ldc: ldc)
        }
      }
    }
  }

  /// `op(A) op(B)` as a new matrix.
  public static func gemm<T: BLASScalar>(
    _ a: Matrix<T>, _ b: Matrix<T>, transposeA: Bool = false, transposeB: Bool = false
  ) -> Matrix<T> {
    var c = Matrix<T>(rows: transposeA ? a.cols : a.rows, cols: transposeB ? b.rows : b.cols)
    gemm(a, b, into: &c, transposeA: transposeA, transposeB: transposeB)
    return c
  }

  /// `xᵀ y`.
  public static func dot<T: BLASScalar>(_ x: [T], _ y: [T]) -> T {
    precondition(x.count == y.count, "dot: lengths \(x.count) and \(y.count) differ")
    if x.isEmpty { return 0 }
    return x.withUnsafeBufferPointer { xp in
      y.withUnsafeBufferPointer { yp in T.dot(n: x.count, x: xp.baseAddress!, y: yp.baseAddress!) }
    }
  }

  /// `y += alpha x`.
  public static func axpy<T: BLASScalar>(_ alpha: T, _ x: [T], _ y: inout [T]) {
    precondition(x.count == y.count, "axpy: lengths \(x.count) and \(y.count) differ")
    if x.isEmpty { return }
    x.withUnsafeBufferPointer { xp in
      y.withUnsafeMutableBufferPointer { yp in
        T.axpy(n: x.count, alpha: alpha, x: xp.baseAddress!, y: yp.baseAddress!)
      }
    }
  }

  /// `‖x‖₂`.
  public static func nrm2<T: BLASScalar>(_ x: [T]) -> T {
    if x.isEmpty { return 0 }
    return x.withUnsafeBufferPointer { T.nrm2(n: x.count, x: $0.baseAddress!) }
  }

  /// `x *= alpha`.
  public static func scal<T: BLASScalar>(_ alpha: T, _ x: inout [T]) {
    if x.isEmpty { return }
    x.withUnsafeMutableBufferPointer { T.scal(n: $0.count, alpha: alpha, x: $0.baseAddress!) }
  }
}
