import COpenBLAS
import CTaskGraphKernels

extension FusedGradient {
  /// Loss and gradient sums in two passes over `x`, the gradient block of columns by block
  /// of columns, each block handed to `onBlock` as soon as it is done: a worker sends it
  /// while it computes the next, so sending a gradient of megabytes overlaps the work.
  ///
  /// The first pass computes the margins `z = X w` and each row's loss and derivative `r`;
  /// the second, for each block of columns `c`, the block's gradient `X[:, c]ᵀ r`. Each
  /// pass reads `x` once: the first four rows at a time (one load of `w` serves four rows),
  /// the second in slices of columns whose gradient stays in cache while the rows stream
  /// past. Reading `x` twice but nothing else much, it runs faster than the row kernel on
  /// wide rows (23 ms against 31 ms for 50 × 1,000,000 here: `taskgraph bench gradient`).
  /// The sums are those of
  /// ``compute(x:y:weights:intercept:loss:rows:threads:blockRows:kernel:instructionSet:)``
  /// up to rounding, in their own summation order: bit-identical run to run for a given
  /// `threads` and instruction set. `Float` storage uses BLAS for both passes.
  ///
  /// - Parameters:
  ///   - blockColumns: columns per block (the last may be shorter); at least 1.
  ///   - threads: threads for each pass: rows are split in the first, blocks in the second.
  ///   - instructionSet: the kernels' instruction set for `Double` storage (`Float` storage
  ///     uses BLAS).
  ///   - onBlock: called once per block, with the block's columns and gradient, from the
  ///     thread that computed it (concurrently when `threads` > 1).
  /// - Returns: the loss, intercept and row sums; the gradient is left empty (the blocks
  ///   carry it).
  public static func computeInColumnBlocks<T: BLASScalar>(
    x: Matrix<T>, y: [Double], weights: [Double], intercept: Double, loss: RowLoss,
    blockColumns: Int, threads: Int = 1, instructionSet: InstructionSet = .best,
    onBlock: @Sendable (_ columns: Range<Int>, _ gradient: [Double]) -> Void
  ) -> GradientSums {
    weights.withUnsafeBytes { w in
      computeInColumnBlocks(
        x: x, y: y, weights: UnalignedDoubles(w), intercept: intercept, loss: loss,
        blockColumns: blockColumns, threads: threads, instructionSet: instructionSet,
        onBlock: onBlock)
    }
  }

  /// The same with the weights read in place at any alignment, such as from the buffer a
  /// message was received into: the same sums, bit for bit, without copying them first.
  public static func computeInColumnBlocks<T: BLASScalar>(
    x: Matrix<T>, y: [Double], weights: UnalignedDoubles, intercept: Double, loss: RowLoss,
    blockColumns: Int, threads: Int = 1, instructionSet: InstructionSet = .best,
    onBlock: @Sendable (_ columns: Range<Int>, _ gradient: [Double]) -> Void
  ) -> GradientSums {
    precondition(y.count == x.rows, "labels: \(y.count), rows: \(x.rows)")
    let z = margins(x: x, weights: weights, threads: threads, instructionSet: instructionSet)
    let (sums, r) = z.withUnsafeBytes { z in
      residuals(margins: UnalignedDoubles(z), intercept: intercept, labels: y, loss: loss)
    }
    gradientInColumnBlocks(
      x: x, residuals: r, blockColumns: blockColumns, threads: threads,
      instructionSet: instructionSet, onBlock: onBlock)
    return sums
  }

  /// The loss, intercept and row sums at margins `z + b`, row by row in order, and each
  /// row's derivative `r`: what lies between the two passes of
  /// ``computeInColumnBlocks(x:y:weights:intercept:loss:blockColumns:threads:instructionSet:onBlock:)``.
  /// The margins may be read in place at any alignment (a received message's bytes).
  public static func residuals(
    margins z: UnalignedDoubles, intercept b: Double, labels y: [Double], loss: RowLoss
  ) -> (sums: GradientSums, residuals: [Double]) {
    precondition(z.count == y.count, "margins: \(z.count), labels: \(y.count)")
    var sums = GradientSums(cols: 0)
    sums.rows = y.count
    let r = [Double](unsafeUninitializedCapacity: y.count) { r, count in
      for i in 0..<y.count {
        let (l, derivative) = loss.lossAndDerivative(margin: z[i] + b, label: y[i])
        sums.loss += l
        sums.intercept += derivative
        r[i] = derivative
      }
      count = y.count
    }
    return (sums, r)
  }

