import XCTest

@testable import TaskGraphLinalg

/// A small deterministic generator (SplitMix64) so tests do not depend on the system RNG.
struct SplitMix64: RandomNumberGenerator {
  var state: UInt64
  mutating func next() -> UInt64 {
    state &+= 0x9E37_79B9_7F4A_7C15
    var z = state
    z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
    z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
    return z ^ (z >> 31)
  }
  mutating func gaussian() -> Double {
    let u1 = max(Double.leastNonzeroMagnitude, Double.random(in: 0..<1, using: &self))
    let u2 = Double.random(in: 0..<1, using: &self)
    return (-2 * log(u1)).squareRoot() * cos(2 * .pi * u2)
  }
}

func randomProblem(rows: Int, cols: Int, seed: UInt64, logistic: Bool) -> (
  Matrix<Double>, [Double], [Double]
) {
  var rng = SplitMix64(state: seed)
  var x = Matrix<Double>(rows: rows, cols: cols)
  for i in 0..<rows { for j in 0..<cols { x[i, j] = rng.gaussian() } }
  let w = (0..<cols).map { _ in rng.gaussian() }
  let y = (0..<rows).map { i -> Double in
    var z = 0.0
    for j in 0..<cols { z += x[i, j] * w[j] }
    return logistic ? (z + rng.gaussian() > 0 ? 1 : 0) : z + 0.1 * rng.gaussian()
  }
  return (x, y, w.map { $0 * 0.5 })
}

/// Loss and gradient sums computed row by row with plain loops: the independent reference.
func naiveSums(_ x: Matrix<Double>, _ y: [Double], _ w: [Double], _ b: Double, _ loss: RowLoss)
  -> GradientSums
{
  var s = GradientSums(cols: x.cols)
  s.rows = x.rows
  for i in 0..<x.rows {
    var z = b
    for j in 0..<x.cols { z += x[i, j] * w[j] }
    let l: Double
    let r: Double
    switch loss {
    case .squared:
      l = 0.5 * (z - y[i]) * (z - y[i])
      r = z - y[i]
    case .logistic:
      l = log(1 + exp(z)) - y[i] * z
      r = 1 / (1 + exp(-z)) - y[i]
    }
    s.loss += l
    s.intercept += r
    for j in 0..<x.cols { s.gradient[j] += r * x[i, j] }
  }
  return s
}

final class FusedGradientTests: XCTestCase {
  /// Training's default instruction set sends Double rows to the AVX2 kernel where AVX-512
  /// exists (it streams closer to the read floor), keeps `best` for Float, and gives the same
  /// sums as the explicitly chosen set (the choice depends on the processor and type only).
  func testPreferredInstructionSetForDoublesIsAVX2() {
    typealias ISA = FusedGradient.InstructionSet
    for cols in [96, 100, 101, 104] {
      let expected: ISA = ISA.best == .avx512 ? .avx2 : .best
      XCTAssertEqual(ISA.preferred(cols: cols, scalar: Double.self), expected, "\(cols)")
      XCTAssertEqual(ISA.preferred(cols: cols, scalar: Float.self), .best, "\(cols)")
    }
    let x = Matrix<Double>(rows: 37, cols: 100, storage: (0..<3700).map { sin(Double($0)) })
    let y = (0..<37).map { Double($0 % 3) }
    let w = (0..<100).map { cos(Double($0)) }
    let auto = FusedGradient.compute(x: x, y: y, weights: w, intercept: 0.5, loss: .squared)
    let explicit = FusedGradient.compute(
      x: x, y: y, weights: w, intercept: 0.5, loss: .squared,
      instructionSet: ISA.preferred(cols: 100, scalar: Double.self))
    XCTAssertEqual(auto, explicit)
  }

  func assertClose(
    _ a: GradientSums, _ b: GradientSums, rtol: Double, file: StaticString = #filePath,
    line: UInt = #line
  ) {
    XCTAssertEqual(a.rows, b.rows, file: file, line: line)
    XCTAssertEqual(a.loss, b.loss, accuracy: rtol * max(1, abs(b.loss)), file: file, line: line)
    XCTAssertEqual(
      a.intercept, b.intercept, accuracy: rtol * max(1, abs(b.intercept)), file: file, line: line)
    let scale = max(1, b.gradient.map(abs).max() ?? 0)
    for j in a.gradient.indices {
      XCTAssertEqual(
        a.gradient[j], b.gradient[j], accuracy: rtol * scale, "gradient[\(j)]", file: file,
        line: line)
    }
  }

