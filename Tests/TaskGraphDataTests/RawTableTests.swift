import Foundation
import TaskGraphLinalg
import XCTest

@testable import TaskGraphData

/// The column store, the category encoder, and the fitting and materialising over them.
final class RawTableTests: XCTestCase {
  func testNarrowTableStoresFloatsInHalfTheRoom() {
    // 2 numeric as Float (8 B) + label (8 B) + 1 code (4 B) = 20 B a row against 28 B, so a
    // block of the same size holds more rows: 320 bytes hold 8 rows of 28 B, 16 of 20 B.
    let wide = RawTable(
      numericNames: ["a", "b"], categoricalNames: ["c"], hasLabel: true, blockBytes: 320)
    let narrow = RawTable(
      numericNames: ["a", "b"], categoricalNames: ["c"], hasLabel: true, narrow: true,
      blockBytes: 320)
    XCTAssertEqual(wide.blockRows, 8)
    XCTAssertEqual(narrow.blockRows, 16)
    let values = [0.1, -1e-3, 12345.678, .nan, 3]
    for table in [wide, narrow] {
      for v in values {
        let row = table.nextRow()
        row.setNumeric(0, v)
        row.setNumeric(1, -v)
        row.codes[0] = 0
        row.label.pointee = v
        table.commitRow()
      }
    }
    for (r, v) in values.enumerated() {
      // The narrow table holds each value rounded to Float; labels stay Double.
      XCTAssertEqual(wide.numeric(r, 0).bitPattern, v.bitPattern)
      XCTAssertEqual(narrow.numeric(r, 0).bitPattern, Double(Float(v)).bitPattern)
      XCTAssertEqual(narrow.numeric(r, 1).bitPattern, Double(Float(-v)).bitPattern)
      XCTAssertEqual(narrow.label(r).bitPattern, v.bitPattern)
    }
    narrow.forEachBlock { _, block in XCTAssertNil(block.doubles(from: 0)) }
    wide.forEachBlock { _, block in XCTAssertNotNil(block.doubles(from: 0)) }
    // Appending copies the stored values as they are.
    let copy = RawTable(
      numericNames: ["a", "b"], categoricalNames: ["c"], hasLabel: true, narrow: true)
    copy.categories = [["x"]]
    narrow.categories = [["x"]]
    copy.append(narrow)
    XCTAssertEqual(copy.rows, values.count)
    XCTAssertEqual(copy.numeric(2, 0), Double(Float(12345.678)))
  }

  func testRowsSpanBlocksAndReleasedBlocksAreReturned() {
    // 2 numeric (16 B) + label (8 B) + 1 code (4 B) = 28 B a row: 8 rows in a 256-byte block.
    let table = RawTable(
      numericNames: ["a", "b"], categoricalNames: ["c"], hasLabel: true, blockBytes: 256)
    XCTAssertEqual(table.blockRows, 8)
    for r in 0..<21 {
      let row = table.nextRow()
      row.setNumeric(0, Double(r))
      row.setNumeric(1, -Double(r))
      row.codes[0] = Int32(r % 3)
      row.label.pointee = Double(r) / 2
      table.commitRow()
    }
    // A row written but not committed is not part of the table.
    table.nextRow().setNumeric(0, 99)
    XCTAssertEqual(table.rows, 21)
    for r in 0..<21 {
      XCTAssertEqual(table.numeric(r, 0), Double(r))
      XCTAssertEqual(table.numeric(r, 1), -Double(r))
      XCTAssertEqual(table.code(r, 0), Int32(r % 3))
      XCTAssertEqual(table.label(r), Double(r) / 2)
    }
    var ranges: [Range<Int>] = []
    table.forEachBlock { rows, block in
      ranges.append(rows)
      XCTAssertEqual(block.numeric(2 * (rows.count - 1)), Double(rows.upperBound - 1))
    }
    XCTAssertEqual(ranges, [0..<8, 8..<16, 16..<21])
    let page = Int(sysconf(Int32(_SC_PAGESIZE)))
    XCTAssertEqual(table.residentBytes, 3 * page)
    table.releaseBlocks(below: 15)  // block 1 still holds row 15
    XCTAssertEqual(table.residentBytes, 2 * page)
    XCTAssertEqual(table.numeric(15, 0), 15)
    table.releaseBlocks(below: table.rows)
    XCTAssertEqual(table.residentBytes, 0)
  }

  func testAppendedRowsAreFilledAndLabelsAreNaNWithoutALabelColumn() {
    let table = RawTable(numericNames: ["a"], categoricalNames: ["c"], hasLabel: false)
    table.appendRows(3, numeric: 0)
    table.setNumeric(1, 0, 7)
    XCTAssertEqual((0..<3).map { table.numeric($0, 0) }, [0, 7, 0])
    XCTAssertEqual((0..<3).map { table.code($0, 0) }, [-1, -1, -1])
    XCTAssertTrue(table.label(0).isNaN)
  }

