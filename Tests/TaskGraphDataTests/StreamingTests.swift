import Foundation
import Synchronization
import TaskGraphLinalg
import XCTest

@testable import TaskGraphData

/// The streaming input layer: gzip decompression in pieces, read-ahead on a thread, windows
/// over a source, and CSV parsing across window boundaries.
final class StreamingTests: XCTestCase {
  /// Deterministic text with records of varied lengths.
  private func text(lines: Int) -> String {
    (0..<lines).map { "\($0),\(String(repeating: "x", count: $0 % 37)),\(Double($0) / 8)\n" }
      .joined()
  }

  /// Everything `reader` produces, read `piece` bytes at a time.
  private func drain(_ reader: inout some ByteReader, piece: Int) throws -> [UInt8] {
    var out: [UInt8] = []
    var buffer = [UInt8](repeating: 0, count: piece)
    while true {
      let n = try buffer.withUnsafeMutableBytes { try reader.read(into: $0) }
      out += buffer[0..<n]
      if n < piece { return out }
    }
  }

  func testGzipStreamInPiecesEqualsTheSystemGzip() throws {
    let files = try TestFiles()
    let plain = try files.write("a.csv", text(lines: 5000))
    let gz = try files.gzip(plain)
    let expected = Array(try Data(contentsOf: URL(fileURLWithPath: plain)))
    for piece in [1, 7, 4096, 1 << 20] {
      var stream = try GzipStream(path: gz)
      XCTAssertEqual(try drain(&stream, piece: piece), expected, "piece \(piece)")
    }
    XCTAssertEqual(try InputFile.inflate(gz), expected)
    XCTAssertEqual(GzipStream.sizeHint(gz), expected.count)
  }

  func testGzipMembersAreConcatenatedAndTrailingGarbageIgnored() throws {
    let files = try TestFiles()
    let first = try files.gzip(try files.write("1.csv", "y,a\n1,2\n"))
    let second = try files.gzip(try files.write("2.csv", "3,4\n5,6\n"))
    let joined =
      Array(try Data(contentsOf: URL(fileURLWithPath: first)))
      + Array(try Data(contentsOf: URL(fileURLWithPath: second)))
    let both = try files.write("both.csv.gz", joined)
    XCTAssertEqual(try InputFile.inflate(both), Array("y,a\n1,2\n3,4\n5,6\n".utf8))
    let data = try DataPipeline.fit(
      path: both, options: PipelineOptions(label: "y"), as: Double.self)
    XCTAssertEqual(data.y, [1, 3, 5])
    // As gzread does: bytes after the last member that are not a gzip header are ignored.
    let garbage = try files.write("garbage.csv.gz", joined + Array("not gzip".utf8))
    XCTAssertEqual(try InputFile.inflate(garbage), Array("y,a\n1,2\n3,4\n5,6\n".utf8))
    // A second member cut short is an error, not a silently shorter file.
    let cut = try files.write("cut.csv.gz", Array(joined.dropLast(12)))
    let error = assertDataError(.corruptGzip) { try InputFile.inflate(cut) }
    XCTAssertEqual(error?.message, "corrupted gzip data: unexpected end of the compressed stream")
  }

  func testReadAheadGivesTheInnerBytesInOrder() throws {
    let files = try TestFiles()
    let gz = try files.gzip(try files.write("a.csv", text(lines: 3000)))
    let expected = try InputFile.inflate(gz)
    for (chunk, depth, piece) in [(1, 1, 1), (5, 2, 3), (4096, 4, 1000), (1 << 20, 4, 1 << 16)] {
      var reader = ReadAheadReader(chunkSize: chunk, depth: depth) { try GzipStream(path: gz) }
      XCTAssertEqual(try drain(&reader, piece: piece), expected, "chunk \(chunk)")
    }
  }

  func testReadAheadPassesOnErrorsAndStopsItsThreadWhenReleased() throws {
    let files = try TestFiles()
    // Opening fails on the thread; the consumer's first read throws the error.
    let nowhere = files.directory.path + "/nope.gz"
    var missing = ReadAheadReader { try GzipStream(path: nowhere) }
    XCTAssertThrowsError(try drain(&missing, piece: 16)) { error in
      XCTAssertEqual((error as? DataError)?.code, .io)
    }
    // A reader released while its producer waits on a full queue: deinit cancels the
    // producer and joins it, so the inner reader is gone once the outer one is.
    let released = Flag()
    do {
      var reader = ReadAheadReader(chunkSize: 4, depth: 1) {
        EndlessReader(onDeinit: released)
      }
      var four = [UInt8](repeating: 0, count: 4)
      let n = try four.withUnsafeMutableBytes { try reader.read(into: $0) }
      XCTAssertEqual(four[0..<n], [0, 1, 2, 3])
      XCTAssertFalse(released.isSet)
    }
    XCTAssertTrue(released.isSet)
  }

