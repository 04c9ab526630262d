import Foundation
import TaskGraphLinalg
import XCTest

@testable import TaskGraphData

final class RealDataTests: XCTestCase {
  /// Splits a header-first CSV without quotes the simple way, as an independent reference.
  private func simpleRows(_ text: String) -> [[Substring]] {
    // The files end lines in CRLF, a single Character; split on any line end.
    text.split(whereSeparator: \.isNewline).dropFirst()
      .map { $0.split(separator: ",", omittingEmptySubsequences: false) }
  }

  func testDiabetesAndBreastCancer() throws {
    for (name, label, features, rows) in [
      ("diabetes.csv", "progression", 10, 442), ("breast_cancer.csv", "malignant", 30, 569),
    ] {
      let path = dataset(name)
      let data = try DataPipeline.fit(
        path: path, options: PipelineOptions(label: label), as: Double.self)
      XCTAssertEqual(data.x.rows, rows)
      XCTAssertEqual(data.x.cols, features)
      let reference = simpleRows(try String(contentsOfFile: path, encoding: .utf8))
      XCTAssertEqual(reference.count, rows)
      for (r, fields) in reference.enumerated() {
        XCTAssertEqual(data.y?[r], Double(fields[0]))
        XCTAssertEqual(data.x.row(r), fields.dropFirst().map { Double($0)! })
      }
    }
  }

  func testFlightsGzip() throws {
    let path = dataset("flights.csv.gz")
    var options = PipelineOptions(label: "arr_delay")
    options.categorical = ["carrier", "origin", "dest"]
    let data = try DataPipeline.fit(path: path, options: options, as: Float.self)
    // Independent reference: decompress with the system gzip, split naively.
    let process = Process()
    let pipe = Pipe()
    process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
    process.arguments = ["gzip", "-dc", path]
    process.standardOutput = pipe
    try process.run()
    let text = String(decoding: pipe.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
    process.waitUntilExit()
    let rows = simpleRows(text)
    XCTAssertEqual(rows.count, 336_776)
    XCTAssertEqual(data.rowsRead, 336_776)
    let incomplete = rows.filter { $0.contains { $0.isEmpty } }.count
    XCTAssertEqual(incomplete, 45_636)
    XCTAssertEqual(data.droppedRows, incomplete)
    let carriers = Set(rows.filter { !$0.contains { $0.isEmpty } }.map { String($0[6]) }).sorted()
    XCTAssertEqual(
      data.featureNames.filter { $0.hasPrefix("carrier=") }, carriers.map { "carrier=\($0)" })
    // The first kept row, checked field by field.
    let first = rows.first { !$0.contains { $0.isEmpty } }!
    XCTAssertEqual(data.y?.first, Double(first[0]))
    let names = data.featureNames
    XCTAssertEqual(data.x[0, names.firstIndex(of: "dep_delay")!], Float(first[1])!)
    XCTAssertEqual(data.x[0, names.firstIndex(of: "carrier=\(first[6])")!], 1)
    XCTAssertEqual(data.x[0, names.firstIndex(of: "visib")!], Float(first[15])!)
    XCTAssertEqual(data.x.row(0).reduce(0, +) > 0, true)
  }
}
