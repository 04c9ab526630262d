/// Where the bytes of a CSV input come from: a plain file read in parts (so a shard reads only
/// its byte range), or a buffer already in memory (a decompressed gzip file).
enum ByteSource {
  case file(path: String, size: Int)
  case memory([UInt8])

  var size: Int {
    switch self {
    case .file(_, let size): return size
    case .memory(let bytes): return bytes.count
    }
  }

  /// Bytes `[offset, offset + count)`, clipped to the end.
  func read(_ offset: Int, _ count: Int) throws -> [UInt8] {
    switch self {
    case .file(let path, _): return try InputFile.read(path, offset: offset, count: count)
    case .memory(let bytes):
      let lo = min(offset, bytes.count)
      let hi = min(bytes.count, offset + count)
      return Array(bytes[lo..<hi])
    }
  }

  /// Calls `body` with consecutive chunks of `[from, size)` and their offsets until it
  /// returns true.
  func chunks(from: Int, _ body: (UnsafeBufferPointer<UInt8>, Int) -> Bool) throws {
    switch self {
    case .memory(let bytes):
      bytes.withUnsafeBufferPointer { all in
        _ = body(UnsafeBufferPointer(rebasing: all[min(from, all.count)...]), from)
      }
    case .file:
      let chunk = 1 << 22
      var offset = from
      while offset < size {
        let part = try read(offset, chunk)
        if part.isEmpty { return }
        if part.withUnsafeBufferPointer({ body($0, offset) }) { return }
        offset += part.count
      }
    }
  }

  /// The 1-based line number of byte `offset` (counts the line feeds before it).
  func lineNumber(at offset: Int) -> Int? {
    var lines = 1
    var remaining = offset
    do {
      try chunks(from: 0) { buf, _ in
        let n = min(remaining, buf.count)
        for k in 0..<n where buf[k] == CSVScanner.newline { lines += 1 }
        remaining -= n
        return remaining <= 0
      }
    } catch {
      return nil
    }
    return lines
  }
}

/// A CSV header: the column names and where the data rows begin.
struct CSVHeader {
  var names: [String]
  /// Offset of the first byte after the header record.
  var dataStart: Int
}

/// Reads CSV files into a `RawTable`, whole or one byte-range shard.
///
/// Sharding follows Hadoop's input splits: the data bytes after the header are cut into
/// `count` equal byte ranges, and shard `i` owns the records that *start* in its range. To
/// find the first record start at or after an arbitrary offset, the reader counts quote bytes
/// from the start of the data (a sequential scan at memory speed, no parsing): with RFC 4180
/// quoting the parity of that count says whether the offset is inside a quoted field, so a
/// line feed with even parity before it is a true record boundary, even when quoted fields hold
/// newlines. Gzip input is not splittable: it is decompressed in full and the same byte ranges
/// are applied to the decompressed bytes, so shards still concatenate to the whole file.
enum CSVReader {
  /// The source for `path` (gzip decompressed in memory).
  static func source(_ path: String) throws -> ByteSource {
    if InputFile.isGzip(path) { return .memory(try InputFile.inflate(path)) }
    return .file(path: path, size: try InputFile.size(path))
  }

  /// Reads the header record (skipping a UTF-8 byte-order mark and leading blank lines).
  static func header(_ source: ByteSource, path: String) throws -> CSVHeader {
    var window = 1 << 16
    while true {
      let bytes = try source.read(0, window)
      let atEOF = bytes.count < window || window >= source.size
      var fields: [FieldSpan] = []
      let result: CSVHeader?? = try bytes.withUnsafeBufferPointer { buf -> CSVHeader?? in
        var pos = 0
        if buf.count >= 3 && buf[0] == 0xEF && buf[1] == 0xBB && buf[2] == 0xBF { pos = 3 }
        while true {
          if pos >= buf.count {
            if atEOF {
              throw DataError(.emptyFile, "the file is empty (no header row)", file: path)
            }
            return .some(nil)
          }
          switch CSVScanner.scan(buf, from: pos, atEOF: atEOF, fields: &fields) {
          case .blank(let next): pos = next
          case .incomplete: return .some(nil)
          case .failure(let code, let offset, let field, let message):
            throw DataError(
              code, message, file: path, line: source.lineNumber(at: offset), column: field + 1)
          case .record(let next):
            let names = fields.map { CSVScanner.string(buf, $0) }
            var seen: [String: Int] = [:]
            for (k, name) in names.enumerated() {
              if let first = seen[name] {
                throw DataError(
                  .duplicateColumn,
                  "duplicate column name '\(name)' (also column \(first + 1))",
                  file: path, line: source.lineNumber(at: pos), column: k + 1)
              }
              seen[name] = k
            }
            return CSVHeader(names: names, dataStart: next)
          }
        }
      }
      if let header = result ?? nil { return header }
      window *= 4
    }
  }

