import Foundation
import TaskGraphLinalg
import XCTest

@testable import TaskGraphData

#if canImport(Glibc)
  import Glibc
#elseif canImport(Darwin)
  import Darwin
#endif

/// Every file the pipeline reads either parses correctly or fails with a `DataError` naming
/// the file (and the line and column where there is one): no non-finite or hexadecimal
/// numbers, no repaired text, no size taken on trust, no non-regular files.
final class InputValidationTests: XCTestCase {
  private func fit<T: BLASScalar>(
    _ path: String, label: String? = nil, categorical: [String] = [],
    limits: DataLimits = .defaults, as: T.Type = Double.self
  ) throws -> PreparedData<T> {
    // CSV files here name their label `y`; LIBSVM and .npy ones hold it first, unnamed.
    let unnamed = [".npy", ".npy.gz", ".svm", ".libsvm", ".txt"].contains { path.hasSuffix($0) }
    var options = PipelineOptions(label: label ?? (unnamed ? PipelineOptions.unnamedLabel : "y"))
    options.categorical = categorical
    options.limits = limits
    return try DataPipeline.fit(path: path, options: options, as: T.self)
  }

  /// A `.npy` file with `header`'s shape and dtype and `payload` as its data.
  private func npy(descr: String = "<f8", shape: String, payload: [UInt8]) -> [UInt8] {
    var header = "{'descr': '\(descr)', 'fortran_order': False, 'shape': \(shape), }"
    while (10 + header.utf8.count + 1) % 64 != 0 { header += " " }
    header += "\n"
    var bytes: [UInt8] = [0x93] + Array("NUMPY".utf8) + [1, 0]
    bytes += [UInt8(header.utf8.count & 0xff), UInt8(header.utf8.count >> 8)]
    return bytes + Array(header.utf8) + payload
  }

  private func doubles(_ values: [Double]) -> [UInt8] {
    values.flatMap { v in withUnsafeBytes(of: v.bitPattern.littleEndian) { Array($0) } }
  }

  // MARK: - Numbers

  func testParserRefusesNonFiniteAndHexadecimalNumbers() {
    var parser = NumberParser()
    func parse(_ s: String) -> Double? {
      let bytes = Array(s.utf8)
      return bytes.withUnsafeBufferPointer { parser.parse($0.baseAddress!, $0.count) }
    }
    for bad in [
      "inf", "-inf", "+inf", "Inf", "INFINITY", "Infinity", "nan", "NAN", "-nan", "nan(1)",
      "1e400", "-1e400", "1e999999", "0x10", "0X10", "-0x1p3", "0x1.8p1", " inf ",
    ] {
      XCTAssertNil(parse(bad), bad)
    }
    // Finite extremes and underflow to zero still read as strtod reads them.
    XCTAssertEqual(parse("1.7976931348623157e308"), .greatestFiniteMagnitude)
    XCTAssertEqual(parse("4.9e-324"), .leastNonzeroMagnitude)
    XCTAssertEqual(parse("1e-400"), 0)
    XCTAssertEqual(parse("0010"), 10)
  }

  func testNonFiniteCSVValueNamesFileLineColumnAndValue() throws {
    let files = try TestFiles()
    let cases: [(String, String)] = [
      ("inf", "expected a finite number in column 'a', found 'inf'"),
      ("-Infinity", "expected a finite number in column 'a', found '-Infinity'"),
      ("1e400", "expected a finite number in column 'a', found '1e400'"),
      ("\"1e400\"", "expected a finite number in column 'a', found '1e400'"),
      (
        "nan",
        "expected a finite number in column 'a', found 'nan' (a missing value is written as an "
          + "empty field, NA or NaN)"
      ),
      ("0x10", "expected a decimal number (hexadecimal is not read) in column 'a', found '0x10'"),
    ]
    for (k, (value, message)) in cases.enumerated() {
      let path = try files.write("n\(k).csv", "y,a,b\n1,2,3\n4,\(value),6\n")
      let error = assertDataError(.notANumber) { try fit(path) }
      XCTAssertEqual(error?.description, "\(path):3:2: \(message)", value)
    }
    // The label too.
    let label = try files.write("label.csv", "y,a\n1,2\n-inf,3\n")
    let error = assertDataError(.notANumber) { try fit(label) }
    XCTAssertEqual(
      error?.description, "\(label):3:1: expected a finite number in column 'y', found '-inf'")
    // The missing-value markers are still missing values.
    let missing = try files.write("m.csv", "y,a\n1,NA\n2,NaN\n3,\n4,5\n")
    XCTAssertEqual(try fit(missing).droppedRows, 3)
  }

