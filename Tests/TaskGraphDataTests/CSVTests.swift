import Foundation
import TaskGraphLinalg
import XCTest

@testable import TaskGraphData

final class CSVTests: XCTestCase {
  func testQuotingCRLFAndBOM() throws {
    let files = try TestFiles()
    // BOM, CRLF line ends, a quoted field with a doubled quote, a comma and a newline.
    let text =
      "\u{FEFF}y,\"x 1\",name\r\n1,2.5,\"a \"\"quoted\"\", multi\r\nline\"\r\n3,\"-4e2\",b\r\n\r\n"
    let path = try files.write("q.csv", text)
    var options = PipelineOptions(label: "y")
    options.categorical = ["name"]
    let data = try DataPipeline.fit(path: path, options: options, as: Double.self)
    XCTAssertEqual(data.rowsRead, 2)
    XCTAssertEqual(data.y, [1, 3])
    XCTAssertEqual(
      data.featureNames, ["x 1", "name=a \"quoted\", multi\r\nline", "name=b"])
    XCTAssertEqual(data.x.storage, [2.5, 1, 0, -400, 0, 1])
  }

  func testNoFinalNewlineAndMissingTokens() throws {
    let files = try TestFiles()
    let path = try files.write("m.csv", "y,a,b\n1,NA,2\n2,3,\n3,NaN,5\n4,6,7")
    let dropped = try DataPipeline.fit(
      path: path, options: PipelineOptions(label: "y"), as: Double.self)
    XCTAssertEqual(dropped.rowsRead, 4)
    XCTAssertEqual(dropped.droppedRows, 3)
    XCTAssertEqual(dropped.x.storage, [6, 7])
    XCTAssertEqual(dropped.y, [4])
  }

  func testNumberParsingMatchesStrtod() throws {
    var parser = NumberParser()
    var rng = SystemRandomNumberGenerator()
    var samples = [
      "0", "-0", "1", "+1", "0.1", "1e10", "1E-5", "123456789012345", "1234567890123456789012",
      "0.30000000000000004", "2.2250738585072014e-308", "1e308", "1e-320", "9007199254740993",
      ".5", "5.", "-.25e+3", "00012.5000",
    ]
    for _ in 0..<20_000 {
      let digits = Int.random(in: 1...20, using: &rng)
      var s = String((0..<digits).map { _ in Character(String(Int.random(in: 0...9))) })
      if Bool.random() { s.insert(".", at: s.index(s.startIndex, offsetBy: digits / 2)) }
      if Bool.random() { s += "e\(Int.random(in: -30...30))" }
      if Bool.random() { s = "-" + s }
      samples.append(s)
    }
    for s in samples {
      let bytes = Array(s.utf8)
      let ours = bytes.withUnsafeBufferPointer { parser.parse($0.baseAddress!, $0.count) }
      let reference = strtod(s, nil)
      XCTAssertEqual(ours?.bitPattern, reference.bitPattern, s)
    }
    for bad in ["abc", "1.2.3", "1e", "--1", "1,5", "."] {
      let bytes = Array(bad.utf8)
      XCTAssertNil(bytes.withUnsafeBufferPointer { parser.parse($0.baseAddress!, $0.count) }, bad)
    }
  }

  func testPlainNumbersStopAtTheFieldEnd() {
    func plain(_ text: String) -> (Double?, Int) {
      let bytes = Array(text.utf8)
      var i = 0
      let v = bytes.withUnsafeBufferPointer {
        NumberParser.parsePlain($0.baseAddress!, &i, $0.count)
      }
      return (v, i)
    }
    XCTAssertEqual(plain("-12.5,7").0, -12.5)
    XCTAssertEqual(plain("-12.5,7").1, 5)
    XCTAssertEqual(plain("1011.9\n").1, 6)
    XCTAssertEqual(plain("0.30000000000000004").0, nil)  // 17 digits: left to the general parser
    XCTAssertEqual(plain("-0").0?.sign, .minus)
    XCTAssertEqual(plain(".5").0, 0.5)
    XCTAssertEqual(plain("5.").0, 5)
    // Not plain: the position stays where it was.
    for text in ["", ",", "-", ".", "1e5", " 1", "1 ", "NA", "1\r\n", "12a"] {
      XCTAssertNil(plain(text).0, text)
      XCTAssertEqual(plain(text).1, 0, text)
    }
  }

