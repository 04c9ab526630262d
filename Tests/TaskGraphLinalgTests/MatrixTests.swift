import XCTest

@testable import TaskGraphLinalg

final class MatrixTests: XCTestCase {
  /// The address of element (0, 0).
  func firstElementAddress<T>(_ m: Matrix<T>) -> UInt {
    m.withUnsafeBufferPointer { UInt(bitPattern: $0.baseAddress) }
  }

  func testLargeMatricesStartOnACacheLine() {
    // Above the threshold every allocation path the package uses aligns; below it none pads.
    let rows = 2_000
    let cols = 13
    let filled = Matrix<Double>(rows: rows, cols: cols, repeating: 1.5)
    XCTAssertEqual(firstElementAddress(filled) % 64, 0)
    XCTAssertEqual(firstElementAddress(Matrix<Float>(rows: rows, cols: cols)) % 64, 0)
    XCTAssertEqual(firstElementAddress(filled.converted(to: Float.self)) % 64, 0)
    XCTAssertEqual(firstElementAddress(filled.rows(1..<1_500)) % 64, 0)
    let built = Matrix<Double>.uninitialized(rows: rows, cols: cols) { out in
      for k in out.indices { out[k] = Double(k) }
    }
    XCTAssertEqual(firstElementAddress(built) % 64, 0)
    XCTAssertEqual(built[3, 4], Double(3 * cols + 4))
    XCTAssertEqual(built.byteCount, rows * cols * 8)
    XCTAssertEqual(Matrix<Double>(rows: 2, cols: 2).offset, 0)
  }

  func testAlignedMatricesBehaveLikeTheirElements() {
    let rows = 1_000
    let cols = 11
    let elements = (0..<(rows * cols)).map { Double($0) * 0.25 }
    let plain = Matrix(rows: rows, cols: cols, storage: elements)
    XCTAssertEqual(plain.offset, 0)
    var aligned = Matrix<Double>.uninitialized(rows: rows, cols: cols) { out in
      _ = out.initialize(from: elements)
    }
    // Equality, the storage copy, rows and conversion see the elements, not the padding.
    XCTAssertEqual(aligned, plain)
    XCTAssertEqual(aligned.storage, elements)
    XCTAssertEqual(aligned.row(7), Array(elements[77..<88]))
    XCTAssertEqual(
      aligned.rows(at: [999, 0]).storage, Array(elements[10989...]) + elements[0..<11])
    XCTAssertEqual(aligned.transposed()[4, 9], plain[9, 4])
    XCTAssertEqual(aligned.converted(to: Float.self).converted(to: Double.self), plain)
    // Mutation through the subscript and the buffer, then dropping rows in place.
    aligned[0, 0] = -1
    XCTAssertNotEqual(aligned, plain)
    aligned.withUnsafeMutableBufferPointer { $0[0] = 0 }
    XCTAssertEqual(aligned, plain)
    aligned.removeLastRows(400)
    XCTAssertEqual(aligned.rows, 600)
    XCTAssertEqual(aligned, plain.rows(0..<600))
    aligned.appendRow(elements[0..<11])
    XCTAssertEqual(aligned.row(600), Array(elements[0..<11]))
  }
}
