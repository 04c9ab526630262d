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
  ///
  /// - Throws: `MLError.Code.singularSystem` if the system is not positive definite.
  public func solve(l2: Double) throws -> Parameters {
    precondition(count > 0, "no rows")
    let d = means.count
    if d == 0 { return Parameters(weights: [], intercept: labelMean) }
    var a = gram
    for i in 0..<d { a[i, i] += Double(count) * l2 }
    let w: [Double]
    do {
      w = try LAPACK.solvePositiveDefinite(a, cross)
    } catch let error as LinalgError {
      throw MLError(
        code: .singularSystem,
        message: "XᵀX + n·l2·I is not positive definite (collinear features? try l2 > 0)",
        cause: error)
    }
    var b = labelMean
    for j in 0..<d { b -= means[j] * w[j] }
    return Parameters(weights: w, intercept: b)
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
