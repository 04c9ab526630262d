import COpenBLAS
import CTaskGraphKernels
import Dispatch
import Foundation

/// The per-row loss a fused gradient pass evaluates.
public enum RowLoss: String, Sendable, Codable, CaseIterable {
  /// `½ (z − y)²`, residual `z − y`.
  case squared
  /// Binary logistic loss for `y ∈ {0, 1}`: `log(1 + eᶻ) − y z`, residual `σ(z) − y`.
  case logistic

  /// The loss of one row and its derivative with respect to the margin `z`.
  ///
  /// The logistic form is evaluated as `max(z, 0) − y z + log1p(e^(−|z|))`, which neither
  /// overflows nor loses precision for `|z|` up to 1e4 and beyond.
  @inlinable
  public func lossAndDerivative(margin z: Double, label y: Double) -> (
    loss: Double, derivative: Double
  ) {
    switch self {
    case .squared:
      let r = z - y
      return (0.5 * r * r, r)
    case .logistic:
      let a = abs(z)
      let e = exp(-a)
      let loss = max(z, 0) - y * z + log1p(e)
      let sigma = z >= 0 ? 1 / (1 + e) : e / (1 + e)
      return (loss, sigma - y)
    }
  }
}

/// Sums over a set of rows produced by one gradient pass.
///
/// Sums, not means, so that partial results of shards add up exactly to the result over
/// all rows; the caller divides by `rows`.
public struct GradientSums: Sendable, Equatable, Codable {
  /// Σ loss(zᵢ, yᵢ).
  public var loss: Double
  /// Σ rᵢ xᵢ, one entry per column.
  public var gradient: [Double]
  /// Σ rᵢ, the derivative with respect to the intercept.
  public var intercept: Double
  /// Number of rows summed.
  public var rows: Int

  /// Zero sums for `cols` features.
  public init(cols: Int) {
    self.loss = 0
    self.gradient = [Double](repeating: 0, count: cols)
    self.intercept = 0
    self.rows = 0
  }

  public init(loss: Double, gradient: [Double], intercept: Double, rows: Int) {
    self.loss = loss
    self.gradient = gradient
    self.intercept = intercept
    self.rows = rows
  }

  /// Adds `other` into `self`, element by element.
  public mutating func add(_ other: GradientSums) {
    precondition(other.gradient.count == gradient.count, "gradient lengths differ")
    loss += other.loss
    intercept += other.intercept
    rows += other.rows
    for j in gradient.indices { gradient[j] += other.gradient[j] }
  }

  /// The sums of `parts` added in order, `((p₀ + p₁) + p₂) + …`: bit for bit what adding
  /// each into the first with ``add(_:)`` gives, in one pass that writes a new gradient
  /// (adding into the first part's gradient would copy it first while anything else holds
  /// it).
  public static func sum(_ parts: [GradientSums]) -> GradientSums {
    precondition(!parts.isEmpty, "nothing to sum")
    guard parts.count > 1 else { return parts[0] }
    let d = parts[0].gradient.count
    precondition(parts.allSatisfy { $0.gradient.count == d }, "gradient lengths differ")
    var total = GradientSums(
      loss: parts[0].loss, gradient: [], intercept: parts[0].intercept, rows: parts[0].rows)
    for p in parts.dropFirst() {
      total.loss += p.loss
      total.intercept += p.intercept
      total.rows += p.rows
    }
    total.gradient = [Double](unsafeUninitializedCapacity: d) { g, count in
      parts[0].gradient.withUnsafeBufferPointer { first in
        parts[1].gradient.withUnsafeBufferPointer { second in
          for j in 0..<d { g[j] = first[j] + second[j] }
        }
      }
      for p in parts.dropFirst(2) {
        p.gradient.withUnsafeBufferPointer { next in
          for j in 0..<d { g[j] += next[j] }
        }
      }
      count = d
    }
    return total
  }
}

/// Loss and gradient of a linear model over a dense matrix in one pass over memory.
///
/// For each block of rows small enough to stay in cache, the kernel computes the margins
/// `z = X_b w + b` (gemv), the per-row loss and residual `r`, and accumulates `X_bᵀ r`
/// (transposed gemv) while `X_b` is still cached, so `X` streams from memory once per
/// pass instead of twice. Rows are split into `threads` contiguous ranges, each summed by
/// its own thread, and the partial sums are added in range order: for a given thread
/// count the result is bit-identical from run to run.
///
/// With `Float` storage the block products run in single precision and every sum across
/// blocks, rows and threads is kept in `Double`.
///
/// The kernel runs OpenBLAS single-threaded inside each block (it does its own threading)
/// and sets OpenBLAS to one thread for that purpose.
///
/// Complexity: O(rows · cols) time, O(threads · (blockRows + cols)) extra memory.
public enum FusedGradient {
  /// How a block of rows is processed.
  public enum Kernel: String, Sendable, Codable, CaseIterable {
    /// Rows a few at a time with AVX-512 or AVX2/FMA (portable C elsewhere): each row is
    /// read from memory once and reused from L1 for the gradient update. The default.
    case rowGroups
    /// Blocks of rows through two OpenBLAS gemv calls while the block is in L2.
    case blasBlocks
  }

