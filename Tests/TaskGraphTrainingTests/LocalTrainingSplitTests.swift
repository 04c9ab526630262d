import TaskGraphLinalg
import TaskGraphML
import XCTest

@testable import TaskGraphTraining

/// The validation split, which reuses the matrix's storage for the training rows.
final class LocalTrainingSplitTests: XCTestCase {
  /// Row `i` of the test matrix holds `i * 10 + j` in column `j`, so every row is recognisable.
  private func matrix(rows: Int, cols: Int) -> Matrix<Double> {
    Matrix(
      rows: rows, cols: cols,
      storage: (0..<(rows * cols)).map { Double($0 / cols * 10 + $0 % cols) })
  }

  /// The split as the seeded shuffle defines it, built by copying rows (an independent path).
  private func reference(_ x: Matrix<Double>, _ y: [Double], fraction: Double, seed: UInt64)
    -> (train: [Int], validation: [Int])
  {
    let n = Int((Double(x.rows) * fraction).rounded(.down))
    var rng = SplitMix64(seed: seed)
    var order = Array(0..<x.rows)
    order.shuffle(using: &rng)
    return (order.prefix(x.rows - n).sorted(), order.suffix(n).sorted())
  }

  func testSplitMovesTrainingRowsInPlaceAndCopiesValidationRows() {
    for (rows, fraction) in [(10, 0.2), (97, 0.5), (5, 0.9), (3, 0.1)] {
      let cols = 3
      let y = (0..<rows).map { Double($0) }
      let expected = reference(matrix(rows: rows, cols: cols), y, fraction: fraction, seed: 42)
      let (train, validation) = LocalTraining.split(
        x: matrix(rows: rows, cols: cols), y: y, fraction: fraction, seed: 42)
      XCTAssertEqual(train.x, matrix(rows: rows, cols: cols).rows(at: expected.train))
      XCTAssertEqual(train.y, expected.train.map(Double.init))
      if expected.validation.isEmpty {
        XCTAssertNil(validation)
      } else {
        XCTAssertEqual(validation?.x, matrix(rows: rows, cols: cols).rows(at: expected.validation))
        XCTAssertEqual(validation?.y, expected.validation.map(Double.init))
      }
    }
  }

  func testSplitOfASharedMatrixLeavesTheOtherCopyIntact() {
    let x = matrix(rows: 20, cols: 2)
    let copy = x
    let (train, validation) = LocalTraining.split(
      x: x, y: Array(repeating: 0, count: 20), fraction: 0.25, seed: 7)
    XCTAssertEqual(copy, matrix(rows: 20, cols: 2))
    XCTAssertEqual(train.x.rows + (validation?.x.rows ?? 0), 20)
    XCTAssertEqual(validation?.x.rows, 5)
  }
}
