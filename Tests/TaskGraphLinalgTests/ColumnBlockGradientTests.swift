import Synchronization
import XCTest

@testable import TaskGraphLinalg

/// The gradient by blocks of columns (`computeInColumnBlocks`) against the plain-loop
/// reference, for shapes that exercise every remainder: rows not a multiple of four, columns
/// not a multiple of eight nor of the kernel's slice, blocks that do not divide the columns.
final class ColumnBlockGradientTests: XCTestCase {
  /// The blocks handed out, joined; fails if one is missing or comes twice.
  private func run<T: BLASScalar>(
    _ x: Matrix<T>, _ y: [Double], _ w: [Double], _ b: Double, _ loss: RowLoss, block: Int,
    threads: Int = 1, isa: FusedGradient.InstructionSet = .best, weightsAtByte shift: Int? = nil
  ) -> GradientSums {
    let blocks = Mutex<[Int: [Double]]>([:])
    let onBlock: @Sendable (Range<Int>, [Double]) -> Void = { columns, values in
      XCTAssertEqual(columns.count, values.count)
      XCTAssertEqual(columns.lowerBound % block, 0)
      let fresh = blocks.withLock { $0.updateValue(values, forKey: columns.lowerBound) == nil }
      XCTAssertTrue(fresh, "block at \(columns.lowerBound) twice")
    }
    var sums: GradientSums
    if let shift {
      // The weights' bytes `shift` bytes into a buffer, read in place (unaligned unless 0
      // or 8).
      let bytes = [UInt8](repeating: 0xa5, count: shift) + w.withUnsafeBytes { Array($0) }
      sums = bytes.withUnsafeBytes { raw in
        FusedGradient.computeInColumnBlocks(
          x: x, y: y, weights: UnalignedDoubles(UnsafeRawBufferPointer(rebasing: raw[shift...])),
          intercept: b, loss: loss, blockColumns: block, threads: threads, instructionSet: isa,
          onBlock: onBlock)
      }
    } else {
      sums = FusedGradient.computeInColumnBlocks(
        x: x, y: y, weights: w, intercept: b, loss: loss, blockColumns: block, threads: threads,
        instructionSet: isa, onBlock: onBlock)
    }
    XCTAssertTrue(sums.gradient.isEmpty, "the blocks carry the gradient")
    let all = blocks.withLock { $0 }
    XCTAssertEqual(all.count, (x.cols + block - 1) / block)
    sums.gradient = all.keys.sorted().flatMap { all[$0]! }
    return sums
  }

  private func assertClose(
    _ a: GradientSums, _ b: GradientSums, _ tolerance: Double, _ what: String,
    file: StaticString = #filePath, line: UInt = #line
  ) {
    XCTAssertEqual(a.rows, b.rows, what, file: file, line: line)
    XCTAssertEqual(a.gradient.count, b.gradient.count, what, file: file, line: line)
    let scale = max(1, b.gradient.map(abs).max() ?? 0, abs(b.loss), abs(b.intercept))
    XCTAssertEqual(a.loss, b.loss, accuracy: tolerance * scale, what, file: file, line: line)
    XCTAssertEqual(
      a.intercept, b.intercept, accuracy: tolerance * scale, what, file: file, line: line)
    let worst = zip(a.gradient, b.gradient).map { abs($0 - $1) }.max() ?? 0
    XCTAssertLessThanOrEqual(worst, tolerance * scale, what, file: file, line: line)
  }

  func testEqualsTheReferenceForEveryShapeAndInstructionSet() {
    for (rows, cols, block) in [
      (1, 1, 1), (3, 17, 5), (4, 8, 8), (7, 2049, 1000), (9, 4100, 4096), (13, 5000, 128),
      (0, 10, 3),
    ] {
      for loss in [RowLoss.squared, .logistic] {
        let (x, y, w) = randomProblem(
          rows: rows, cols: cols, seed: UInt64(rows * 31 + cols), logistic: loss == .logistic)
        let reference = naiveSums(x, y, w, 0.25, loss)
        for isa in FusedGradient.InstructionSet.supported {
          let what = "\(rows)×\(cols), blocks of \(block), \(loss), \(isa)"
          // 1e-12 relative: the two sum the same products in different orders.
          assertClose(run(x, y, w, 0.25, loss, block: block, isa: isa), reference, 1e-12, what)
        }
        for threads in [2, 3] {
          assertClose(
            run(x, y, w, 0.25, loss, block: block, threads: threads), reference, 1e-12,
            "\(rows)×\(cols) on \(threads) threads")
        }
      }
    }
  }

  func testFloatStorageEqualsTheReferenceWithinFloatRounding() {
    let (x, y, w) = randomProblem(rows: 11, cols: 3001, seed: 5, logistic: false)
    let xf = Matrix<Float>(rows: x.rows, cols: x.cols, storage: x.storage.map { Float($0) })
    // The reference on the rounded inputs; Float products and sums: 1e-4 relative.
    let xr = Matrix<Double>(rows: x.rows, cols: x.cols, storage: xf.storage.map { Double($0) })
    let wr = w.map { Double(Float($0)) }
    assertClose(
      run(xf, y, w, -0.5, .squared, block: 700), naiveSums(xr, y, wr, -0.5, .squared), 1e-4,
      "float")
  }

  func testWeightsAtAnyAlignmentGiveTheSameSumsBitForBit() {
    // Weights read in place from a received message start at any byte; the sums must be
    // those of an aligned array exactly, for every kernel and both storages.
    let (x, y, w) = randomProblem(rows: 7, cols: 2053, seed: 21, logistic: true)
    let xf = Matrix<Float>(rows: x.rows, cols: x.cols, storage: x.storage.map { Float($0) })
    for isa in FusedGradient.InstructionSet.supported {
      let aligned = run(x, y, w, 0.3, .logistic, block: 500, isa: isa)
      let alignedFloat = run(xf, y, w, 0.3, .logistic, block: 500, isa: isa)
      for shift in 1..<8 {
        let what = "\(isa), weights at byte \(shift)"
        for (a, b) in [
          (run(x, y, w, 0.3, .logistic, block: 500, isa: isa, weightsAtByte: shift), aligned),
          (run(xf, y, w, 0.3, .logistic, block: 500, isa: isa, weightsAtByte: shift), alignedFloat),
        ] {
          XCTAssertEqual(a.gradient.map(\.bitPattern), b.gradient.map(\.bitPattern), what)
          XCTAssertEqual(a.loss.bitPattern, b.loss.bitPattern, what)
          XCTAssertEqual(a.intercept.bitPattern, b.intercept.bitPattern, what)
        }
      }
    }
  }

  func testRunsAreBitIdentical() {
    let (x, y, w) = randomProblem(rows: 10, cols: 9000, seed: 9, logistic: true)
    let a = run(x, y, w, 0.1, .logistic, block: 1024, threads: 2)
    let b = run(x, y, w, 0.1, .logistic, block: 1024, threads: 2)
    XCTAssertEqual(a.gradient.map(\.bitPattern), b.gradient.map(\.bitPattern))
    XCTAssertEqual(a.loss.bitPattern, b.loss.bitPattern)
  }
}
