import Foundation
import TaskGraphLinalg
import XCTest

@testable import TaskGraphData

final class ShardAndGzipTests: XCTestCase {
  /// A CSV whose text fields hold quoted newlines, commas, doubled quotes and even text that
  /// looks like whole records, so that a naive line split would go wrong.
  private func trickyCSV(rows: Int) -> String {
    var text = "id,note,value\n"
    for i in 0..<rows {
      let note: String
      switch i % 5 {
      case 0: note = "plain"
      case 1: note = "\"two\nlines\""
      case 2: note = "\"fake\n\(i + 1000),\"\"x\"\",\(i)\nrecord\""
      case 3: note = "\"comma, and \"\"quote\"\"\""
      default: note = "\"\r\n\""
      }
      text += "\(i),\(note),\(Double(i) * 0.5)\(i % 7 == 0 ? "\r\n" : "\n")"
    }
    return text
  }

  private func options() -> PipelineOptions {
    var options = PipelineOptions(label: "id")
    options.exclude = ["note"]
    return options
  }

  func testShardsConcatenateToTheWholeFile() throws {
    let files = try TestFiles()
    let rows = 257
    let path = try files.write("t.csv", trickyCSV(rows: rows))
    let whole = try DataPipeline.fit(path: path, options: options(), as: Double.self)
    // Independent reference: the ids are 0..<rows in order, values id / 2.
    XCTAssertEqual(whole.y, (0..<rows).map(Double.init))
    XCTAssertEqual(whole.x.storage, (0..<rows).map { Double($0) * 0.5 })
    let pipeline = whole.pipeline
    for count in [1, 2, 3, 4, 7, 16, 50, 256, 300, 1000] {
      var ids: [Double] = []
      var values: [Double] = []
      for index in 0..<count {
        let part = try DataPipeline.apply(
          pipeline, path: path, requireLabel: true, shard: Shard(index: index, count: count),
          as: Double.self)
        ids += part.y ?? []
        values += part.x.storage
      }
      XCTAssertEqual(ids, whole.y, "count \(count)")
      XCTAssertEqual(values, whole.x.storage, "count \(count)")
    }
  }

  func testRecordStartsAtEveryOffsetAreTrueBoundaries() throws {
    let text = trickyCSV(rows: 40)
    let source = ByteSource.memory(Array(text.utf8))
    let header = try CSVReader.header(source, path: "t.csv")
    // Reference: record starts found by scanning sequentially from the header.
    var starts: [Int] = []
    var fields: [FieldSpan] = []
    let bytes = Array(text.utf8)
    bytes.withUnsafeBufferPointer { buf in
      var pos = header.dataStart
      while pos < buf.count {
        starts.append(pos)
        guard case .record(let next) = CSVScanner.scan(buf, from: pos, atEOF: true, fields: &fields)
        else { return XCTFail("scan failed at \(pos)") }
        pos = next
      }
    }
    for offset in header.dataStart...bytes.count {
      let found = try CSVReader.recordStart(
        atOrAfter: offset, dataStart: header.dataStart, source)
      XCTAssertEqual(found, starts.first { $0 >= offset } ?? bytes.count, "offset \(offset)")
    }
  }

  func testGzipEqualsPlainAndShards() throws {
    let files = try TestFiles()
    let path = try files.write("t.csv", trickyCSV(rows: 120))
    let gz = try files.gzip(path)
    let plain = try DataPipeline.fit(path: path, options: options(), as: Float.self)
    let zipped = try DataPipeline.fit(path: gz, options: options(), as: Float.self)
    XCTAssertEqual(plain.x, zipped.x)
    XCTAssertEqual(plain.y, zipped.y)
    XCTAssertEqual(plain.pipeline, zipped.pipeline)
    for count in [2, 5, 13] {
      var ids: [Double] = []
      for index in 0..<count {
        ids +=
          try DataPipeline.apply(
            plain.pipeline, path: gz, requireLabel: true, shard: Shard(index: index, count: count),
            as: Float.self
          ).y ?? []
      }
      XCTAssertEqual(ids, plain.y)
    }
  }

  func testCorruptedAndTruncatedGzip() throws {
    let files = try TestFiles()
    let path = try files.write("c.csv", trickyCSV(rows: 500))
    let gz = try files.gzip(path)
    var bytes = Array(try Data(contentsOf: URL(fileURLWithPath: gz)))
    let truncated = try files.write("trunc.csv.gz", Array(bytes[0..<(bytes.count / 2)]))
    let error = assertDataError(.corruptGzip) {
      try DataPipeline.fit(path: truncated, options: options(), as: Double.self)
    }
    XCTAssertEqual(error?.file, truncated)
    for k in 20..<60 { bytes[k] ^= 0x5A }
    let corrupted = try files.write("bad.csv.gz", bytes)
    assertDataError(.corruptGzip) {
      try DataPipeline.fit(path: corrupted, options: options(), as: Double.self)
    }
    let notGzip = try files.write("plain.csv.gz", "y,a\n1,2\n")
    assertDataError(.corruptGzip) {
      try DataPipeline.fit(path: notGzip, options: options(), as: Double.self)
    }
  }

  func testInvalidShard() throws {
    let files = try TestFiles()
    let path = try files.write("t.csv", "y,a\n1,2\n")
    assertDataError(.invalidShard) {
      try DataPipeline.fit(
        path: path, options: PipelineOptions(label: "y"), shard: Shard(index: 2, count: 2),
        as: Double.self)
    }
  }
}
