import TaskGraphLinalg

/// Direct solvers for linear least squares and ridge regression (squared loss, no L1).
///
/// Both minimise `(1/n) Σ ½(xᵢ·w + b − yᵢ)² + (l2/2)‖w‖²`, whose normal equations are
/// `(XᵀX + n·l2·I) w = Xᵀy` for centred data, with `b = ȳ − x̄·w`.
public enum ExactSolver {
  /// Ridge (or, with `l2 == 0`, ordinary least squares) by Cholesky on the normal equations.
  ///
  /// The features are centred a block of rows at a time (so the intercept stays
  /// unpenalised and the Gram matrix is formed without cancellation, with no copy of `X`),
  /// the Gram matrix is built by BLAS `syrk` updates (`GramStatistics`, on `threads`
  /// threads) and the d×d system is solved in Double by LAPACK `posv`. O(n·d² + d³) time,
  /// O(threads · (d² + block·d)) extra memory.
  ///
  /// Without a penalty, aliased (collinear) columns get coefficient 0 (see
  /// `GramStatistics.solveReportingAliased`).
  ///
  /// - Throws: `MLError.Code.singularSystem` if `XᵀX + n·l2·I` with `l2 > 0` is not positive
  ///   definite (only rounding can make it so).
  public static func cholesky<T: BLASScalar>(
    x: Matrix<T>, y: [Double], l2: Double = 0, fitIntercept: Bool = true, threads: Int = 1
  ) throws -> Parameters {
    precondition(y.count == x.rows, "labels: \(y.count), rows: \(x.rows)")
    precondition(x.rows > 0, "no rows")
    precondition(l2 >= 0, "l2 must be non-negative")
    let stats = GramStatistics(x: x, y: y, threads: threads, centred: fitIntercept)
    return try stats.solve(l2: l2)
  }

  /// Least squares by Householder QR (LAPACK `gels`) on `[X 1]`, in the precision `T`.
  ///
  /// With `l2 > 0` the rows `√(n·l2)·eⱼ` (label 0, no intercept entry) are appended, which
  /// gives ridge without squaring the condition number (with `scales`, `√(n·l2)/sⱼ·eⱼ`:
  /// the penalty of `Regularization.scales`). O(n·d²) time, O(n·d) memory.
  ///
  /// - Throws: `MLError.Code.singularSystem` if the design does not have full column rank.
  public static func qr<T: BLASScalar>(
    x: Matrix<T>, y: [Double], l2: Double = 0, scales: [Double]? = nil, fitIntercept: Bool = true
  ) throws -> Parameters {
    precondition(y.count == x.rows, "labels: \(y.count), rows: \(x.rows)")
    precondition(l2 >= 0, "l2 must be non-negative")
    let (n, d) = (x.rows, x.cols)
    let cols = d + (fitIntercept ? 1 : 0)
    let extra = l2 > 0 ? d : 0
    precondition(n + extra >= cols, "QR needs at least as many rows as unknowns")
    var storage = [T]()
    storage.reserveCapacity((n + extra) * cols)
    x.withUnsafeBufferPointer { p in
      for i in 0..<n {
        storage.append(contentsOf: p[(i * d)..<((i + 1) * d)])
        if fitIntercept { storage.append(1) }
      }
    }
    var labels = y.map { T($0) }
    if extra > 0 {
      let root = (Double(n) * l2).squareRoot()
      for j in 0..<d {
        let s = T(scales.map { root / $0[j] } ?? root)
        for k in 0..<cols { storage.append(k == j ? s : 0) }
        labels.append(0)
      }
    }
    let a = Matrix<T>(rows: n + extra, cols: cols, storage: storage)
    let solution: [T]
    do {
      solution = try LAPACK.leastSquares(a, labels)
    } catch let error as LinalgError {
      throw MLError(
        code: .singularSystem, message: "the design matrix does not have full column rank",
        cause: error)
    }
    let w = solution.prefix(d).map { Double($0) }
    return Parameters(weights: w, intercept: fitIntercept ? Double(solution[d]) : 0)
  }

  static func addRows(
    _ p: UnsafePointer<Double>, _ n: Int, _ d: Int, _ s: UnsafeMutablePointer<Double>
  ) {
    for i in 0..<n {
      let row = p + i * d
      for j in 0..<d { s[j] += row[j] }
    }
  }

  static func addRows(
    _ p: UnsafePointer<Float>, _ n: Int, _ d: Int, _ s: UnsafeMutablePointer<Double>
  ) {
    for i in 0..<n {
      let row = p + i * d
      for j in 0..<d { s[j] += Double(row[j]) }
    }
  }
}
