import TaskGraphLinalg
import TaskGraphML
import XCTest

/// Mergeable least-squares statistics: the distributed exact solver's arithmetic.
final class GramStatisticsTests: XCTestCase {
  /// Diabetes split into three uneven blocks: the merged statistics solve to the closed
  /// form the test computes by Gaussian elimination (1e-8, as the single-block solver), and
  /// agree with the statistics of all rows at once to 1e-12 relative.
  func testMergedBlocksEqualTheWhole() throws {
    let data = try loadCSV("diabetes.csv")
    let x: Matrix<Double> = data.matrix()
    let whole = GramStatistics(x: x, y: data.labels)
    let cuts = [0, 100, 317, x.rows]
    var merged: GramStatistics?
    for k in 0..<3 {
      let part = GramStatistics(
        x: x.rows(cuts[k]..<cuts[k + 1]), y: Array(data.labels[cuts[k]..<cuts[k + 1]]))
      if merged == nil { merged = part } else { merged!.merge(part) }
    }
    let m = merged!
    XCTAssertEqual(m.count, whole.count)
    XCTAssertLessThan(relativeError(m.means, whole.means), 1e-12)
    XCTAssertEqual(m.labelMean, whole.labelMean, accuracy: 1e-12 * abs(whole.labelMean))
    XCTAssertLessThan(relativeError(m.cross, whole.cross), 1e-12)
    XCTAssertEqual(m.labelSquares, whole.labelSquares, accuracy: 1e-12 * whole.labelSquares)
    let d = x.cols
    var upperMerged: [Double] = []
    var upperWhole: [Double] = []
    for i in 0..<d {
      for j in i..<d {
        upperMerged.append(m.gram[i, j])
        upperWhole.append(whole.gram[i, j])
      }
    }
    XCTAssertLessThan(relativeError(upperMerged, upperWhole), 1e-12)
    for l2 in [0.0, 0.1] {
      let reference = referenceRidge(data, l2: l2)
      let p = try m.solve(l2: l2)
      XCTAssertLessThan(relativeError(p.weights, reference.w), 1e-8, "l2 \(l2)")
      XCTAssertEqual(p.intercept, reference.b, accuracy: 1e-8 * abs(reference.b))
      // The loss term from the statistics equals the one summed over the rows.
      var direct = 0.0
      for i in 0..<x.rows {
        var z = p.intercept
        for j in 0..<d { z += x[i, j] * p.weights[j] }
        direct += 0.5 * (z - data.labels[i]) * (z - data.labels[i])
      }
      direct /= Double(x.rows)
      XCTAssertEqual(m.meanHalfSquaredResidual(p), direct, accuracy: 1e-10 * direct)
    }
  }

  /// Merging an empty block changes nothing; merging into an empty one copies.
  func testEmptyBlocks() {
    let x = Matrix<Double>(rows: 3, cols: 2, storage: [1, 2, 3, 5, 4, 4])
    let s = GramStatistics(x: x, y: [1, 2, 4])
    let empty = GramStatistics(x: Matrix<Double>(rows: 0, cols: 2), y: [])
    var a = s
    a.merge(empty)
    XCTAssertEqual(a, s)
    var b = empty
    b.merge(s)
    XCTAssertEqual(b, s)
  }
  /// Rows split over two threads (each summing its blocks, merged in order) give the
  /// statistics a plain two-pass loop in the test computes (means first, then the centred
  /// sums, each summed with Kahan compensation), on seeded features with means far from
  /// zero; and the same bits from run to run. Tolerance 1e-11 relative: BLAS sums blocks of
  /// about 5,000 rows, whose rounding is bounded by 5,000·ε ≈ 6e-13 per block.
  func testTwoThreadsMatchATwoPassReferenceAndRepeatExactly() {
    let (n, d) = (70_001, 6)
    var rng = SplitMix64(seed: 42)
    var storage = [Double](repeating: 0, count: n * d)
    var y = [Double](repeating: 0, count: n)
    for i in 0..<n {
      var previous = Double.random(in: -1...1, using: &rng)
      for j in 0..<d {
        previous = 0.5 * previous + Double.random(in: -1...1, using: &rng)
        storage[i * d + j] = 1000 * Double(j + 1) + previous
      }
      y[i] = storage[i * d] - 2 * storage[i * d + d - 1] + Double.random(in: -1...1, using: &rng)
    }
    let x = Matrix<Double>(rows: n, cols: d, storage: storage)
    let threaded = GramStatistics(x: x, y: y, threads: 2)
    XCTAssertEqual(GramStatistics(x: x, y: y, threads: 2), threaded)
    /// Kahan-compensated sum of `n` terms.
    func sum(_ term: (Int) -> Double) -> Double {
      var (s, c) = (0.0, 0.0)
      for i in 0..<n {
        let t = term(i) - c
        let u = s + t
        c = (u - s) - t
        s = u
      }
      return s
    }
    let means = (0..<d).map { j in sum { storage[$0 * d + j] } / Double(n) }
    let yMean = sum { y[$0] } / Double(n)
    func centred(_ i: Int, _ j: Int) -> Double { storage[i * d + j] - means[j] }
    let cross = (0..<d).map { j in sum { centred($0, j) * (y[$0] - yMean) } }
    let labelSquares = sum { (y[$0] - yMean) * (y[$0] - yMean) }
    var gram = [Double](repeating: 0, count: d * d)
    for j in 0..<d { for k in 0..<d { gram[j * d + k] = sum { centred($0, j) * centred($0, k) } } }
    XCTAssertEqual(threaded.count, n)
    XCTAssertLessThan(relativeError(threaded.means, means), 1e-11)
    XCTAssertLessThan(relativeError(threaded.cross, cross), 1e-11)
    XCTAssertEqual(threaded.labelSquares, labelSquares, accuracy: 1e-11 * labelSquares)
    var whole: [Double] = []
    threaded.gram.withUnsafeBufferPointer { whole = Array($0) }
    XCTAssertLessThan(relativeError(whole, gram), 1e-11)
    let single = GramStatistics(x: x, y: y, threads: 1)
    XCTAssertLessThan(relativeError(single.cross, threaded.cross), 1e-11)
  }
}
