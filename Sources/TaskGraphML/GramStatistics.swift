import TaskGraphLinalg

/// The sufficient statistics of a block of rows for least squares and ridge: the row
/// count, the column and label means, the centred Gram matrix, the centred cross product
/// and the centred label sum of squares.
///
/// Blocks (e.g. the shards of distributed workers) are combined with the pairwise update of
/// Chan, Golub and LeVeque (1979), which adds `(nₐ·n_b/n)·δδᵀ` for the difference `δ` of
/// the blocks' means instead of forming `XᵀX − nμμᵀ`, so the result keeps the accuracy of
/// centring. Solving the merged statistics gives the same parameters as
/// `ExactSolver.cholesky` on all rows, up to rounding in the order of the sums.
public struct GramStatistics: Sendable, Equatable {
  /// Rows.
  public var count: Int
  /// Column means.
  public var means: [Double]
  /// Label mean.
  public var labelMean: Double
  /// `Σ (x − μ)(x − μ)ᵀ` (the upper triangle is authoritative).
  public var gram: Matrix<Double>
  /// `Σ (x − μ)(y − ȳ)`.
  public var cross: [Double]
  /// `Σ (y − ȳ)²`.
  public var labelSquares: Double

  /// The statistics of explicit parts (e.g. as decoded from a message).
  public init(
    count: Int, means: [Double], labelMean: Double, gram: Matrix<Double>, cross: [Double],
    labelSquares: Double
  ) {
    self.count = count
    self.means = means
    self.labelMean = labelMean
    self.gram = gram
    self.cross = cross
    self.labelSquares = labelSquares
  }

  /// The statistics of the rows of `x` with labels `y` (BLAS `syrk` on centred blocks;
  /// see `ofRows`). With `threads` > 1 the rows are split into that many contiguous ranges,
  /// summed concurrently and merged in range order, so the result is the same from run to
  /// run for a given thread count. With `centred` false the statistics are about the
  /// origin (means 0), for a model without intercept.
  public init<T: BLASScalar>(x: Matrix<T>, y: [Double], threads: Int = 1, centred: Bool = true) {
    precondition(y.count == x.rows, "labels: \(y.count), rows: \(x.rows)")
    precondition(threads >= 1, "threads must be at least 1")
    OpenBLAS.setThreads(1)
    // At least 16 384 rows per thread: below that, starting threads costs more than it saves.
    let parts = max(1, min(threads, x.rows / 16_384))
    let ranges = FusedGradient.splitEvenly(0..<x.rows, parts: parts)
    let partial = concurrentMap(ranges) { Self.ofRows(x, y, $0, centred: centred) }
    var total = partial[0]
    for p in partial.dropFirst() { total.merge(p) }
    // Mirror the upper triangle so the matrix is whole for any reader.
    let d = x.cols
    for i in 0..<d { for j in 0..<i { total.gram[i, j] = total.gram[j, i] } }
    self = total
  }

  /// Adds the rows `other` describes.
  public mutating func merge(_ other: GramStatistics) {
    precondition(other.means.count == means.count, "feature counts differ")
    guard other.count > 0 else { return }
    guard count > 0 else {
      self = other
      return
    }
    let (na, nb) = (Double(count), Double(other.count))
    let n = na + nb
    let f = na * nb / n
    let d = means.count
    let delta = (0..<d).map { other.means[$0] - means[$0] }
    let dy = other.labelMean - labelMean
    gram.withUnsafeMutableBufferPointer { g in
      other.gram.withUnsafeBufferPointer { o in
        for i in 0..<d {
          for j in 0..<d { g[i * d + j] += o[i * d + j] + f * delta[i] * delta[j] }
        }
      }
    }
    for j in 0..<d {
      cross[j] += other.cross[j] + f * delta[j] * dy
      means[j] += delta[j] * nb / n
    }
    labelSquares += other.labelSquares + f * dy * dy
    labelMean += dy * nb / n
    count += other.count
  }

  /// Ridge (least squares with `l2 == 0`) parameters: `(C + n·l2·I) w = c`, `b = ȳ − μ·w`.
  /// Aliased columns (see `solveReportingAliased`) get coefficient 0.
  ///
  /// - Throws: `MLError.Code.singularSystem` if the system is not positive definite.
  public func solve(l2: Double, scales: [Double]? = nil) throws -> Parameters {
    try solveReportingAliased(l2: l2, scales: scales).parameters
  }

  /// The fraction of a column's centred variance that the columns before it must leave
  /// unexplained (`1 − R²` of the column on them) for the column to count as estimable;
  /// below it the column is aliased. Rounding in a Gram matrix of doubles leaves about
  /// 1e-16 relative, so 1e-9 separates exact collinearity (one-hot levels beside the
  /// intercept, duplicated or constant columns) from near-collinearity with room to spare.
  public static let aliasingTolerance = 1e-9

