/// Reads LIBSVM / SVMlight text (`label index:value ...`, 1-based increasing indices) and
/// densifies it into a `RawTable` whose feature columns are named `f1`, `f2`, ….
///
/// `qid:` tokens are ignored and `#` starts a comment. Sharding uses byte ranges at line
/// boundaries (no quoting exists in this format); gzip input is decompressed first.
///
/// Labels and values must be finite decimal numbers (see `NumberParser`). A feature index
/// sets the width of the dense matrix, so it is checked as it is read: an index that would
/// make the rows read so far, densified, larger than `DataLimits.memoryBytes` is
/// `DataError.Code.tooLarge` naming the line and the index, and no index may exceed
/// `maxIndex` (indices are stored as 32-bit integers).
enum LIBSVMReader {
  /// The largest feature index read (2³¹ − 1).
  static let maxIndex = Int(Int32.max)

  /// The sparse rows of one read, before densifying.
  struct Sparse {
    var labels: [Double] = []
    var rowStarts: [Int] = [0]
    var indices: [Int32] = []
    var values: [Double] = []
    /// The largest index seen (the dense width).
    var width = 0
  }

  /// The name of 1-based feature `index`.
  static func name(_ index: Int) -> String { "f\(index)" }

  /// What a read may allocate, and for messages.
  private struct Budget {
    var limits: DataLimits
    /// Bytes per element of the dense matrix (8 for float64, 4 for float32).
    var valueBytes: Int
    var path: String
  }

  /// Parses the records that start in the shard's byte range, within `limits` for a dense
  /// matrix of `valueBytes`-byte elements.
  static func read(
    path: String, shard: Shard?, limits: DataLimits = .defaults, valueBytes: Int = 8
  ) throws -> Sparse {
    let source = try CSVReader.source(path, limits: limits)
    let range = try CSVReader.range(shard, dataStart: 0, source, quoteAware: false)
    if range.count > limits.memoryBytes {
      throw DataError(
        .tooLarge,
        "the file holds \(DataLimits.bytes(range.count)) (\(range.count) bytes) to read, more "
          + "than \(limits.memoryText)", file: path)
    }
    let bytes = try source.read(range.lowerBound, range.count)
    var out = Sparse()
    var numbers = NumberParser()
    let budget = Budget(limits: limits, valueBytes: valueBytes, path: path)
    try bytes.withUnsafeBufferPointer { buf in
      let n = buf.count
      var pos = 0
      // Where the widest row so far starts.
      var widest = 0
      while pos < n {
        var lineEnd = pos
        while lineEnd < n && buf[lineEnd] != CSVScanner.newline { lineEnd += 1 }
        let start = pos
        let line = { source.lineNumber(at: range.lowerBound + start) }
        let width = out.width
        try parseLine(
          buf, pos, lineEnd, into: &out, numbers: &numbers, budget: budget, line: line)
        if out.width > width { widest = range.lowerBound + start }
        try check(out, budget, line: { source.lineNumber(at: widest) }, currentLine: line)
        pos = lineEnd + 1
      }
    }
    return out
  }

  /// Checks that the rows read so far fit in memory, sparse and densified.
  private static func check(
    _ out: Sparse, _ budget: Budget, line widestLine: () -> Int?, currentLine: () -> Int?
  ) throws {
    let rows = out.labels.count
    // Labels and row starts, 8 bytes each; an index (4) and a value (8) per entry.
    let sparseBytes = 16 * rows + 12 * out.indices.count
    if sparseBytes > budget.limits.memoryBytes {
      throw DataError(
        .tooLarge,
        "the \(rows) rows read up to this line take \(DataLimits.bytes(sparseBytes)) in "
          + "memory: the file does not fit in \(budget.limits.memoryText)",
        file: budget.path, line: currentLine())
    }
    try checkDense(
      rows: rows, width: out.width, budget.limits, valueBytes: budget.valueBytes,
      path: budget.path, line: widestLine())
  }

  /// Checks that `rows` (at least 1) × `width` elements of `valueBytes` fit in
  /// `limits.memoryBytes`; the error names feature index `width` (spelled `indexText`) and,
  /// when known, the line and column it is on.
  static func checkDense(
    rows: Int, width: Int, _ limits: DataLimits, valueBytes: Int, path: String,
    line: @autoclosure () -> Int? = nil, column: Int? = nil,
    indexText: @autoclosure () -> String? = nil
  ) throws {
    let rows = max(rows, 1)
    let bytes = DataLimits.product(rows, width, valueBytes)
    if let bytes, bytes <= limits.memoryBytes { return }
    let size = bytes.map { DataLimits.bytes($0) } ?? "more than 9.2 EB"
    let type = valueBytes == 4 ? "float32" : "float64"
    let index = indexText() ?? String(width)
    throw DataError(
      .tooLarge,
      "feature index \(index) would make the dense matrix \(rows) row\(rows == 1 ? "" : "s") × "
        + "\(index) columns of \(type) (\(size)), more than \(limits.memoryText)",
      file: path, line: line(), column: column)
  }

