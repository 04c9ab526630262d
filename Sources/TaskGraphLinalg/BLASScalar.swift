import COpenBLAS

/// A floating-point type that OpenBLAS and LAPACKE can operate on: `Float` or `Double`.
///
/// The static members are thin, unchecked bindings to the CBLAS/LAPACKE routine of the
/// matching precision; the checked, shape-validating API is on `Matrix` and in `BLAS`.
public protocol BLASScalar: BinaryFloatingPoint, Sendable, Codable
where Self.RawSignificand: FixedWidthInteger {
  /// `y = alpha * op(A) * x + beta * y` for a row-major `A` of `m` by `n` with leading dimension `lda`.
  static func gemv(
    trans: Bool, m: Int, n: Int, alpha: Self, a: UnsafePointer<Self>, lda: Int,
    x: UnsafePointer<Self>, beta: Self, y: UnsafeMutablePointer<Self>)
  /// `C = alpha * op(A) * op(B) + beta * C`, all row-major.
  static func gemm(
    transA: Bool, transB: Bool, m: Int, n: Int, k: Int, alpha: Self,
    a: UnsafePointer<Self>, lda: Int, b: UnsafePointer<Self>, ldb: Int,
    beta: Self, c: UnsafeMutablePointer<Self>, ldc: Int)
  /// `C = alpha * Aᵀ A + beta * C` for a row-major `A` of `k` by `n`, updating only the upper
  /// triangle of the `n` by `n` row-major `C`.
  static func syrkTransposed(
    n: Int, k: Int, alpha: Self, a: UnsafePointer<Self>, lda: Int, beta: Self,
    c: UnsafeMutablePointer<Self>, ldc: Int)
  /// `sum(x[i] * y[i])` over `n` contiguous elements.
  static func dot(n: Int, x: UnsafePointer<Self>, y: UnsafePointer<Self>) -> Self
  /// `y += alpha * x` over `n` contiguous elements.
  static func axpy(n: Int, alpha: Self, x: UnsafePointer<Self>, y: UnsafeMutablePointer<Self>)
  /// Euclidean norm of `n` contiguous elements.
  static func nrm2(n: Int, x: UnsafePointer<Self>) -> Self
  /// `x *= alpha` over `n` contiguous elements.
  static func scal(n: Int, alpha: Self, x: UnsafeMutablePointer<Self>)
  /// Solves `A X = B` for symmetric positive-definite `A` (n by n, row-major) by Cholesky.
  /// Returns LAPACK's `info` (0 on success, > 0 if `A` is not positive definite).
  static func posv(
    n: Int, nrhs: Int, a: UnsafeMutablePointer<Self>, lda: Int,
    b: UnsafeMutablePointer<Self>, ldb: Int
  ) -> Int32
  /// Least squares `min ‖A x − b‖` by QR for a row-major `m` by `n` `A` of full rank.
  /// Returns LAPACK's `info`.
  static func gels(
    m: Int, n: Int, nrhs: Int, a: UnsafeMutablePointer<Self>, lda: Int,
    b: UnsafeMutablePointer<Self>, ldb: Int
  ) -> Int32
}

@inline(__always)
private func order() -> CBLAS_ORDER { CblasRowMajor }
@inline(__always)
private func transpose(_ t: Bool) -> CBLAS_TRANSPOSE { t ? CblasTrans : CblasNoTrans }

extension Double: BLASScalar {
  public static func gemv(
    trans: Bool, m: Int, n: Int, alpha: Double, a: UnsafePointer<Double>, lda: Int,
    x: UnsafePointer<Double>, beta: Double, y: UnsafeMutablePointer<Double>
  ) {
    cblas_dgemv(
      order(), transpose(trans), blasint(m), blasint(n), alpha, a, blasint(lda), x, 1, beta, y, 1)
  }
  public static func gemm(
    transA: Bool, transB: Bool, m: Int, n: Int, k: Int, alpha: Double,
    a: UnsafePointer<Double>, lda: Int, b: UnsafePointer<Double>, ldb: Int,
    beta: Double, c: UnsafeMutablePointer<Double>, ldc: Int
  ) {
    cblas_dgemm(
      order(), transpose(transA), transpose(transB), blasint(m), blasint(n), blasint(k), alpha,
      a, blasint(lda), b, blasint(ldb), beta, c, blasint(ldc))
  }
  public static func syrkTransposed(
    n: Int, k: Int, alpha: Double, a: UnsafePointer<Double>, lda: Int, beta: Double,
    c: UnsafeMutablePointer<Double>, ldc: Int
  ) {
    cblas_dsyrk(
      order(), CblasUpper, CblasTrans, blasint(n), blasint(k), alpha, a, blasint(lda), beta, c,
      blasint(ldc))
  }
  public static func dot(n: Int, x: UnsafePointer<Double>, y: UnsafePointer<Double>) -> Double {
    cblas_ddot(blasint(n), x, 1, y, 1)
  }
  public static func axpy(
    n: Int, alpha: Double, x: UnsafePointer<Double>, y: UnsafeMutablePointer<Double>
  ) {
    cblas_daxpy(blasint(n), alpha, x, 1, y, 1)
  }
  public static func nrm2(n: Int, x: UnsafePointer<Double>) -> Double {
    cblas_dnrm2(blasint(n), x, 1)
  }
  public static func scal(n: Int, alpha: Double, x: UnsafeMutablePointer<Double>) {
    cblas_dscal(blasint(n), alpha, x, 1)
  }
  public static func posv(
    n: Int, nrhs: Int, a: UnsafeMutablePointer<Double>, lda: Int,
    b: UnsafeMutablePointer<Double>, ldb: Int
  ) -> Int32 {
    LAPACKE_dposv(
      LAPACK_ROW_MAJOR, CChar(UInt8(ascii: "U")), Int32(n), Int32(nrhs), a,
      Int32(lda), b, Int32(ldb))
  }
  public static func gels(
    m: Int, n: Int, nrhs: Int, a: UnsafeMutablePointer<Double>, lda: Int,
    b: UnsafeMutablePointer<Double>, ldb: Int
  ) -> Int32 {
    LAPACKE_dgels(
      LAPACK_ROW_MAJOR, CChar(UInt8(ascii: "N")), Int32(m), Int32(n),
      Int32(nrhs), a, Int32(lda), b, Int32(ldb))
  }
}