  func testMatchesNaiveLoopDouble() {
    for loss in RowLoss.allCases {
      let (x, y, w) = randomProblem(rows: 1003, cols: 17, seed: 7, logistic: loss == .logistic)
      let ref = naiveSums(x, y, w, 0.3, loss)
      for threads in [1, 2, 3] {
        for block in [1, 7, 64, 5000] {
          for kernel in FusedGradient.Kernel.allCases {
            let got = FusedGradient.compute(
              x: x, y: y, weights: w, intercept: 0.3, loss: loss, threads: threads,
              blockRows: block, kernel: kernel)
            assertClose(got, ref, rtol: 1e-12)
          }
        }
      }
      // Every instruction set this processor has, over column counts that exercise the full
      // vectors, the masked tail and a tail alone (d < 8), and row counts that leave 0–3 rows
      // after the last group of four.
      for isa in FusedGradient.InstructionSet.supported {
        for (rows, cols) in [(1003, 17), (1000, 16), (1001, 5), (1002, 100), (3, 9)] {
          let (x, y, w) = randomProblem(
            rows: rows, cols: cols, seed: 9, logistic: loss == .logistic)
          let ref = naiveSums(x, y, w, 0.3, loss)
          let got = FusedGradient.compute(
            x: x, y: y, weights: w, intercept: 0.3, loss: loss, instructionSet: isa)
          assertClose(got, ref, rtol: 1e-12)
        }
      }
    }
  }

  func testMatchesNaiveLoopFloat() {
    for loss in RowLoss.allCases {
      let (x, y, w) = randomProblem(rows: 2000, cols: 31, seed: 11, logistic: loss == .logistic)
      let xf: Matrix<Float> = x.converted()
      // Reference on the Float-rounded data, so the only difference is arithmetic precision.
      let ref = naiveSums(xf.converted(), y, w.map { Double(Float($0)) }, -0.2, loss)
      for kernel in FusedGradient.Kernel.allCases {
        let got = FusedGradient.compute(
          x: xf, y: y, weights: w, intercept: -0.2, loss: loss, threads: 2, kernel: kernel)
        assertClose(got, ref, rtol: 1e-4)
      }
      for isa in FusedGradient.InstructionSet.supported {
        let got = FusedGradient.compute(
          x: xf, y: y, weights: w, intercept: -0.2, loss: loss, instructionSet: isa)
        assertClose(got, ref, rtol: 1e-4)
      }
    }
  }

  func testBitIdenticalAcrossRunsForFixedThreads() {
    let (x, y, w) = randomProblem(rows: 20_000, cols: 40, seed: 3, logistic: false)
    for threads in [1, 2] {
      for isa in FusedGradient.InstructionSet.supported {
        let a = FusedGradient.compute(
          x: x, y: y, weights: w, intercept: 0.1, loss: .squared, threads: threads,
          instructionSet: isa)
        for _ in 0..<5 {
          let b = FusedGradient.compute(
            x: x, y: y, weights: w, intercept: 0.1, loss: .squared, threads: threads,
            instructionSet: isa)
          XCTAssertEqual(a, b)
        }
      }
    }
  }

  func testShardSumsAddUpToWhole() {
    let (x, y, w) = randomProblem(rows: 999, cols: 5, seed: 5, logistic: true)
    let whole = FusedGradient.compute(x: x, y: y, weights: w, intercept: 0, loss: .logistic)
    var parts = GradientSums(cols: 5)
    for r in FusedGradient.splitEvenly(0..<999, parts: 4) {
      parts.add(
        FusedGradient.compute(x: x, y: y, weights: w, intercept: 0, loss: .logistic, rows: r))
    }
    assertClose(parts, whole, rtol: 1e-12)
  }

  /// The master's one-pass sum equals adding each part into the first, bit for bit (the
  /// same additions in the same order), for 1 to 4 parts of mixed magnitudes.
  func testSumOfPartsIsSequentialAddition() {
    var rng = SplitMix64(state: 11)
    for count in 1...4 {
      let parts = (0..<count).map { k in
        GradientSums(
          loss: rng.gaussian() * 1e3,
          gradient: (0..<37).map { _ in rng.gaussian() * pow(10, Double(k * 5 - 8)) },
          intercept: rng.gaussian(), rows: 10 + k)
      }
      var sequential = parts[0]
      for p in parts.dropFirst() { sequential.add(p) }
      let summed = GradientSums.sum(parts)
      XCTAssertEqual(summed.gradient.map(\.bitPattern), sequential.gradient.map(\.bitPattern))
      XCTAssertEqual(summed.loss.bitPattern, sequential.loss.bitPattern)
      XCTAssertEqual(summed.intercept.bitPattern, sequential.intercept.bitPattern)
      XCTAssertEqual(summed.rows, parts.map(\.rows).reduce(0, +))
    }
  }

  func testLogisticIsStableForHugeMargins() {
    for z in [-1e4, -800.0, -40.0, 0.0, 40.0, 800.0, 1e4] {
      for y in [0.0, 1.0] {
        let (l, r) = RowLoss.logistic.lossAndDerivative(margin: z, label: y)
        XCTAssertTrue(l.isFinite && r.isFinite, "z=\(z) y=\(y)")
        XCTAssertGreaterThanOrEqual(l, 0)
        // Closed forms in the tails: loss ≈ max(z,0) − y z, residual ≈ step(z) − y.
        if abs(z) >= 800 {
          XCTAssertEqual(l, max(z, 0) - y * z, accuracy: 1e-12)
          XCTAssertEqual(r, (z > 0 ? 1 : 0) - y, accuracy: 1e-12)
        }
      }
    }
    XCTAssertEqual(
      RowLoss.logistic.lossAndDerivative(margin: 0, label: 1).loss, log(2), accuracy: 1e-15)
  }
}