  /// The instruction set of the `rowGroups` kernel. Each gives the same sums up to rounding,
  /// in its own summation order: for a given set the result is bit-identical run to run.
  public enum InstructionSet: Int32, Sendable, Codable, CaseIterable, Comparable {
    /// Plain C loops.
    case portable = 0
    /// 256-bit AVX2 with FMA.
    case avx2 = 1
    /// 512-bit AVX-512F (Float storage uses the AVX2 code).
    case avx512 = 2

    /// The best set this processor supports.
    public static let best = InstructionSet(rawValue: tg_kernels_best_isa()) ?? .portable

    /// The sets this processor supports, `portable` first.
    public static var supported: [InstructionSet] { allCases.filter { $0 <= best } }

    /// The set `compute` uses by default for rows of `cols` values of `T`: `best`, except
    /// that Double rows go to the AVX2 code on a processor with AVX-512. The AVX2 double
    /// kernel streams X one row (or four narrow rows) at a time behind a software prefetch
    /// cursor and ran within 1.13–1.28× of the read floor; the AVX-512 one, four rows
    /// interleaved, ran 1.5–3× (1,000,000 rows, one thread, on an AMD EPYC with AVX-512: at
    /// 100 columns 27 ms against 48–76 ms, the floor 24 ms; at 96 columns 1.17× against
    /// 1.49×). The AVX-512 kernel stays available with an explicit instruction set. The
    /// choice depends on the processor and the element type only, so a given problem is
    /// summed the same way on every run.
    public static func preferred<T: BLASScalar>(cols: Int, scalar: T.Type) -> InstructionSet {
      if best == .avx512 && T.self == Double.self { return .avx2 }
      return best
    }

    public static func < (a: Self, b: Self) -> Bool { a.rawValue < b.rawValue }
  }

  /// The number of rows per block for a matrix with `cols` columns: about 128 KiB of rows.
  public static func defaultBlockRows<T: BLASScalar>(cols: Int, scalar: T.Type) -> Int {
    let bytesPerRow = max(1, cols * MemoryLayout<T>.stride)
    return min(4096, max(4, (128 * 1024) / bytesPerRow))
  }

  /// Computes loss and gradient sums over `rows` of `x` (all rows by default).
  ///
  /// - Parameters:
  ///   - x: the features, `n × d`.
  ///   - y: the labels, `n` of them (0/1 for logistic).
  ///   - weights: the coefficients, `d` of them.
  ///   - intercept: the intercept `b`.
  ///   - loss: the per-row loss.
  ///   - rows: the rows to sum over; defaults to all.
  ///   - threads: worker threads (≥ 1).
  ///   - blockRows: rows per cache block; defaults to `defaultBlockRows`.
  ///   - kernel: how a block of rows is processed.
  ///   - instructionSet: the `rowGroups` kernel's instruction set; by default
  ///     `InstructionSet.preferred(cols:scalar:)`.
  public static func compute<T: BLASScalar>(
    x: Matrix<T>, y: [Double], weights: [Double], intercept: Double, loss: RowLoss,
    rows: Range<Int>? = nil, threads: Int = 1, blockRows: Int? = nil,
    kernel: Kernel = .rowGroups, instructionSet: InstructionSet? = nil
  ) -> GradientSums {
    let instructionSet = instructionSet ?? .preferred(cols: x.cols, scalar: T.self)
    precondition(y.count == x.rows, "labels: \(y.count), rows: \(x.rows)")
    precondition(weights.count == x.cols, "weights: \(weights.count), columns: \(x.cols)")
    precondition(threads >= 1, "threads must be at least 1")
    let range = rows ?? 0..<x.rows
    precondition(range.lowerBound >= 0 && range.upperBound <= x.rows, "row range out of bounds")
    if openblas_get_num_threads() != 1 { openblas_set_num_threads(1) }
    let block = blockRows ?? defaultBlockRows(cols: x.cols, scalar: T.self)
    let parts = max(1, min(threads, range.count / max(1, block)))
    if parts == 1 {
      return computeRange(
        x: x, y: y, weights: weights, intercept: intercept, loss: loss, range: range, block: block,
        kernel: kernel, isa: instructionSet)
    }
    let results = concurrentMap(splitEvenly(range, parts: parts)) { chunk in
      computeRange(
        x: x, y: y, weights: weights, intercept: intercept, loss: loss, range: chunk,
        block: block, kernel: kernel, isa: instructionSet)
    }
    var total = GradientSums(cols: x.cols)
    for r in results { total.add(r) }
    return total
  }

