/// Reads LIBSVM / SVMlight text (`label index:value ...`, 1-based increasing indices) and
/// densifies it into a `RawTable` whose feature columns are named `f1`, `f2`, ….
///
/// `qid:` tokens are ignored and `#` starts a comment. Sharding uses byte ranges at line
/// boundaries (no quoting exists in this format); gzip input is decompressed first.
enum LIBSVMReader {
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

  /// Parses the records that start in the shard's byte range.
  static func read(path: String, shard: Shard?) throws -> Sparse {
    let source = try CSVReader.source(path)
    let range = try CSVReader.range(shard, dataStart: 0, source, quoteAware: false)
    let bytes = try source.read(range.lowerBound, range.count)
    var out = Sparse()
    var numbers = NumberParser()
    try bytes.withUnsafeBufferPointer { buf in
      let n = buf.count
      var pos = 0
      while pos < n {
        var lineEnd = pos
        while lineEnd < n && buf[lineEnd] != CSVScanner.newline { lineEnd += 1 }
        try parseLine(
          buf, pos, lineEnd, into: &out, numbers: &numbers, path: path,
          line: { source.lineNumber(at: range.lowerBound + pos) })
        pos = lineEnd + 1
      }
    }
    return out
  }

  private static func isSpace(_ b: UInt8) -> Bool {
    b == 0x20 || b == 0x09 || b == CSVScanner.carriageReturn
  }

  private static func parseLine(
    _ buf: UnsafeBufferPointer<UInt8>, _ start: Int, _ end: Int, into out: inout Sparse,
    numbers: inout NumberParser, path: String, line: () -> Int?
  ) throws {
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
      throw DataError(
        .notANumber, "expected a numeric label, found '\(text(tokens[0]))'", file: path,
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
      var index = 0
      var valid = !indexBytes.isEmpty
      for j in indexBytes {
        let d = buf[j] &- 0x30
        if d > 9 || index > 1 << 40 {
          valid = false
          break
        }
        index = index * 10 + Int(d)
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
      previous = index
      let valueRange = (colon + 1)..<token.upperBound
      guard let value = numbers.parse(base + valueRange.lowerBound, valueRange.count) else {
        throw DataError(
          .notANumber, "expected a number for feature \(index), found '\(text(valueRange))'",
          file: path, line: line(), column: k + 1)
      }
      out.indices.append(Int32(clamping: index))
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
