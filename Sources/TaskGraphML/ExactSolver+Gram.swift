import TaskGraphLinalg

extension GramStatistics {
  /// The statistics of rows `range` of `x`, one block of rows (about 4 MiB) at a time: the
  /// block's means are summed, its rows centred on them into a small buffer while the block
  /// is still in cache, folded in with a BLAS rank-k update (`syrk`, half the flops of
  /// `gemm`), and the block merged into the running statistics (Chan et al.). `X` is read
  /// from memory once and never copied; the centring keeps the sums free of the
  /// cancellation that `XᵀX − n μμᵀ` would suffer. With Float storage the rows are widened
  /// to Double as they are centred, and the update formed in Double (Float sums lose exact
  /// collinearity to rounding, and the aliasing test with it). With `centred` false the statistics are about
  /// the origin (means 0: `XᵀX`, `Xᵀy`, `Σy²`), for a model without intercept.
  /// Single-threaded BLAS; O(|range|·d²) time, O(block · d + d²) memory.
  static func ofRows<T: BLASScalar>(
    _ x: Matrix<T>, _ y: [Double], _ range: Range<Int>, centred: Bool
  ) -> GramStatistics {
    let d = x.cols
    let blockRows = max(64, min(range.count, (4 << 20) / max(1, d * MemoryLayout<Double>.stride)))
    var buffer = [Double](repeating: 0, count: blockRows * d)
    var yBlock = [Double](repeating: 0, count: blockRows)
    var sums = [Double](repeating: 0, count: d)
    var total = GramStatistics(
      count: 0, means: sums, labelMean: 0, gram: Matrix(rows: d, cols: d), cross: sums,
      labelSquares: 0)
    x.withUnsafeBufferPointer { xp in
      var start = range.lowerBound
      while start < range.upperBound {
        let rows = min(blockRows, range.upperBound - start)
        let src = UnsafeRawPointer(xp.baseAddress! + start * d)
        // The block's means (zero about the origin), summed in Double.
        for j in 0..<d { sums[j] = 0 }
        var yMean = 0.0
        if centred {
          sums.withUnsafeMutableBufferPointer { s in
            if T.self == Double.self {
              ExactSolver.addRows(src.assumingMemoryBound(to: Double.self), rows, d, s.baseAddress!)
            } else {
              ExactSolver.addRows(src.assumingMemoryBound(to: Float.self), rows, d, s.baseAddress!)
            }
          }
          for j in 0..<d { sums[j] /= Double(rows) }
          for i in start..<(start + rows) { yMean += y[i] }
          yMean /= Double(rows)
        }
        buffer.withUnsafeMutableBufferPointer { bp in
          sums.withUnsafeBufferPointer { mp in
            // Concrete element types: no generic witness calls in the copy loop.
            if T.self == Double.self {
              ExactSolver.centre(
                src.assumingMemoryBound(to: Double.self), bp.baseAddress!, mp.baseAddress!, rows,
                d)
            } else {
              ExactSolver.centre(
                src.assumingMemoryBound(to: Float.self), bp.baseAddress!, mp.baseAddress!, rows,
                d)
            }
          }
        }
        var labelSquares = 0.0
        for i in 0..<rows {
          let r = y[start + i] - yMean
          yBlock[i] = r
          labelSquares += r * r
        }
        var gram = Matrix<Double>(rows: d, cols: d)
        var cross = [Double](repeating: 0, count: d)
        buffer.withUnsafeBufferPointer { bp in
          gram.withUnsafeMutableBufferPointer { gp in
            Double.syrkTransposed(
              n: d, k: rows, alpha: 1, a: bp.baseAddress!, lda: d, beta: 0, c: gp.baseAddress!,
              ldc: d)
          }
          yBlock.withUnsafeBufferPointer { yp in
            cross.withUnsafeMutableBufferPointer { tp in
              Double.gemv(
                trans: true, m: rows, n: d, alpha: 1, a: bp.baseAddress!, lda: d,
                x: yp.baseAddress!, beta: 0, y: tp.baseAddress!)
            }
          }
        }
        // The upper triangle is what syrk wrote; merges keep it authoritative.
        total.merge(
          GramStatistics(
            count: rows, means: sums, labelMean: yMean, gram: gram, cross: cross,
            labelSquares: labelSquares))
        start += rows
      }
    }
    return total
  }
}

extension ExactSolver {
  /// `dst = src − mean` row by row, in Double whatever the storage: a Float block's products
  /// are then formed in Double too, so exact collinearity (one-hot levels beside the
  /// intercept) survives into the Gram matrix and is found as aliasing.
  static func centre<S: BinaryFloatingPoint>(
    _ src: UnsafePointer<S>, _ dst: UnsafeMutablePointer<Double>, _ mean: UnsafePointer<Double>,
    _ rows: Int, _ d: Int
  ) {
    for i in 0..<rows {
      let r = i * d
      for j in 0..<d { dst[r + j] = Double(src[r + j]) - mean[j] }
    }
  }
}