  /// Splits `range` into `parts` contiguous ranges whose sizes differ by at most one.
  public static func splitEvenly(_ range: Range<Int>, parts: Int) -> [Range<Int>] {
    let n = range.count
    return (0..<parts).map { p in
      let lo = range.lowerBound + n * p / parts
      let hi = range.lowerBound + n * (p + 1) / parts
      return lo..<hi
    }
  }

  static func computeRange<T: BLASScalar>(
    x: Matrix<T>, y: [Double], weights: [Double], intercept: Double, loss: RowLoss,
    range: Range<Int>, block: Int, kernel: Kernel, isa: InstructionSet
  ) -> GradientSums {
    let d = x.cols
    var sums = GradientSums(cols: d)
    sums.rows = range.count
    if range.isEmpty || d == 0 {
      // Without features the margin is the intercept alone.
      for i in range {
        let (l, r) = loss.lossAndDerivative(margin: intercept, label: y[i])
        sums.loss += l
        sums.intercept += r
      }
      return sums
    }
    if kernel == .rowGroups {
      return rowGroupRange(
        x: x, y: y, weights: weights, intercept: intercept, loss: loss, range: range, block: block,
        isa: isa)
    }
    let w = weights.map { T($0) }
    var z = [T](repeating: 0, count: min(block, range.count))
    var gBlock = [T](repeating: 0, count: d)
    let direct = T.self == Double.self
    var lossSum = 0.0
    var rSum = 0.0
    x.withUnsafeBufferPointer { xp in
      w.withUnsafeBufferPointer { wp in
        z.withUnsafeMutableBufferPointer { zp in
          gBlock.withUnsafeMutableBufferPointer { gbp in
            sums.gradient.withUnsafeMutableBufferPointer { gp in
              y.withUnsafeBufferPointer { yp in
                var start = range.lowerBound
                while start < range.upperBound {
                  let m = min(block, range.upperBound - start)
                  let a = xp.baseAddress! + start * d
                  T.gemv(
                    trans: false, m: m, n: d, alpha: 1, a: a, lda: d, x: wp.baseAddress!, beta: 0,
                    y: zp.baseAddress!)
                  for i in 0..<m {
                    let (l, r) = loss.lossAndDerivative(
                      margin: Double(zp[i]) + intercept, label: yp[start + i])
                    lossSum += l
                    rSum += r
                    zp[i] = T(r)
                  }
                  if direct {
                    // Double storage: accumulate straight into the Double gradient.
                    gp.baseAddress!.withMemoryRebound(to: T.self, capacity: d) { g in
                      T.gemv(
                        trans: true, m: m, n: d, alpha: 1, a: a, lda: d, x: zp.baseAddress!,
                        beta: 1, y: g)
                    }
                  } else {
                    T.gemv(
                      trans: true, m: m, n: d, alpha: 1, a: a, lda: d, x: zp.baseAddress!, beta: 0,
                      y: gbp.baseAddress!)
                    for j in 0..<d { gp[j] += Double(gbp[j]) }
                  }
                  start += m
                }
              }
            }
          }
        }
      }
    }
    sums.loss = lossSum
    sums.intercept = rSum
    return sums
  }
}

extension FusedGradient {
  static func rowGroupRange<T: BLASScalar>(
    x: Matrix<T>, y: [Double], weights: [Double], intercept: Double, loss: RowLoss,
    range: Range<Int>, block: Int, isa: InstructionSet
  ) -> GradientSums {
    let d = x.cols
    var sums = GradientSums(cols: d)
    sums.rows = range.count
    let lossCode: Int32 = loss == .squared ? Int32(TG_LOSS_SQUARED) : Int32(TG_LOSS_LOGISTIC)
    var lossSum = 0.0
    var rSum = 0.0
    let m = range.count
    let lo = range.lowerBound
    sums.gradient.withUnsafeMutableBufferPointer { gp in
      y.withUnsafeBufferPointer { yp in
        x.withUnsafeBufferPointer { xp in
          if T.self == Double.self {
            xp.withMemoryRebound(to: Double.self) { xd in
              weights.withUnsafeBufferPointer { wp in
                tg_fused_f64(
                  isa.rawValue, xd.baseAddress! + lo * d, m, d, yp.baseAddress! + lo,
                  wp.baseAddress!, intercept,
                  lossCode, gp.baseAddress!, &lossSum, &rSum)
              }
            }
          } else {
            let wf = weights.map { Float($0) }
            var scratch = [Float](repeating: 0, count: d)
            xp.withMemoryRebound(to: Float.self) { xf in
              wf.withUnsafeBufferPointer { wp in
                scratch.withUnsafeMutableBufferPointer { sp in
                  tg_fused_f32(
                    isa.rawValue, xf.baseAddress! + lo * d, m, d, yp.baseAddress! + lo,
                    wp.baseAddress!,
                    intercept, lossCode, max(1, block), sp.baseAddress!, gp.baseAddress!,
                    &lossSum, &rSum)
                }
              }
            }
          }
        }
      }
    }
    sums.loss = lossSum
    sums.intercept = rSum
    return sums
  }
}