  func testCategoryEncoderCodesInOrderOfFirstAppearance() {
    var encoder = CategoryEncoder()
    func code(_ bytes: [UInt8]) -> Int32 {
      bytes.withUnsafeBufferPointer { encoder.code($0.baseAddress!, $0.count) }
    }
    // Enough distinct values to grow the hash table several times.
    let values = (0..<5000).map { "v\($0 * 7919 % 5000)" }
    for (k, v) in values.enumerated() { XCTAssertEqual(code(Array(v.utf8)), Int32(k)) }
    for (k, v) in values.enumerated().reversed() { XCTAssertEqual(code(Array(v.utf8)), Int32(k)) }
    XCTAssertEqual(encoder.values, values)
    // Invalid UTF-8 is refused, not repaired: repairing would turn both of these into
    // "\u{FFFD}", one value for two distinct byte sequences. Nothing is added.
    XCTAssertEqual(code([0xFF]), CategoryEncoder.invalid)
    XCTAssertEqual(code([0xFE]), CategoryEncoder.invalid)
    XCTAssertEqual(code([0x63, 0x61, 0x66, 0xE9]), CategoryEncoder.invalid)
    XCTAssertEqual(encoder.values.count, 5000)
  }

  func testMaterialiseReleasesTheTable() throws {
    let files = try TestFiles()
    var text = "y,a,c\n"
    for r in 0..<1000 { text += "\(r),\(r % 10 == 0 ? "" : String(r * 2)),k\(r % 4)\n" }
    let path = try files.write("m.csv", text)
    var options = PipelineOptions(label: "y")
    options.categorical = ["c"]
    let table = try DataPipeline.read(path: path, shard: nil) { names, _ in
      try ReadSpec(fitting: options, names: names, path: path)
    }
    XCTAssertGreaterThan(table.residentBytes, 0)
    let pipeline = try DataPipeline.fitTransforms(table, options: options, path: path)
    let data: PreparedData<Double> = try DataPipeline.materialise(
      table, pipeline, requireLabel: true)
    XCTAssertEqual(table.residentBytes, 0)
    XCTAssertEqual(data.x.rows, 900)
    XCTAssertEqual(data.featureNames, ["a", "c=k0", "c=k1", "c=k2", "c=k3"])
    XCTAssertEqual(data.x.row(0), [2, 0, 1, 0, 0])
    XCTAssertEqual(data.y?[0], 1)
  }

  func testFittedStatisticsEqualAColumnByColumnReferenceBitForBit() throws {
    // Values with many significant digits and missing ones, so that any change in the order of
    // the additions would show in the last bits.
    var rng = Xorshift(state: 11)
    let rows = 2000
    let cols = 4
    var data: [[Double?]] = []
    var text = "y," + (0..<cols).map { "x\($0)" }.joined(separator: ",") + "\n"
    for _ in 0..<rows {
      let row: [Double?] = (0..<cols).map { _ in
        Double.random(in: 0..<1, using: &rng) < 0.1
          ? nil : Double.random(in: -1e3...1e3, using: &rng)
      }
      data.append(row)
      text += "1," + row.map { $0.map { "\($0)" } ?? "" }.joined(separator: ",") + "\n"
    }
    let files = try TestFiles()
    let path = try files.write("r.csv", text)
    var options = PipelineOptions(label: "y")
    options.missing = .mean
    options.standardize = true
    let fitted = try DataPipeline.fit(path: path, options: options, as: Double.self).pipeline
    for c in 0..<cols {
      let present = data.compactMap { $0[c] }
      let fill = present.reduce(0, +) / Double(present.count)
      let values = data.map { $0[c] ?? fill }
      let mean = values.reduce(0, +) / Double(rows)
      let std = (values.reduce(0) { $0 + ($1 - mean) * ($1 - mean) } / Double(rows)).squareRoot()
      XCTAssertEqual(fitted.columns[c].fill?.bitPattern, fill.bitPattern, "column \(c)")
      XCTAssertEqual(fitted.means?[c].bitPattern, mean.bitPattern, "column \(c)")
      XCTAssertEqual(fitted.scales?[c].bitPattern, std.bitPattern, "column \(c)")
    }
  }
}

/// A small deterministic generator (xorshift64*), so the test data is the same on every run.
private struct Xorshift: RandomNumberGenerator {
  var state: UInt64
  mutating func next() -> UInt64 {
    state ^= state >> 12
    state ^= state << 25
    state ^= state >> 27
    return state &* 0x2545_F491_4F6C_DD1D
  }
}