  func testRaggedRow() throws {
    let files = try TestFiles()
    let path = try files.write("r.csv", "y,a,b\n1,2,3\n4,5\n")
    let error = assertDataError(.raggedRow) {
      try DataPipeline.fit(path: path, options: PipelineOptions(label: "y"), as: Double.self)
    }
    XCTAssertEqual(error?.line, 3)
    XCTAssertEqual(error?.description, "\(path):3: expected 3 fields as in the header, found 2")
  }

  func testNonNumericValueNamesFileLineColumnAndValue() throws {
    let files = try TestFiles()
    let path = try files.write(
      "flights.csv", "arr_delay,month,dep_delay\n1,2,3\n\"4\",\"5\nx\",6\n7,8,abc\n")
    let error = assertDataError(.notANumber) {
      try DataPipeline.fit(
        path: path, options: PipelineOptions(label: "arr_delay"), as: Double.self)
    }
    // Line 2 is the quoted "5\nx" first: it is reported on its own (earlier) line.
    XCTAssertEqual(error?.line, 3)
    XCTAssertEqual(error?.column, 2)
    XCTAssertEqual(
      error?.description, "\(path):3:2: expected a number in column 'month', found '5\nx'")
    let fixed = try files.write("flights2.csv", "arr_delay,month,dep_delay\n1,2,3\n7,8,abc\n")
    let second = assertDataError(.notANumber) {
      try DataPipeline.fit(
        path: fixed, options: PipelineOptions(label: "arr_delay"), as: Double.self)
    }
    XCTAssertEqual(
      second?.description, "\(fixed):3:3: expected a number in column 'dep_delay', found 'abc'")
  }

  func testUnterminatedQuote() throws {
    let files = try TestFiles()
    let path = try files.write("u.csv", "y,a\n1,2\n3,\"4\n5,6\n")
    let error = assertDataError(.unterminatedQuote) {
      try DataPipeline.fit(path: path, options: PipelineOptions(label: "y"), as: Double.self)
    }
    XCTAssertEqual(error?.line, 3)
  }

  func testStrayQuoteIsAnError() throws {
    let files = try TestFiles()
    let path = try files.write("s.csv", "y,a\n1,5'10\"\n")
    assertDataError(.unexpectedQuote) {
      try DataPipeline.fit(path: path, options: PipelineOptions(label: "y"), as: Double.self)
    }
  }

  func testEmptyFileAndHeaderOnly() throws {
    let files = try TestFiles()
    let empty = try files.write("e.csv", "")
    assertDataError(.emptyFile) {
      try DataPipeline.fit(path: empty, options: PipelineOptions(label: "y"), as: Double.self)
    }
    let headerOnly = try files.write("h.csv", "y,a,b\r\n")
    assertDataError(.noDataRows) {
      try DataPipeline.fit(
        path: headerOnly, options: PipelineOptions(label: "y"), as: Double.self)
    }
  }

  func testLabelMissingAndDuplicateColumns() throws {
    let files = try TestFiles()
    let path = try files.write("l.csv", "a,b\n1,2\n")
    let error = assertDataError(.missingLabelColumn) {
      try DataPipeline.fit(path: path, options: PipelineOptions(label: "y"), as: Double.self)
    }
    XCTAssertTrue(error?.message.contains("'y'") ?? false)
    let duplicate = try files.write("d.csv", "y,a,a\n1,2,3\n")
    let dup = assertDataError(.duplicateColumn) {
      try DataPipeline.fit(
        path: duplicate, options: PipelineOptions(label: "y"), as: Double.self)
    }
    XCTAssertEqual(dup?.column, 3)
    var options = PipelineOptions(label: "a")
    options.exclude = ["nope"]
    assertDataError(.unknownColumn) {
      try DataPipeline.fit(path: path, options: options, as: Double.self)
    }
  }

  func testErrorDescriptionFormat() {
    let e = DataError(
      .notANumber, "expected a number in column 'dep_delay', found 'abc'", file: "flights.csv",
      line: 12, column: 5)
    XCTAssertEqual(
      e.description, "flights.csv:12:5: expected a number in column 'dep_delay', found 'abc'")
    XCTAssertEqual(DataError(.io, "x").description, "x")
    XCTAssertEqual(e.code.description, "notANumber")
  }
}
