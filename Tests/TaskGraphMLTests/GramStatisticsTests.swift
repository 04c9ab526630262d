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
}