  private static func isSpace(_ b: UInt8) -> Bool {
    b == 0x20 || b == 0x09 || b == CSVScanner.carriageReturn
  }

  private static func parseLine(
    _ buf: UnsafeBufferPointer<UInt8>, _ start: Int, _ end: Int, into out: inout Sparse,
    numbers: inout NumberParser, budget: Budget, line: () -> Int?
  ) throws {
    let path = budget.path
    var tokens: [Range<Int>] = []
    var i = start
    while i < end {
      while i < end && isSpace(buf[i]) { i += 1 }
      if i >= end || buf[i] == 0x23 { break }  // '#'
      let s = i
      while i < end && !isSpace(buf[i]) { i += 1 }
      tokens.append(s..<i)
    }
    if tokens.isEmpty { return }
    let base = buf.baseAddress!
    func text(_ r: Range<Int>) -> String {
      String(decoding: UnsafeBufferPointer(rebasing: buf[r]), as: UTF8.self)
    }
    guard let label = numbers.parse(base + tokens[0].lowerBound, tokens[0].count) else {
      let expected = NumberParser.expectation(base + tokens[0].lowerBound, tokens[0].count)
      throw DataError(
        .notANumber,
        "expected \(expected) as the label, found '\(text(tokens[0]))'", file: path,
        line: line(), column: 1)
    }
    var previous = 0
    for (k, token) in tokens.enumerated().dropFirst() {
      guard let colon = token.firstIndex(where: { buf[$0] == 0x3A }) else {
        throw DataError(
          .invalidIndex, "expected 'index:value', found '\(text(token))'", file: path,
          line: line(), column: k + 1)
      }
      let indexBytes = token.lowerBound..<colon
      if text(indexBytes) == "qid" { continue }
      // Saturates at 10^18 (no overflow); the checks below refuse it with its text.
      var index = 0
      var valid = !indexBytes.isEmpty
      for j in indexBytes {
        let d = buf[j] &- 0x30
        if d > 9 {
          valid = false
          break
        }
        index = min(index * 10 + Int(d), 1_000_000_000_000_000_000)
      }
      guard valid else {
        throw DataError(
          .invalidIndex,
          "feature index must be a positive integer, found '\(text(indexBytes))'",
          file: path, line: line(), column: k + 1)
      }
      guard index >= 1 else {
        throw DataError(
          .invalidIndex, "feature indices are 1-based, found index 0", file: path,
          line: line(), column: k + 1)
      }
      guard index > previous else {
        throw DataError(
          .invalidIndex,
          "feature indices must increase within a line: \(index) follows \(previous)",
          file: path, line: line(), column: k + 1)
      }
      if index > out.width {
        try checkDense(
          rows: out.labels.count + 1, width: index, budget.limits,
          valueBytes: budget.valueBytes, path: path, line: line(), column: k + 1,
          indexText: String(text(indexBytes).drop { $0 == "0" }))
        if index > maxIndex {
          throw DataError(
            .invalidIndex,
            "feature index \(text(indexBytes)) is beyond the largest supported index "
              + "\(maxIndex)", file: path, line: line(), column: k + 1)
        }
      }
      previous = index
      let valueRange = (colon + 1)..<token.upperBound
      guard let value = numbers.parse(base + valueRange.lowerBound, valueRange.count) else {
        let expected = NumberParser.expectation(base + valueRange.lowerBound, valueRange.count)
        throw DataError(
          .notANumber,
          "expected \(expected) for feature \(index), found '\(text(valueRange))'",
          file: path, line: line(), column: k + 1)
      }
      out.indices.append(Int32(index))
      out.values.append(value)
    }
    out.width = max(out.width, previous)
    out.labels.append(label)
    out.rowStarts.append(out.indices.count)
  }

  /// Densifies into a table of `width` numeric columns `f1…f<width>`; the slots that are
  /// needed are given by `slotOf[index - 1]` (nil = skip). An index beyond `width` is an
  /// error naming the file.
  static func table(
    _ sparse: Sparse, width: Int, slotOf: [Int?], names: [String], narrow: Bool = false,
    path: String
  ) throws -> RawTable {
    let table = RawTable(numericNames: names, categoricalNames: [], hasLabel: true, narrow: narrow)
    let rows = sparse.labels.count
    table.appendRows(rows, numeric: 0)
    for r in 0..<rows {
      table.setLabel(r, sparse.labels[r])
      for k in sparse.rowStarts[r]..<sparse.rowStarts[r + 1] {
        let index = Int(sparse.indices[k])
        guard index <= width else {
          throw DataError(
            .missingFeatureColumn,
            "feature index \(index) is beyond the \(width) features the pipeline was fitted on",
            file: path)
        }
        if let slot = slotOf[index - 1] { table.setNumeric(r, slot, sparse.values[k]) }
      }
    }
    return table
  }
}