  /// Parameters as `solve`, and the columns found aliased.
  ///
  /// Without a penalty, a column that the columns before it (and the intercept) explain to
  /// within `aliasingTolerance` of its variance is aliased, as R's `lm` reports it: it
  /// gets coefficient 0 and the others are the least-squares solution without it (the
  /// fitted values are those of the full design). Columns are taken in order, so of a set
  /// of collinear columns the last is the one dropped. A positive `l2` makes the system
  /// definite: no column is aliased then.
  ///
  /// - Throws: `MLError.Code.singularSystem` if the penalised system is not positive
  ///   definite (only rounding can do that).
  ///
  /// With `scales` the penalty is on `wⱼ = vⱼ/sⱼ` (see `Regularization.scales`): the
  /// diagonal grows by `n·l2/sⱼ²`.
  public func solveReportingAliased(l2: Double, scales: [Double]? = nil) throws -> (
    parameters: Parameters, aliased: [Int]
  ) {
    precondition(count > 0, "no rows")
    let d = means.count
    if d == 0 { return (Parameters(weights: [], intercept: labelMean), []) }
    // An overflowed sum would reach LAPACK as an "illegal argument" or give a model of NaNs.
    let finite = gram.withUnsafeBufferPointer { $0.allSatisfy(\.isFinite) }
    guard finite, cross.allSatisfy(\.isFinite), labelMean.isFinite else {
      throw MLError(
        code: .nonFinite,
        message: "XᵀX or Xᵀy overflowed: the data hold values too large to square "
          + "(rescale the label or the columns)")
    }
    var a = gram
    for i in 0..<d {
      a[i, i] += Double(count) * (scales.map { l2 / ($0[i] * $0[i]) } ?? l2)
    }
    var w = cross
    let info = a.withUnsafeMutableBufferPointer { ap in
      w.withUnsafeMutableBufferPointer { wp in
        Double.posv(n: d, nrhs: 1, a: ap.baseAddress!, lda: d, b: wp.baseAddress!, ldb: 1)
      }
    }
    // posv leaves the factor U (A = UᵀU) in the upper triangle: U_jj² / A_jj is the share of
    // column j's variance the columns before it leave unexplained.
    var fullRank = info == 0
    if fullRank && l2 == 0 {
      for j in 0..<d where a[j, j] * a[j, j] < Self.aliasingTolerance * gram[j, j] {
        fullRank = false
        break
      }
    }
    if fullRank { return (intercepted(w), []) }
    if l2 > 0 {
      throw MLError(
        code: .singularSystem,
        message: "XᵀX + n·l2·I is not positive definite (l2 too small for the data's scale?)")
    }
    let aliased = aliasedColumns()
    let kept = (0..<d).filter { !aliased.contains($0) }
    var weights = [Double](repeating: 0, count: d)
    if !kept.isEmpty {
      var reduced = Matrix<Double>(rows: kept.count, cols: kept.count)
      for (r, i) in kept.enumerated() {
        for (c, j) in kept.enumerated() { reduced[r, c] = gram[i, j] }
      }
      let solved: [Double]
      do {
        solved = try LAPACK.solvePositiveDefinite(reduced, kept.map { cross[$0] })
      } catch {
        throw MLError(
          code: .singularSystem,
          message: "the columns left after removing aliased ones are still singular",
          cause: error as? LinalgError)
      }
      for (r, j) in kept.enumerated() { weights[j] = solved[r] }
    }
    return (intercepted(weights), aliased.sorted())
  }

  private func intercepted(_ w: [Double]) -> Parameters {
    var b = labelMean
    for j in 0..<means.count { b -= means[j] * w[j] }
    return Parameters(weights: w, intercept: b)
  }

  /// The aliased columns: an in-order Cholesky factorisation of the correlation matrix
  /// that skips every column whose remaining pivot falls below `aliasingTolerance`.
  /// O(d³/3), run only when the fast factorisation found the design rank-deficient.
  func aliasedColumns() -> Set<Int> {
    let d = means.count
    var scale = [Double](repeating: 0, count: d)
    var aliased = Set<Int>()
    for j in 0..<d {
      let v = gram[j, j]
      // A constant column: no variance, or only the rounding of its mean.
      if !(v > 1e-24 * Double(count) * max(means[j] * means[j], 1e-300)) {
        aliased.insert(j)
      } else {
        scale[j] = 1 / v.squareRoot()
      }
    }
    // Row-major lower factor of the kept columns; rows of aliased columns stay unused.
    var l = [Double](repeating: 0, count: d * d)
    var kept: [Int] = []
    l.withUnsafeMutableBufferPointer { lp in
      for j in 0..<d where !aliased.contains(j) {
        var pivot = 1.0
        for k in kept { pivot -= lp[j * d + k] * lp[j * d + k] }
        if pivot < Self.aliasingTolerance {
          aliased.insert(j)
          continue
        }
        let ljj = pivot.squareRoot()
        lp[j * d + j] = ljj
        for i in (j + 1)..<d where !aliased.contains(i) {
          var v = gram[min(i, j), max(i, j)] * scale[i] * scale[j]
          for k in kept { v -= lp[i * d + k] * lp[j * d + k] }
          lp[i * d + j] = v / ljj
        }
        kept.append(j)
      }
    }
    return aliased
  }

  /// The mean squared-loss term `(1/n) Σ ½ rᵢ²` at `p`, from the statistics alone (exact for
  /// the least-squares intercept `b = ȳ − μ·w`, which `solve` returns).
  public func meanHalfSquaredResidual(_ p: Parameters) -> Double {
    let d = means.count
    var cw = [Double](repeating: 0, count: d)
    gram.withUnsafeBufferPointer { g in
      for i in 0..<d {
        var s = 0.0
        // Symmetric use of the upper triangle.
        for j in 0..<d { s += (i <= j ? g[i * d + j] : g[j * d + i]) * p.weights[j] }
        cw[i] = s
      }
    }
    var wcw = 0.0
    var wc = 0.0
    for i in 0..<d {
      wcw += p.weights[i] * cw[i]
      wc += p.weights[i] * cross[i]
    }
    return max(0, labelSquares - 2 * wc + wcw) / (2 * Double(count))
  }
}