  func testFloat32MatrixRefusesValuesBeyondFloatRange() throws {
    let files = try TestFiles()
    let path = try files.write("big.csv", "y,a\n1,2\n2,1e300\n")
    // float64 reads it; float32 would silently store infinity.
    XCTAssertEqual(try fit(path, as: Double.self).x.storage, [2, 1e300])
    let error = assertDataError(.notANumber) { try fit(path, as: Float.self) }
    XCTAssertEqual(error?.line, 3)
    XCTAssertEqual(error?.column, 2)
    XCTAssertTrue(error?.message.contains("float32") ?? false, "\(String(describing: error))")
    // Float's own largest value, as printed, still reads.
    let edge = try files.write("edge.csv", "y,a\n1,3.4028235e38\n")
    XCTAssertEqual(try fit(edge, as: Float.self).x.storage, [.greatestFiniteMagnitude])
  }

  func testLIBSVMLabelsAndValuesMustBeFinite() throws {
    let files = try TestFiles()
    let cases: [(String, Int, Int, String)] = [
      ("1 1:2\ninf 1:1\n", 2, 1, "expected a finite number as the label, found 'inf'"),
      ("1 1:2 3:1e400\n", 1, 3, "expected a finite number for feature 3, found '1e400'"),
      ("1 2:nan\n", 1, 2, "expected a finite number for feature 2, found 'nan'"),
      (
        "0x1 2:1\n", 1, 1,
        "expected a decimal number (hexadecimal is not read) as the label, found '0x1'"
      ),
    ]
    for (k, (text, line, column, message)) in cases.enumerated() {
      let path = try files.write("v\(k).svm", text)
      let error = assertDataError(.notANumber) { try fit(path) }
      XCTAssertEqual(error?.description, "\(path):\(line):\(column): \(message)", text)
    }
  }

  func testNPYNonFiniteElementNamesRowAndColumn() throws {
    let files = try TestFiles()
    for (k, bad) in [Double.infinity, -.infinity, .nan].enumerated() {
      let path = try files.write(
        "e\(k).npy", npy(shape: "(2, 3)", payload: doubles([1, 2, 3, 4, 5, bad])))
      let place = "element [1, 2] (row 2, column 3)"
      let error = assertDataError(.notANumber) { try NPY.read(path: path, as: Double.self) }
      XCTAssertEqual(
        error?.description, "\(path): expected a finite number at \(place), found \(bad)")
      XCTAssertEqual(error?.column, 3)
      let viaPipeline = assertDataError(.notANumber) { try fit(path) }
      XCTAssertEqual(viaPipeline?.message, error?.message)
    }
    // A finite float64 beyond Float's range, read as Float.
    let big = try files.write("big.npy", npy(shape: "(1, 2)", payload: doubles([1, 1e300])))
    for error in [
      assertDataError(.notANumber) { try NPY.read(path: big, as: Float.self) },
      assertDataError(.notANumber) { try fit(big, as: Float.self) },
    ] {
      XCTAssertTrue(
        error?.message.hasPrefix(
          "expected a number within float32's range (±3.4e38) at element [0, 1] (row 1, column "
            + "2), found 1e+300") ?? false, "\(String(describing: error))")
    }
  }

  // MARK: - Text

  func testInvalidUTF8InHeaderOrCategoricalValueIsAnError() throws {
    let files = try TestFiles()
    let header = try files.write("h.csv", Array("y,caf".utf8) + [0xE9] + Array("\n1,2\n".utf8))
    let error = assertDataError(.invalidText) { try fit(header) }
    XCTAssertEqual(
      error?.description,
      "\(header):1:2: expected UTF-8 text in the name of column 2, found 'caf\\xE9' (invalid "
        + "byte at position 4)")
    // Two values that would both be repaired into "caf\u{FFFD}" must not become one category.
    let values =
      Array("y,city\n1,caf".utf8) + [0xE9] + Array("\n2,caf".utf8) + [0xE8] + Array("\n".utf8)
    let categorical = try files.write("c.csv", values)
    let value = assertDataError(.invalidText) { try fit(categorical, categorical: ["city"]) }
    XCTAssertEqual(
      value?.description,
      "\(categorical):2:2: expected UTF-8 text in column 'city', found 'caf\\xE9' (invalid "
        + "byte at position 4)")
    // The same inside quotes (the general path), on a later line.
    let quoted = try files.write(
      "q.csv", Array("y,city\n1,\"ok\"\n2,\"x".utf8) + [0xFF] + Array("\"\n".utf8))
    let error2 = assertDataError(.invalidText) { try fit(quoted, categorical: ["city"]) }
    XCTAssertEqual(error2?.line, 3)
    XCTAssertEqual(error2?.column, 2)
    // Valid multi-byte text is unchanged.
    let good = try files.write("g.csv", "y,city\n1,café\n2,Zürich\n3,café\n")
    XCTAssertEqual(
      try fit(good, categorical: ["city"]).featureNames, ["city=Zürich", "city=café"])
  }