  /// Whether the data region holds anything but line ends.
  static func hasData(_ source: ByteSource, from: Int) throws -> Bool {
    var found = false
    try source.chunks(from: from) { buf, _ in
      for b in buf where b != CSVScanner.newline && b != CSVScanner.carriageReturn {
        found = true
        return true
      }
      return false
    }
    return found
  }

  /// The first record start at or after `offset` (see the type's documentation).
  /// With `quoteAware` false (LIBSVM), every line feed ends a record.
  static func recordStart(
    atOrAfter offset: Int, dataStart: Int, _ source: ByteSource, quoteAware: Bool = true
  ) throws -> Int {
    if offset <= dataStart { return dataStart }
    // Parity of quotes in [dataStart, offset - 1), then walk forward from offset - 1.
    var parity = 0
    let stop = offset - 1
    // Without quote awareness no byte flips the parity.
    let quote = quoteAware ? CSVScanner.quote : CSVScanner.newline
    if quoteAware {
      try source.chunks(from: dataStart) { buf, base in
        let n = min(buf.count, stop - base)
        for k in 0..<max(0, n) where buf[k] == CSVScanner.quote { parity ^= 1 }
        return base + buf.count >= stop
      }
    }
    var result = source.size
    try source.chunks(from: stop) { buf, base in
      for k in 0..<buf.count {
        let b = buf[k]
        if b == CSVScanner.newline && parity == 0 {
          result = base + k + 1
          return true
        } else if b == quote {
          parity ^= 1
        }
      }
      return false
    }
    return result
  }

  /// The byte range of record starts owned by `shard` (nil: the whole data region).
  static func range(
    _ shard: Shard?, dataStart: Int, _ source: ByteSource, quoteAware: Bool = true
  ) throws -> Range<Int> {
    guard let shard, shard.count > 1 else { return dataStart..<max(dataStart, source.size) }
    let length = source.size - dataStart
    let lo = dataStart + Int((Double(length) * Double(shard.index) / Double(shard.count)))
    let hi =
      shard.index + 1 == shard.count
      ? source.size
      : dataStart + Int((Double(length) * Double(shard.index + 1) / Double(shard.count)))
    let start = try recordStart(
      atOrAfter: lo, dataStart: dataStart, source, quoteAware: quoteAware)
    let end = try recordStart(atOrAfter: hi, dataStart: dataStart, source, quoteAware: quoteAware)
    return start..<max(start, end)
  }

  /// Reads the records starting in `range` into `table`, converting fields per `roles`.
  static func load(
    _ source: ByteSource, path: String, range: Range<Int>, header: CSVHeader,
    roles: [ColumnRole], into table: inout RawTable
  ) throws {
    if range.isEmpty { return }
    var buffer: [UInt8]
    var base: Int
    switch source {
    case .memory(let bytes):
      buffer = bytes
      base = 0
    case .file:
      base = range.lowerBound
      if range.lowerBound == header.dataStart && range.upperBound == source.size {
        buffer = try source.read(base, source.size - base)
      } else {
        buffer = try source.read(base, range.count + (1 << 16))
      }
    }
    var pos = range.lowerBound - base
    var parser = RecordConverter(
      roles: roles, names: header.names, path: path, table: table)
    defer {
      parser.finish()
      table = parser.table
    }
    var fields: [FieldSpan] = []
    fields.reserveCapacity(header.names.count + 1)
    while true {
      let atEOF = base + buffer.count >= source.size
      let needMore: Bool = try buffer.withUnsafeBufferPointer { buf in
        while pos + base < range.upperBound && pos < buf.count {
          switch CSVScanner.scan(buf, from: pos, atEOF: atEOF, fields: &fields) {
          case .blank(let next):
            pos = next
          case .incomplete:
            return true
          case .failure(let code, let offset, let field, let message):
            throw DataError(
              code, message, file: path, line: source.lineNumber(at: base + offset),
              column: field + 1)
          case .record(let next):
            try parser.convert(buf, fields, recordOffset: base + pos, source: source)
            pos = next
          }
        }
        return false
      }
      if !needMore { break }
      let more = try source.read(base + buffer.count, max(1 << 16, buffer.count))
      if more.isEmpty { break }
      buffer.append(contentsOf: more)
    }
  }
}