  func testWindowsCarryUnconsumedBytesAndGrowForLongRecords() throws {
    let files = try TestFiles()
    let content = text(lines: 400) + String(repeating: "z", count: 300) + "\n"
    let plain = try files.write("w.csv", content)
    let gz = try files.gzip(plain)
    let expected = Array(content.utf8)
    let sources: [ByteSource] = [
      .file(path: plain, size: expected.count), .gzip(path: gz, readAhead: false),
      .gzip(path: gz, readAhead: true), .memory(expected),
    ]
    for source in sources {
      // Consume whole lines only: a window without a line feed must grow.
      var seen: [UInt8] = []
      var windows = 0
      try source.windows(from: 10, size: 16) { window, offset, atEOF in
        windows += 1
        XCTAssertEqual(offset, 10 + seen.count)
        guard let lastNewline = window.lastIndex(of: CSVScanner.newline) else {
          XCTAssertFalse(atEOF)
          return 0
        }
        let consumed = atEOF ? window.count : lastNewline + 1
        seen += window[0..<consumed]
        return atEOF ? nil : consumed
      }
      XCTAssertEqual(seen, Array(expected[10...]), "\(source)")
      if case .memory = source {
        XCTAssertEqual(windows, 1)
      } else {
        XCTAssertGreaterThan(windows, 100)
      }
    }
  }

  func testCSVAcrossTinyWindowsEqualsOneWindow() throws {
    // Quoted fields with newlines, CRLF, blank lines, missing values and a last record without
    // a line feed, cut at every possible place by 1- to 9-byte windows.
    let csv =
      "y,name,x,skip\r\n1,\"a, \"\"b\"\"\nc\",2.5,q\r\n\r\n2,plain,NA,q\n3,,-4e2,\"s\"\n"
      + "4,plain,7,q\n\n5,\"\",8,q"
    let bytes = Array(csv.utf8)
    let source = ByteSource.memory(bytes)
    let header = try CSVReader.header(source, path: "t.csv")
    var options = PipelineOptions(label: "y")
    options.categorical = ["name"]
    options.exclude = ["skip"]
    let spec = try ReadSpec(fitting: options, names: header.names, path: "t.csv")
    func load(_ source: ByteSource, window: Int) throws -> RawTable {
      let table = spec.makeTable()
      try CSVReader.load(
        source, path: "t.csv", range: header.dataStart..<source.size, header: header,
        roles: spec.roles, into: table, window: window)
      return table
    }
    let whole = try load(source, window: 1 << 20)
    XCTAssertEqual(whole.rows, 5)
    XCTAssertEqual((0..<5).map { whole.label($0) }, [1, 2, 3, 4, 5])
    XCTAssertEqual(whole.categories[0], ["a, \"b\"\nc", "plain"])
    XCTAssertEqual((0..<5).map { whole.code($0, 0) }, [0, 1, -1, 1, -1])
    XCTAssertEqual(whole.numeric(0, 0), 2.5)
    XCTAssertTrue(whole.numeric(1, 0).isNaN)
    XCTAssertEqual(whole.numeric(2, 0), -400)
    let files = try TestFiles()
    let path = try files.write("t.csv", bytes)
    for window in 1...9 {
      let part = try load(.file(path: path, size: bytes.count), window: window)
      XCTAssertEqual(part.rows, whole.rows, "window \(window)")
      XCTAssertEqual(part.categories, whole.categories, "window \(window)")
      for r in 0..<whole.rows {
        XCTAssertEqual(part.label(r), whole.label(r))
        XCTAssertEqual(part.code(r, 0), whole.code(r, 0))
        XCTAssertEqual(part.numeric(r, 0).bitPattern, whole.numeric(r, 0).bitPattern)
      }
    }
  }