  // MARK: - Sizes

  func testNPYShapeLargerThanTheFileIsRefusedBeforeAllocating() throws {
    let files = try TestFiles()
    let path = try files.write(
      "huge.npy", npy(shape: "(1000000000, 101)", payload: doubles([1, 2, 3])))
    let expected =
      "\(path): the .npy file is truncated: its header declares 1000000000×101 float64 "
      + "(808 GB, 808000000000 bytes) but the file holds 24 bytes of data"
    XCTAssertEqual(
      assertDataError(.npyTruncated) { try NPY.read(path: path, as: Double.self) }?.description,
      expected)
    XCTAssertEqual(assertDataError(.npyTruncated) { try fit(path) }?.description, expected)
    XCTAssertEqual(
      assertDataError(.npyTruncated) { try DataPipeline.columns(path: path) }?.description,
      expected)
    // A shape whose byte size overflows Int.
    let overflow = try files.write(
      "overflow.npy", npy(shape: "(4611686018427387904, 4)", payload: []))
    assertDataError(.npyTruncated) { try NPY.read(path: overflow, as: Double.self) }
    // No rows but 10¹² columns: nothing to be short of, but the names alone would not fit.
    let wide = try files.write("wide.npy", npy(shape: "(0, 1000000000000)", payload: []))
    let error = assertDataError(.tooLarge) { try DataPipeline.columns(path: wide) }
    XCTAssertTrue(error?.message.contains("8 TB") ?? false, "\(String(describing: error))")
  }

  func testLIBSVMHugeFeatureIndexIsRefusedWithTheSize() throws {
    let files = try TestFiles()
    let path = try files.write("wide.svm", "1 1:0.5\n0 3:1 1000000000000:2\n")
    let error = assertDataError(.tooLarge) { try fit(path) }
    XCTAssertEqual(error?.line, 2)
    XCTAssertEqual(error?.column, 3)
    XCTAssertTrue(
      error?.message.hasPrefix(
        "feature index 1000000000000 would make the dense matrix 2 rows × 1000000000000 columns"
          + " of float64 (16 TB), more than the ") ?? false,
      "\(String(describing: error))")
    assertDataError(.tooLarge) { try DataPipeline.columns(path: path) }
    // With memory to spare, an index beyond Int32 is refused rather than clamped.
    let unlimited = DataLimits(memoryBytes: .max, decompressedBytes: .max)
    let beyond = try files.write("beyond.svm", "1 3000000000:1\n")
    let clamped = assertDataError(.invalidIndex) { try fit(beyond, limits: unlimited) }
    XCTAssertEqual(
      clamped?.description,
      "\(beyond):1:2: feature index 3000000000 is beyond the largest supported index 2147483647"
    )
    // Rows that add up: each fits, the densified whole does not; the widest line is named.
    let small = DataLimits(memoryBytes: 10_000, decompressedBytes: .max)
    let tall = try files.write(
      "tall.svm", "1 1:1\n1 250:1\n" + String(repeating: "1 1:1\n", count: 10))
    let rows = assertDataError(.tooLarge) { try fit(tall, limits: small) }
    XCTAssertEqual(rows?.line, 2)
    XCTAssertTrue(
      rows?.message.hasPrefix("feature index 250 would make the dense matrix 6 rows") ?? false,
      "\(String(describing: rows))")
  }