/// Converts scanned fields into a `RawTable` row.
///
/// Each record's values are first written to a fixed scratch row, then appended to the table
/// in one copy, so the per-field work is a pointer store.
struct RecordConverter {
  let roles: [ColumnRole]
  let names: [String]
  let path: String
  var table: RawTable
  private var numbers = NumberParser()
  private var encoders: [CategoryEncoder]
  private var numericRow: [Double]
  private var codeRow: [Int32]

  /// A converter filling `table`, which must have no rows yet.
  init(roles: [ColumnRole], names: [String], path: String, table: RawTable) {
    precondition(table.rows == 0, "the converter starts from an empty table")
    self.roles = roles
    self.names = names
    self.path = path
    self.table = table
    self.encoders = Array(repeating: CategoryEncoder(), count: table.categoricalNames.count)
    self.numericRow = Array(repeating: .nan, count: table.numericNames.count)
    self.codeRow = Array(repeating: -1, count: table.categoricalNames.count)
  }

  @inline(__always)
  mutating func convert(
    _ buf: UnsafeBufferPointer<UInt8>, _ fields: [FieldSpan], recordOffset: Int,
    source: ByteSource
  ) throws {
    if fields.count != roles.count {
      throw DataError(
        .raggedRow,
        "expected \(roles.count) fields as in the header, found \(fields.count)",
        file: path, line: source.lineNumber(at: recordOffset))
    }
    var label = Double.nan
    let start = buf.baseAddress!
    var numericRow = self.numericRow
    var codeRow = self.codeRow
    self.numericRow = []
    self.codeRow = []
    defer {
      self.numericRow = numericRow
      self.codeRow = codeRow
    }
    try numericRow.withUnsafeMutableBufferPointer { values in
      try codeRow.withUnsafeMutableBufferPointer { codes in
        try fields.withUnsafeBufferPointer { fields in
          for k in 0..<fields.count {
            let f = fields[k]
            switch roles[k] {
            case .skip:
              break
            case .label:
              label = try number(buf, f, column: k, recordOffset, source)
            case .numeric(let slot):
              values[slot] = try number(buf, f, column: k, recordOffset, source)
            case .categorical(let slot):
              if NumberParser.isMissing(start + f.start, f.end - f.start) {
                codes[slot] = -1
              } else if f.escaped {
                let bytes = CSVScanner.bytes(buf, f)
                codes[slot] = bytes.withUnsafeBufferPointer {
                  encoders[slot].code($0.baseAddress!, $0.count)
                }
              } else {
                codes[slot] = encoders[slot].code(start + f.start, f.end - f.start)
              }
            }
          }
        }
      }
    }
    table.numeric.append(contentsOf: numericRow)
    table.codes.append(contentsOf: codeRow)
    if table.labels != nil { table.labels!.append(label) }
    table.rows += 1
  }

  @inline(__always)
  private mutating func number(
    _ buf: UnsafeBufferPointer<UInt8>, _ f: FieldSpan, column: Int, _ recordOffset: Int,
    _ source: ByteSource
  ) throws -> Double {
    if f.escaped {
      let bytes = CSVScanner.bytes(buf, f)
      return try bytes.withUnsafeBufferPointer {
        try number($0.baseAddress!, $0.count, column: column, recordOffset, source)
      }
    }
    return try number(
      buf.baseAddress! + f.start, f.end - f.start, column: column, recordOffset, source)
  }

  @inline(__always)
  private mutating func number(
    _ p: UnsafePointer<UInt8>, _ n: Int, column: Int, _ recordOffset: Int, _ source: ByteSource
  ) throws -> Double {
    if NumberParser.isMissing(p, n) { return .nan }
    if let v = numbers.parse(p, n) { return v }
    let text = String(decoding: UnsafeBufferPointer(start: p, count: n), as: UTF8.self)
    throw DataError(
      .notANumber, "expected a number in column '\(names[column])', found '\(text)'",
      file: path, line: source.lineNumber(at: recordOffset), column: column + 1)
  }

  /// Copies the categories seen so far into the table.
  mutating func finish() {
    for slot in 0..<encoders.count { table.categories[slot] = encoders[slot].values }
  }
}