  /// The margins `X w` (no intercept), the first pass of
  /// ``computeInColumnBlocks(x:y:weights:intercept:loss:blockColumns:threads:instructionSet:onBlock:)``:
  /// rows split into `threads` ranges, four rows at a time. With `Float` storage the
  /// product runs in single precision (BLAS) and its values are widened.
  public static func margins<T: BLASScalar>(
    x: Matrix<T>, weights: UnalignedDoubles, threads: Int = 1,
    instructionSet: InstructionSet = .best
  ) -> [Double] {
    precondition(weights.count == x.cols, "weights: \(weights.count), columns: \(x.cols)")
    precondition(threads >= 1, "threads must be ≥ 1")
    if openblas_get_num_threads() != 1 { openblas_set_num_threads(1) }
    let m = x.rows
    let d = x.cols
    // Float storage multiplies by Float weights; Double storage uses `weights` as they are.
    let w: [T] = T.self == Double.self ? [] : (0..<d).map { T(weights[$0]) }
    let rowParts = splitEvenly(0..<m, parts: max(1, min(threads, m)))
    let parts: [[Double]] = concurrentMap(rowParts) { rows in
      guard !rows.isEmpty, d > 0 else { return [Double](repeating: 0, count: rows.count) }
      return [Double](unsafeUninitializedCapacity: rows.count) { z, count in
        x.withUnsafeBufferPointer { xp in
          if T.self == Double.self {
            xp.withMemoryRebound(to: Double.self) { xd in
              tg_margins_f64(
                instructionSet.rawValue, xd.baseAddress! + rows.lowerBound * d, rows.count,
                d, weights.base, z.baseAddress!)
            }
          } else {
            let single = [T](unsafeUninitializedCapacity: rows.count) { zt, n in
              w.withUnsafeBufferPointer { wp in
                T.gemv(
                  trans: false, m: rows.count, n: d, alpha: 1,
                  a: xp.baseAddress! + rows.lowerBound * d, lda: d, x: wp.baseAddress!,
                  beta: 0, y: zt.baseAddress!)
              }
              n = rows.count
            }
            for i in 0..<rows.count { z[i] = Double(single[i]) }
          }
        }
        count = rows.count
      }
    }
    return parts.count == 1 ? parts[0] : Array(parts.joined())
  }

  /// The gradient `Xᵀ r` block of `blockColumns` columns by block, the second pass of
  /// ``computeInColumnBlocks(x:y:weights:intercept:loss:blockColumns:threads:instructionSet:onBlock:)``:
  /// each block handed to `onBlock` as soon as it is done, from the thread that computed
  /// it; each thread takes a contiguous run of blocks. With `Float` storage the residuals
  /// are narrowed to `Float` and the products run in single precision (BLAS).
  public static func gradientInColumnBlocks<T: BLASScalar>(
    x: Matrix<T>, residuals: [Double], blockColumns: Int, threads: Int = 1,
    instructionSet: InstructionSet = .best,
    onBlock: @Sendable (_ columns: Range<Int>, _ gradient: [Double]) -> Void
  ) {
    precondition(residuals.count == x.rows, "residuals: \(residuals.count), rows: \(x.rows)")
    precondition(blockColumns >= 1 && threads >= 1, "blockColumns and threads must be ≥ 1")
    if openblas_get_num_threads() != 1 { openblas_set_num_threads(1) }
    let d = x.cols
    let r: [T] = T.self == Double.self ? residuals as! [T] : residuals.map { T($0) }
    let blocks = (d + blockColumns - 1) / blockColumns
    _ = concurrentMap(splitEvenly(0..<blocks, parts: max(1, min(threads, blocks)))) { run in
      for b in run {
        let columns = (b * blockColumns)..<min(d, (b + 1) * blockColumns)
        onBlock(
          columns,
          blockGradient(x: x, residuals: r, columns: columns, instructionSet: instructionSet))
      }
      return 0
    }
  }

  /// `X[:, columns]ᵀ r` as doubles.
  private static func blockGradient<T: BLASScalar>(
    x: Matrix<T>, residuals: [T], columns: Range<Int>, instructionSet: InstructionSet
  ) -> [Double] {
    let m = x.rows
    let d = x.cols
    let n = columns.count
    guard m > 0, n > 0 else { return [Double](repeating: 0, count: n) }
    if T.self == Double.self {
      return [Double](unsafeUninitializedCapacity: n) { g, count in
        x.withUnsafeBufferPointer { xp in
          residuals.withUnsafeBufferPointer { rp in
            xp.withMemoryRebound(to: Double.self) { xd in
              rp.withMemoryRebound(to: Double.self) { rd in
                tg_column_gradient_f64(
                  instructionSet.rawValue, xd.baseAddress! + columns.lowerBound, m, n, d,
                  rd.baseAddress!, g.baseAddress!)
              }
            }
          }
        }
        count = n
      }
    }
    let block = [T](unsafeUninitializedCapacity: n) { g, count in
      x.withUnsafeBufferPointer { xp in
        residuals.withUnsafeBufferPointer { rp in
          T.gemv(
            trans: true, m: m, n: n, alpha: 1, a: xp.baseAddress! + columns.lowerBound, lda: d,
            x: rp.baseAddress!, beta: 0, y: g.baseAddress!)
        }
      }
      count = n
    }
    return block.map { Double($0) }
  }
}

/// `count` doubles (little-endian IEEE 754) from `base`, at any alignment: weights read in
/// place from bytes that are not an array of doubles, such as a received message's. The
/// kernels read them with unaligned loads only. The caller keeps the bytes alive and
/// unchanged while a kernel reads them.
public struct UnalignedDoubles: @unchecked Sendable {
  /// The first value's first byte; nil when there are none.
  public let base: UnsafeRawPointer?
  /// The number of values.
  public let count: Int

  /// The doubles in `bytes`, whose count is a multiple of 8.
  public init(_ bytes: UnsafeRawBufferPointer) {
    precondition(bytes.count % 8 == 0, "\(bytes.count) bytes are not whole doubles")
    base = bytes.baseAddress
    count = bytes.count / 8
  }

  /// The value at `index`.
  public subscript(index: Int) -> Double {
    precondition(index >= 0 && index < count, "index \(index) of \(count)")
    return base!.loadUnaligned(fromByteOffset: 8 * index, as: Double.self)
  }
}