  func testOneHotMatrixBeyondMemoryLimitIsRefusedWithTheSize() throws {
    let files = try TestFiles()
    var text = "y,id,a\n"
    for r in 0..<600 { text += "\(r),id\(r),\(r)\n" }
    let path = try files.write("ids.csv", text)
    let limits = DataLimits(memoryBytes: 1 << 20, decompressedBytes: .max)
    let error = assertDataError(.tooLarge) { try fit(path, categorical: ["id"], limits: limits) }
    XCTAssertEqual(
      error?.description,
      "\(path): the prepared matrix would be 600 rows × 601 columns of float64 (2.88 MB), more "
        + "than the 1.05 MB memory limit; one-hot encoding column 'id' gives 600 of the "
        + "columns (one per distinct value)")
    // The same file within the default limits (physical memory) is read.
    XCTAssertEqual(try fit(path, categorical: ["id"]).x.cols, 601)
    XCTAssertEqual(DataLimits.defaults.memoryBytes, Int(ProcessInfo.processInfo.physicalMemory))
  }

  func testColumnStoreBeyondMemoryLimitStopsReading() throws {
    let files = try TestFiles()
    let text = "y,a\n" + String(repeating: "1,2\n", count: 5000)
    let path = try files.write("rows.csv", text)
    let source = ByteSource.file(path: path, size: text.utf8.count)
    let header = try CSVReader.header(source, path: path)
    let spec = try ReadSpec(fitting: PipelineOptions(label: "y"), names: header.names, path: path)
    // 1024 rows of 16 bytes per 4 KiB window: over an 8 kB limit after the first window.
    let error = assertDataError(.tooLarge) {
      try CSVReader.load(
        source, path: path, range: header.dataStart..<text.utf8.count, header: header,
        roles: spec.roles, into: spec.makeTable(), window: 4096,
        limits: DataLimits(memoryBytes: 8000, decompressedBytes: .max))
    }
    XCTAssertEqual(error?.line, 1026)
    XCTAssertTrue(
      error?.description.hasSuffix(
        "rows.csv:1026: the 1024 rows read before this line take 16.4 kB in memory: the file "
          + "does not fit in the 8 kB memory limit")
        ?? false, "\(String(describing: error))")
  }

  func testHeaderOrRecordLongerThanTheMemoryLimitIsRefused() throws {
    let files = try TestFiles()
    let limits = DataLimits(memoryBytes: 1 << 20, decompressedBytes: .max)
    let long = String(repeating: "x", count: 5 << 20)
    let header = try files.write("header.csv", "y,\(long)\n1,2\n")
    let error = assertDataError(.tooLarge) { try fit(header, limits: limits) }
    XCTAssertEqual(
      error?.description,
      "\(header):1: the header row is longer than the 1.05 MB memory limit allows (no line end "
        + "in the first 1.05 MB)")
    // A record that never ends: the window stops growing at the limit, plain or streamed.
    let record = try files.write("record.csv", "y,c\n1,a\n2,\"\(long)\n")
    for path in [record, try files.gzip(record)] {
      let error = assertDataError(.tooLarge) { try fit(path, categorical: ["c"], limits: limits) }
      XCTAssertEqual(
        error?.description,
        "\(path):3: the record starting on this line is longer than the 1.05 MB memory limit "
          + "allows (a line without end, or a quote never closed?)")
    }
    // Within the default limits it is the syntax error it is.
    assertDataError(.unterminatedQuote) { try fit(record, categorical: ["c"]) }
  }

  func testGzipBombStopsAtTheLimitWithTheSizeReached() throws {
    let files = try TestFiles()
    // 4 MB of text that compresses about 500:1.
    let plain = try files.write("bomb.csv", "y,a\n" + String(repeating: "0,0\n", count: 1 << 20))
    let gz = try files.gzip(plain)
    let limits = DataLimits(memoryBytes: 1 << 20, decompressedBytes: 1 << 21)
    // Decompressed into memory (LIBSVM, .npy, shards): limited by memoryBytes.
    let inMemory = assertDataError(.tooLarge) { try InputFile.inflate(gz, limits: limits) }
    XCTAssertTrue(
      inMemory?.message.hasPrefix(
        "the decompressed data exceeds the 1.05 MB memory limit: stopped after ") ?? false,
      "\(String(describing: inMemory))")
    XCTAssertEqual(inMemory?.file, gz)
    // Streamed (a whole CSV file): limited by decompressedBytes.
    let streamed = assertDataError(.tooLarge) { try fit(gz, limits: limits) }
    XCTAssertTrue(
      streamed?.message.hasPrefix(
        "the decompressed data exceeds the 2.1 MB limit on decompressed data: stopped after ")
        ?? false, "\(String(describing: streamed))")
    let shard = assertDataError(.tooLarge) {
      var options = PipelineOptions(label: "y")
      options.limits = limits
      return try DataPipeline.fit(
        path: gz, options: options, shard: Shard(index: 0, count: 2), as: Double.self)
    }
    XCTAssertNotNil(shard)
    // Within the limits it reads.
    XCTAssertEqual(try fit(gz).x.rows, 1 << 20)
  }