  func testTwoHalvesOnTwoThreadsEqualOnePass() throws {
    // Quoted newlines and commas (the cut must be at a true record start), categories first
    // seen in the second half, missing values.
    var csv = "id,note,city,value\n"
    for i in 0..<500 {
      let note = i % 3 == 0 ? "\"two\nlines, \"\"q\"\"\"" : "plain"
      let city = i < 250 ? "c\(i % 4)" : "d\(i % 5)"
      csv += "\(i),\(note),\(i % 7 == 0 ? "" : city),\(i % 11 == 0 ? "NA" : "\(i / 4)")\n"
    }
    let files = try TestFiles()
    let bytes = Array(csv.utf8)
    let path = try files.write("p.csv", bytes)
    let source = ByteSource.file(path: path, size: bytes.count)
    let header = try CSVReader.header(source, path: path)
    var options = PipelineOptions(label: "id")
    options.categorical = ["city"]
    options.exclude = ["note"]
    let spec = try ReadSpec(fitting: options, names: header.names, path: path)
    func load(threshold: Int) throws -> RawTable {
      let table = spec.makeTable()
      try CSVReader.load(
        source, path: path, range: header.dataStart..<bytes.count, header: header,
        roles: spec.roles, into: table, parallelThreshold: threshold)
      return table
    }
    let one = try load(threshold: .max)
    let two = try load(threshold: 1)
    XCTAssertEqual(one.rows, 500)
    XCTAssertEqual(two.rows, one.rows)
    XCTAssertEqual(two.categories, one.categories)
    XCTAssertEqual(one.categories[0], ["c1", "c2", "c3", "c0", "d0", "d1", "d3", "d4", "d2"])
    for r in 0..<500 {
      XCTAssertEqual(two.label(r), Double(r))
      XCTAssertEqual(two.code(r, 0), one.code(r, 0), "row \(r)")
      XCTAssertEqual(two.numeric(r, 0).bitPattern, one.numeric(r, 0).bitPattern, "row \(r)")
    }
    // Errors: one in the second half is reported with its line; with another in the first
    // half, that one (the first in the file) is reported, as in one pass.
    func loadFile(_ file: String, threshold: Int) throws {
      let size = try InputFile.size(file)
      let source = ByteSource.file(path: file, size: size)
      let header = try CSVReader.header(source, path: file)
      try CSVReader.load(
        source, path: file, range: header.dataStart..<size, header: header, roles: spec.roles,
        into: spec.makeTable(), parallelThreshold: threshold)
    }
    var broken = bytes
    let late = csv.range(of: "\n400,")!.lowerBound.utf16Offset(in: csv) + 1
    broken.replaceSubrange(late..<(late + 3), with: Array("xx0".utf8))
    let lateOnly = try files.write("late.csv", broken)
    let early = csv.range(of: "\n10,")!.lowerBound.utf16Offset(in: csv) + 1
    broken.replaceSubrange(early..<(early + 2), with: Array("yy".utf8))
    let both = try files.write("both.csv", broken)
    for (file, found) in [(lateOnly, "xx0"), (both, "yy")] {
      let parallel = assertDataError(.notANumber) { try loadFile(file, threshold: 1) }
      let single = assertDataError(.notANumber) { try loadFile(file, threshold: .max) }
      XCTAssertEqual(parallel?.message, "expected a number in column 'id', found '\(found)'")
      XCTAssertEqual(parallel, single)
    }
  }

  func testErrorsFromAStreamedGzipNameTheLine() throws {
    let files = try TestFiles()
    let gz = try files.gzip(try files.write("e.csv", "y,a,b\n1,2,3\n\n4,x,6\n"))
    let error = assertDataError(.notANumber) {
      try DataPipeline.fit(path: gz, options: PipelineOptions(label: "y"), as: Double.self)
    }
    XCTAssertEqual(error?.description, "\(gz):4:2: expected a number in column 'a', found 'x'")
    // A record that is both ragged and holds a bad number reports the field count first, as
    // the reference scanner does.
    let both = try files.write("both.csv", "y,a,b\n1,x\n")
    let ragged = assertDataError(.raggedRow) {
      try DataPipeline.fit(path: both, options: PipelineOptions(label: "y"), as: Double.self)
    }
    XCTAssertEqual(ragged?.line, 2)
    let extra = try files.write("extra.csv", "y,a\n1,2,3\n")
    assertDataError(.raggedRow) {
      try DataPipeline.fit(path: extra, options: PipelineOptions(label: "y"), as: Double.self)
    }
  }

  func testColumnsOfAGzipFileReadOnlyItsStart() throws {
    let files = try TestFiles()
    // The rows after the header are not valid gzip; only a full decompression would notice.
    let gz = try files.gzip(try files.write("h.csv", "a,b\n" + text(lines: 20000)))
    var bytes = Array(try Data(contentsOf: URL(fileURLWithPath: gz)))
    for k in (bytes.count - 200)..<(bytes.count - 8) { bytes[k] ^= 0x5A }
    let damaged = try files.write("h2.csv.gz", bytes)
    XCTAssertEqual(try DataPipeline.columns(path: damaged), ["a", "b"])
    assertDataError(.corruptGzip) {
      try DataPipeline.fit(path: damaged, options: PipelineOptions(label: "a"), as: Double.self)
    }
  }
}

/// A thread-safe flag.
private final class Flag: Sendable {
  private let value = Mutex(false)
  var isSet: Bool { value.withLock { $0 } }
  func set() { value.withLock { $0 = true } }
}

/// Bytes 0, 1, 2, … forever; sets a flag when deinitialised.
private final class EndlessReader: ByteReader {
  private let onDeinit: Flag
  private var next: UInt8 = 0
  init(onDeinit: Flag) { self.onDeinit = onDeinit }
  deinit { onDeinit.set() }
  func read(into buffer: UnsafeMutableRawBufferPointer) throws -> Int {
    for k in 0..<buffer.count {
      buffer[k] = next
      next &+= 1
    }
    return buffer.count
  }
}
