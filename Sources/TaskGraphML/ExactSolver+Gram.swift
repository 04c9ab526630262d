import TaskGraphLinalg

extension ExactSolver {
  /// The centred Gram matrix `(X − 1μᵀ)ᵀ(X − 1μᵀ)` (upper triangle, Double) and
  /// `(X − 1μᵀ)ᵀ(y − ȳ)`, without copying `X`.
  ///
  /// Rows are centred a block at a time into a small buffer (about 4 MiB) and folded in
  /// with a BLAS rank-k update (`syrk`, half the flops of `gemm`), so memory stays at
  /// O(block · d + d²) beyond `X` and the centring keeps the sums free of the cancellation
  /// that `XᵀX − n μμᵀ` would suffer. With Float storage each block's update is added into
  /// Double accumulators. OpenBLAS runs with `threads` threads inside each update.
  /// O(n·d²) time.
  static func centredGram<T: BLASScalar>(
    x: Matrix<T>, y: [Double], means: [Double], yMean: Double, threads: Int
  ) -> (gram: Matrix<Double>, xty: [Double]) {
    let (n, d) = (x.rows, x.cols)
    let blockRows = max(64, min(n, (4 << 20) / max(1, d * MemoryLayout<T>.stride)))
    var buffer = [T](repeating: 0, count: blockRows * d)
    var yBlock = [T](repeating: 0, count: blockRows)
    var gramT = [T](repeating: 0, count: d * d)
    var xtyT = [T](repeating: 0, count: d)
    var gram = Matrix<Double>(rows: d, cols: d)
    var xty = [Double](repeating: 0, count: d)
    let m = means.map { T($0) }
    let accumulateInT = T.self == Double.self
    OpenBLAS.setThreads(max(1, threads))
    defer { OpenBLAS.setThreads(1) }
    x.withUnsafeBufferPointer { xp in
      var start = 0
      while start < n {
        let rows = min(blockRows, n - start)
        buffer.withUnsafeMutableBufferPointer { bp in
          m.withUnsafeBufferPointer { mp in
            // Concrete element types: no generic witness calls in the copy loop.
            let src = UnsafeRawPointer(xp.baseAddress! + start * d)
            let dst = UnsafeMutableRawPointer(bp.baseAddress!)
            let mean = UnsafeRawPointer(mp.baseAddress!)
            if T.self == Double.self {
              centre(
                src.assumingMemoryBound(to: Double.self), dst.assumingMemoryBound(to: Double.self),
                mean.assumingMemoryBound(to: Double.self), rows, d)
            } else {
              centre(
                src.assumingMemoryBound(to: Float.self), dst.assumingMemoryBound(to: Float.self),
                mean.assumingMemoryBound(to: Float.self), rows, d)
            }
          }
        }
        for i in 0..<rows { yBlock[i] = T(y[start + i] - yMean) }
        let beta: T = accumulateInT && start > 0 ? 1 : 0
        buffer.withUnsafeBufferPointer { bp in
          gramT.withUnsafeMutableBufferPointer { gp in
            T.syrkTransposed(
              n: d, k: rows, alpha: 1, a: bp.baseAddress!, lda: d, beta: beta,
              c: gp.baseAddress!, ldc: d)
          }
          yBlock.withUnsafeBufferPointer { yp in
            xtyT.withUnsafeMutableBufferPointer { tp in
              T.gemv(
                trans: true, m: rows, n: d, alpha: 1, a: bp.baseAddress!, lda: d,
                x: yp.baseAddress!, beta: beta, y: tp.baseAddress!)
            }
          }
        }
        if !accumulateInT {
          for i in 0..<d {
            for j in i..<d { gram[i, j] += Double(gramT[i * d + j]) }
            xty[i] += Double(xtyT[i])
          }
        }
        start += rows
      }
    }
    if accumulateInT {
      for i in 0..<d {
        for j in i..<d { gram[i, j] = Double(gramT[i * d + j]) }
        xty[i] = Double(xtyT[i])
      }
    }
    // Mirror the upper triangle so the matrix is whole for any reader.
    for i in 0..<d { for j in 0..<i { gram[i, j] = gram[j, i] } }
    return (gram, xty)
  }

  static func centre<S: BinaryFloatingPoint>(
    _ src: UnsafePointer<S>, _ dst: UnsafeMutablePointer<S>, _ mean: UnsafePointer<S>,
    _ rows: Int, _ d: Int
  ) {
    for i in 0..<rows {
      let r = i * d
      for j in 0..<d { dst[r + j] = src[r + j] - mean[j] }
    }
  }
}