  // MARK: - Not regular files

  func testFIFOAndDirectoryAreNotRegularFiles() throws {
    let files = try TestFiles()
    for name in ["f.csv", "f.csv.gz", "f.svm", "f.npy"] {
      let fifo = files.directory.appendingPathComponent(name).path
      XCTAssertEqual(mkfifo(fifo, 0o600), 0)
      // Opening a FIFO for reading would wait for a writer: this must fail at once.
      let error = assertDataError(.notARegularFile) { try fit(fifo) }
      XCTAssertEqual(
        error?.description,
        "\(fifo): not a regular file (it is a FIFO (named pipe)); expected a data file")
      assertDataError(.notARegularFile) { try DataPipeline.columns(path: fifo) }
    }
    let directory = files.directory.appendingPathComponent("d.csv")
    try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: false)
    let error = assertDataError(.notARegularFile) { try fit(directory.path) }
    XCTAssertEqual(
      error?.description,
      "\(directory.path): not a regular file (it is a directory); expected a data file")
    assertDataError(.notARegularFile) { try NPY.read(path: "/dev/null", as: Double.self) }
  }

  // MARK: - Fitting

  func testFittingRefusesACategoricalColumnWithoutValues() throws {
    let files = try TestFiles()
    let path = try files.write("empty.csv", "y,a,c\n1,2,\n3,4,NA\n")
    var options = PipelineOptions(label: "y")
    options.categorical = ["c"]
    options.missing = .mean
    let error = assertDataError(.noFeatures) {
      try DataPipeline.fitPipeline(path: path, options: options)
    }
    XCTAssertEqual(
      error?.description,
      "\(path): categorical column 'c' has no value in the 2 rows kept for fitting, so one-hot "
        + "encoding gives it no features (exclude it)")
  }

  func testFittedPipelineProblems() {
    let good = FittedPipeline(
      label: "y",
      columns: [
        .init(name: "a", kind: .numeric, fill: 1.5),
        .init(name: "c", kind: .categorical(vocabulary: ["p", "q"])),
      ], missing: .mean, means: [0.5, 0, 0], scales: [2, 1, 1])
    XCTAssertNil(good.problem())
    var p = good
    p.scales = [0, 1, 1]
    XCTAssertEqual(
      p.problem(),
      "scales[0] is 0.0: expected a finite positive number (a standard deviation; a zero "
        + "deviation is stored as 1)")
    p = good
    p.means = [.nan, 0, 0]
    XCTAssertEqual(p.problem(), "means[0] is nan: expected a finite number")
    p = good
    p.means = [0, 0]
    XCTAssertEqual(p.problem(), "means has 2 entries but there are 3 features")
    p = good
    p.scales = nil
    XCTAssertEqual(p.problem(), "means is given without scales")
    p = good
    p.columns[1].kind = .categorical(vocabulary: [])
    XCTAssertEqual(
      p.problem(),
      "columns[1].kind.categorical.vocabulary is empty: expected the values of column 'c'")
    p = good
    p.columns[1].kind = .categorical(vocabulary: ["p", "p"])
    XCTAssertEqual(
      p.problem(), "columns[1].kind.categorical.vocabulary[1] 'p' repeats vocabulary[0]")
    p = good
    p.columns[1].name = "a"
    XCTAssertEqual(p.problem(), "columns[1].name 'a' repeats columns[0].name")
    p = good
    p.columns[0].fill = .infinity
    XCTAssertEqual(p.problem(), "columns[0].fill is inf: expected a finite number")
    p = good
    p.featureNames = ["a", "c=p"]
    XCTAssertEqual(p.problem(), "feature_names has 2 entries but the columns give 3 features")
    p = good
    p.featureNames[2] = "c=r"
    XCTAssertEqual(p.problem(), "feature_names[2] is 'c=r' but the columns give 'c=q'")
  }
}
