import COpenBLAS
import Dispatch
import Foundation

/// Times one full-gradient pass several ways over the same random matrix: the fused kernel,
/// the two-call BLAS baseline (`z = X w`, then `g = Xᵀ r`, as a NumPy user would write it),
/// and a STREAM-style read of the same bytes (the memory-bandwidth floor).
public struct GradientBenchmark: Sendable {
  /// What to measure.
  public struct Config: Sendable {
    public var rows: Int
    public var cols: Int
    public var loss: RowLoss = .squared
    public var threads: Int = 1
    public var iterations: Int = 10
    public var seed: UInt64 = 42
    /// The fused kernel's instruction set (nil: what training uses for this shape).
    public var instructionSet: FusedGradient.InstructionSet?
    public init(rows: Int, cols: Int) {
      self.rows = rows
      self.cols = cols
    }
  }

  /// Milliseconds per pass (the median of the timed iterations) and derived figures.
  public struct Result: Sendable, Codable {
    public var rows: Int
    public var cols: Int
    public var precision: String
    public var loss: String
    public var threads: Int
    public var iterations: Int
    public var bytes: Int
    public var fused_ms: Double
    /// The same fused pass with the `blasBlocks` kernel (two gemv calls per cached block).
    public var blas_blocks_ms: Double
    /// The same sums by blocks of columns (`computeInColumnBlocks`, blocks of 128 Ki
    /// columns): what a worker runs to send its gradient while computing it.
    public var column_blocks_ms: Double
    public var two_call_ms: Double
    public var limit_ms: Double
    /// The same fused pass with the AVX2 kernel, when the default one is AVX-512.
    public var fused_avx2_ms: Double?
    /// The fused kernel's instruction set: avx512, avx2 or portable.
    public var instruction_set: String
    public var fused_gbps: Double
    public var two_call_gbps: Double
    public var limit_gbps: Double
    /// fused time / limit time (1.0 is the memory floor).
    public var fused_over_limit: Double
    /// two-call time / fused time (the speed-up of fusing).
    public var two_call_over_fused: Double
    /// Largest relative difference between the fused and two-call gradients.
    public var max_relative_difference: Double
    public var openblas_core: String
  }

  /// Runs the benchmark for element type `T`.
  public static func run<T: BLASScalar>(_ config: Config, scalar: T.Type) -> Result {
    let (n, d) = (config.rows, config.cols)
    var x = Matrix<T>(rows: n, cols: d)
    var state = config.seed
    x.withUnsafeMutableBufferPointer { p in
      for k in p.indices {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        z ^= z >> 31
        p[k] = T(Double(z >> 11) * 0x1p-53 * 2 - 1)
      }
    }
    let w = (0..<d).map { Double(($0 % 7) - 3) * 0.01 }
    let y = (0..<n).map { i in config.loss == .logistic ? Double(i % 2) : Double(i % 5) }

    // The passes are timed interleaved (one of each per round, medians over the rounds), so
    // that a drift in the machine's speed during the run shifts every figure alike and the
    // ratios between them stay comparable.
    func timeInterleaved(_ bodies: [() -> Void]) -> [Double] {
      for body in bodies { body() }  // warm-up: page in, spin up threads
      var samples = [[Double]](repeating: [], count: bodies.count)
      for _ in 0..<max(1, config.iterations) {
        for (k, body) in bodies.enumerated() {
          let t0 = DispatchTime.now().uptimeNanoseconds
          body()
          samples[k].append(Double(DispatchTime.now().uptimeNanoseconds - t0) / 1e6)
        }
      }
      return samples.map { s in s.sorted()[s.count / 2] }
    }

    var fusedResult = GradientSums(cols: d)
    var twoCallGradient = [Double](repeating: 0, count: d)
    var sink = 0.0
    let avx2 = FusedGradient.InstructionSet.avx2
    // Float storage runs the AVX2 code on AVX-512 processors too.
    let chosen =
      config.instructionSet ?? FusedGradient.InstructionSet.preferred(cols: d, scalar: T.self)
    let isa = T.self == Double.self ? chosen : min(chosen, avx2)
    let compareAVX2 = isa != avx2 && FusedGradient.InstructionSet.best >= avx2
    var bodies: [() -> Void] = [
      {
        fusedResult = FusedGradient.compute(
          x: x, y: y, weights: w, intercept: 0, loss: config.loss, threads: config.threads,
          instructionSet: isa)
      },
      { sink += StreamRead.sum(x, threads: config.threads) },
      {
        _ = FusedGradient.compute(
          x: x, y: y, weights: w, intercept: 0, loss: config.loss, threads: config.threads,
          kernel: .blasBlocks)
      },
      {
        _ = FusedGradient.computeInColumnBlocks(
          x: x, y: y, weights: w, intercept: 0, loss: config.loss, blockColumns: 1 << 17,
          threads: config.threads, onBlock: { _, _ in })
      },
      {
        openblas_set_num_threads(Int32(config.threads))
        twoCallGradient = twoCallPass(x: x, y: y, w: w, loss: config.loss)
        openblas_set_num_threads(1)
      },
    ]
    if compareAVX2 {
      bodies.append {
        _ = FusedGradient.compute(
          x: x, y: y, weights: w, intercept: 0, loss: config.loss, threads: config.threads,
          instructionSet: avx2)
      }
    }
    let times = timeInterleaved(bodies)
    let (fused, limit, blasBlocks, columnBlocks, twoCall) = (
      times[0], times[1], times[2], times[3], times[4]
    )
    if sink == .infinity { print("") }  // keep the read alive

    let scale = max(1e-300, fusedResult.gradient.map(abs).max() ?? 0)
    let diff = zip(fusedResult.gradient, twoCallGradient).map { abs($0 - $1) }.max() ?? 0
    let bytes = x.byteCount
    func gbps(_ ms: Double) -> Double { Double(bytes) / (ms * 1e6) }
    return Result(
      rows: n, cols: d, precision: T.self == Double.self ? "float64" : "float32",
      loss: config.loss.rawValue, threads: config.threads, iterations: config.iterations,
      bytes: bytes, fused_ms: fused, blas_blocks_ms: blasBlocks,
      column_blocks_ms: columnBlocks, two_call_ms: twoCall,
      limit_ms: limit, fused_avx2_ms: compareAVX2 ? times[5] : nil,
      instruction_set: "\(isa)",
      fused_gbps: gbps(fused), two_call_gbps: gbps(twoCall), limit_gbps: gbps(limit),
      fused_over_limit: fused / limit, two_call_over_fused: twoCall / fused,
      max_relative_difference: diff / scale, openblas_core: OpenBLAS.coreName)
  }

  /// The baseline: two full passes over X through BLAS, with OpenBLAS's own threading.
  static func twoCallPass<T: BLASScalar>(x: Matrix<T>, y: [Double], w: [Double], loss: RowLoss)
    -> [Double]
  {
    let wT = w.map { T($0) }
    var z = BLAS.gemv(x, wT)
    for i in z.indices {
      z[i] = T(loss.lossAndDerivative(margin: Double(z[i]), label: y[i]).derivative)
    }
    let g = BLAS.gemv(x, z, transposed: true)
    return g.map { Double($0) }
  }
}