extension Float: BLASScalar {
  public static func gemv(
    trans: Bool, m: Int, n: Int, alpha: Float, a: UnsafePointer<Float>, lda: Int,
    x: UnsafePointer<Float>, beta: Float, y: UnsafeMutablePointer<Float>
  ) {
    cblas_sgemv(
      order(), transpose(trans), blasint(m), blasint(n), alpha, a, blasint(lda), x, 1, beta, y, 1)
  }
  public static func gemm(
    transA: Bool, transB: Bool, m: Int, n: Int, k: Int, alpha: Float,
    a: UnsafePointer<Float>, lda: Int, b: UnsafePointer<Float>, ldb: Int,
    beta: Float, c: UnsafeMutablePointer<Float>, ldc: Int
  ) {
    cblas_sgemm(
      order(), transpose(transA), transpose(transB), blasint(m), blasint(n), blasint(k), alpha,
      a, blasint(lda), b, blasint(ldb), beta, c, blasint(ldc))
  }
  public static func syrkTransposed(
    n: Int, k: Int, alpha: Float, a: UnsafePointer<Float>, lda: Int, beta: Float,
    c: UnsafeMutablePointer<Float>, ldc: Int
  ) {
    cblas_ssyrk(
      order(), CblasUpper, CblasTrans, blasint(n), blasint(k), alpha, a, blasint(lda), beta, c,
      blasint(ldc))
  }
  public static func dot(n: Int, x: UnsafePointer<Float>, y: UnsafePointer<Float>) -> Float {
    cblas_sdot(blasint(n), x, 1, y, 1)
  }
  public static func axpy(
    n: Int, alpha: Float, x: UnsafePointer<Float>, y: UnsafeMutablePointer<Float>
  ) {
    cblas_saxpy(blasint(n), alpha, x, 1, y, 1)
  }
  public static func nrm2(n: Int, x: UnsafePointer<Float>) -> Float {
    cblas_snrm2(blasint(n), x, 1)
  }
  public static func scal(n: Int, alpha: Float, x: UnsafeMutablePointer<Float>) {
    cblas_sscal(blasint(n), alpha, x, 1)
  }
  public static func posv(
    n: Int, nrhs: Int, a: UnsafeMutablePointer<Float>, lda: Int,
    b: UnsafeMutablePointer<Float>, ldb: Int
  ) -> Int32 {
    LAPACKE_sposv(
      LAPACK_ROW_MAJOR, CChar(UInt8(ascii: "U")), Int32(n), Int32(nrhs), a,
      Int32(lda), b, Int32(ldb))
  }
  public static func gels(
    m: Int, n: Int, nrhs: Int, a: UnsafeMutablePointer<Float>, lda: Int,
    b: UnsafeMutablePointer<Float>, ldb: Int
  ) -> Int32 {
    LAPACKE_sgels(
      LAPACK_ROW_MAJOR, CChar(UInt8(ascii: "N")), Int32(m), Int32(n),
      Int32(nrhs), a, Int32(lda), b, Int32(ldb))
  }
}

/// Process-wide OpenBLAS settings.
public enum OpenBLAS {
  /// The number of threads OpenBLAS itself uses inside one call.
  public static var threads: Int {
    get { Int(openblas_get_num_threads()) }
  }
  /// Sets the number of threads OpenBLAS uses inside one call (process-wide).
  public static func setThreads(_ n: Int) {
    precondition(n >= 1, "OpenBLAS needs at least one thread")
    openblas_set_num_threads(Int32(n))
  }
  /// The build configuration string OpenBLAS reports (kernel and threading model).
  public static var configuration: String {
    String(cString: openblas_get_config())
  }
  /// The CPU kernel OpenBLAS selected at start-up.
  public static var coreName: String {
    String(cString: openblas_get_corename())
  }
}
