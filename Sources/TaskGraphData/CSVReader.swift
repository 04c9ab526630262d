import Foundation

/// A CSV header: the column names and where the data rows begin.
struct CSVHeader: Sendable {
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
/// newlines. Gzip input is not splittable: a shard of it is read by decompressing the file in
/// full and applying the same byte ranges to the decompressed bytes, so shards still
/// concatenate to the whole file; a whole-file read decompresses it as it parses.
enum CSVReader {
  /// The source for `path`. A gzip file is decompressed in memory, or with `streaming`
  /// (for reads of the whole file, which need no byte ranges) decompressed as it is parsed,
  /// on another thread; either way within `limits`.
  static func source(_ path: String, streaming: Bool = false, limits: DataLimits = .defaults)
    throws -> ByteSource
  {
    if InputFile.isGzip(path) {
      if streaming { return .gzip(path: path, readAhead: true, limits: limits) }
      return .memory(try InputFile.inflate(path, limits: limits))
    }
    return .file(path: path, size: try InputFile.size(path))
  }

  /// Reads the header record (skipping a UTF-8 byte-order mark and leading blank lines).
  /// A name that is not valid UTF-8 is `DataError.Code.invalidText`; a header that does not
  /// end within `limits.memoryBytes` is `tooLarge`.
  static func header(_ source: ByteSource, path: String, limits: DataLimits = .defaults)
    throws -> CSVHeader
  {
    var window = 1 << 16
    while true {
      if window > 1 << 16 && window > limits.memoryBytes {
        throw DataError(
          .tooLarge,
          "the header row is longer than \(limits.memoryText) allows (no line end in the first "
            + "\(DataLimits.bytes(window / 4)))", file: path, line: 1)
      }
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
            var names: [String] = []
            for (k, f) in fields.enumerated() {
              let bytes = CSVScanner.bytes(buf, f)
              guard let name = bytes.withUnsafeBufferPointer(UTF8Text.decode) else {
                throw DataError(
                  .invalidText,
                  bytes.withUnsafeBufferPointer {
                    UTF8Text.message($0, in: "the name of column \(k + 1)")
                  }, file: path, line: source.lineNumber(at: pos), column: k + 1)
              }
              names.append(name)
            }
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

  /// Plain-file ranges at least this long are parsed in two halves at once.
  static let parallelThreshold = 8 << 20

  /// Reads the records starting in `range` into `table`, converting fields per `roles`.
  ///
  /// The source is read in windows of `window` bytes (see `ByteSource.windows`), so a plain
  /// or streamed gzip file is never held whole. A plain file range of `parallelThreshold`
  /// bytes or more is cut at a record boundary (found as for shards) and its halves are parsed
  /// on two threads, then joined in order; the result, errors included, is the same.
  ///
  /// Once the table's rows take more than `limits.memoryBytes` (half of it for each half), reading
  /// stops with `DataError.Code.tooLarge` at the record it reached.
  static func load(
    _ source: ByteSource, path: String, range: Range<Int>, header: CSVHeader,
    roles: [ColumnRole], into table: RawTable, window: Int = 4 << 20,
    parallelThreshold: Int = parallelThreshold, limits: DataLimits = .defaults
  ) throws {
    if range.isEmpty { return }
    if case .file = source, range.count >= parallelThreshold {
      let middle = try recordStart(
        atOrAfter: range.lowerBound + range.count / 2, dataStart: header.dataStart, source)
      if middle > range.lowerBound && middle < range.upperBound {
        try loadHalves(
          source, path: path, range.lowerBound..<middle, middle..<range.upperBound,
          header: header, roles: roles, into: table, window: window, limits: limits)
        return
      }
    }
    try loadPart(
      source, path: path, range: range, header: header, roles: roles, into: table,
      window: window, limits: limits, budget: limits.memoryBytes)
  }

  private static func loadPart(
    _ source: ByteSource, path: String, range: Range<Int>, header: CSVHeader,
    roles: [ColumnRole], into table: RawTable, window: Int, limits: DataLimits, budget: Int
  ) throws {
    var converter = RecordConverter(
      roles: roles, names: header.names, path: path, table: table, limits: limits,
      budget: budget)
    defer { converter.finish() }
    let tooLong = { (offset: Int) -> any Error in
      DataError(
        .tooLarge,
        "the record starting on this line is longer than \(limits.memoryText) allows "
          + "(a line without end, or a quote never closed?)", file: path,
        line: source.lineNumber(at: offset))
    }
    try source.windows(
      from: range.lowerBound, size: window, limit: budget, tooLong: tooLong
    ) { window, offset, atEOF in
      try converter.parse(window, offset: offset, until: range.upperBound, atEOF: atEOF) {
        source.lineNumber(at: $0)
      }
    }
  }

  /// Parses `first` here and `second` on another thread into a table of its own, then
  /// appends the second table's rows. An error in the first half wins, as it would in one pass.
  private static func loadHalves(
    _ source: ByteSource, path: String, _ first: Range<Int>, _ second: Range<Int>,
    header: CSVHeader, roles: [ColumnRole], into table: RawTable, window: Int,
    limits: DataLimits
  ) throws {
    let part = TablePart(
      RawTable(
        numericNames: table.numericNames, categoricalNames: table.categoricalNames,
        hasLabel: table.hasLabel, narrow: table.narrow))
    let done = DispatchSemaphore(value: 0)
    let thread = Thread {
      do {
        try loadPart(
          source, path: path, range: second, header: header, roles: roles, into: part.table,
          window: window, limits: limits, budget: limits.memoryBytes / 2)
      } catch {
        part.error = error
      }
      done.signal()
    }
    thread.name = "taskgraph-csv-half"
    thread.start()
    var firstError: (any Error)?
    do {
      try loadPart(
        source, path: path, range: first, header: header, roles: roles, into: table,
        window: window, limits: limits, budget: limits.memoryBytes / 2)
    } catch {
      firstError = error
    }
    done.wait()
    if let firstError { throw firstError }
    if let error = part.error { throw error }
    table.append(part.table)
  }
}

/// The table and error of the half that `loadHalves` parses on another thread.
///
/// `@unchecked Sendable`: the worker thread writes `table` and `error` only before it signals
/// the semaphore, and the caller reads them only after waiting on it, so the two never touch
/// them at the same time and the semaphore orders the writes before the reads.
private final class TablePart: @unchecked Sendable {
  let table: RawTable
  var error: (any Error)?
  init(_ table: RawTable) { self.table = table }
}

/// Converts CSV records into `RawTable` rows, field by field straight into the table.
///
/// A record without quotes, with the header's number of fields and with values that convert
/// takes the fast path: one pass over its bytes that finds each field's end and converts it
/// at once. Any other record (quotes, a wrong field count, a value that does not convert) is
/// scanned again by `CSVScanner` and converted from its field spans, which is the reference
/// behaviour and produces the errors; the fast path only ever gives up, it never fails.
///
/// Every number must be finite (see `NumberParser`), and in a narrow table also within
/// `Float`'s range; every categorical value must be valid UTF-8. Neither check costs anything
/// on the fast path for ordinary values: plain numbers are always finite and within `Float`'s
/// range, and a categorical value is checked once, when it is first seen.
struct RecordConverter {
  private enum Kind: UInt8 {
    case skip, label, numeric, categorical
  }

  let names: [String]
  let path: String
  let table: RawTable
  private let narrow: Bool
  private let limits: DataLimits
  /// The table's rows may take this many bytes.
  private let budget: Int
  private let kinds: [Kind]
  private let slots: [Int]
  private var numbers = NumberParser()
  private var encoders: [CategoryEncoder]
  private var fields: [FieldSpan] = []

  /// A converter appending to `table`, which must have no rows yet, whose rows may take
  /// `budget` bytes (by default `limits.memoryBytes`).
  init(
    roles: [ColumnRole], names: [String], path: String, table: RawTable,
    limits: DataLimits = .defaults, budget: Int? = nil
  ) {
    precondition(table.rows == 0, "the converter starts from an empty table")
    precondition(!roles.isEmpty, "a record has at least one field")
    self.names = names
    self.path = path
    self.table = table
    self.narrow = table.narrow
    self.limits = limits
    self.budget = budget ?? limits.memoryBytes
    self.kinds = roles.map {
      switch $0 {
      case .skip: return .skip
      case .label: return .label
      case .numeric: return .numeric
      case .categorical: return .categorical
      }
    }
    self.slots = roles.map {
      switch $0 {
      case .skip, .label: return 0
      case .numeric(let s), .categorical(let s): return s
      }
    }
    self.encoders = Array(repeating: CategoryEncoder(), count: table.categoricalNames.count)
    fields.reserveCapacity(roles.count + 1)
  }

  /// Converts the records of `window` that start before source offset `limit`.
  ///
  /// - Parameters:
  ///   - offset: the source offset of the window's first byte (a record start).
  ///   - atEOF: whether the window ends at the end of the source.
  ///   - lineNumber: the line of a source offset, for errors.
  /// - Returns: the bytes consumed (a record that runs past the window is left for the next
  ///   one), or nil once a record starts at or after `limit`.
  mutating func parse(
    _ window: UnsafeBufferPointer<UInt8>, offset: Int, until limit: Int, atEOF: Bool,
    lineNumber: (Int) -> Int?
  ) throws -> Int? {
    guard let base = window.baseAddress else { return atEOF ? nil : 0 }
    if table.rowsBytes > budget {
      throw DataError(
        .tooLarge,
        "the \(table.rows) rows read before this line take \(DataLimits.bytes(table.rowsBytes))"
          + " in memory: the file does not fit in \(limits.memoryText)",
        file: path, line: lineNumber(offset))
    }
    let n = window.count
    var pos = 0
    while pos < n {
      if offset + pos >= limit { return nil }
      // An empty line (LF or CRLF) is not a record.
      let first = base[pos]
      if first == CSVScanner.newline {
        pos += 1
        continue
      }
      if first == CSVScanner.carriageReturn && pos + 1 < n
        && base[pos + 1] == CSVScanner.newline
      {
        pos += 2
        continue
      }
      switch fastRecord(base, n, from: pos, atEOF: atEOF) {
      case .record(let next):
        table.commitRow()
        pos = next
      case .incomplete:
        return pos
      case .fallBack:
        switch CSVScanner.scan(window, from: pos, atEOF: atEOF, fields: &fields) {
        case .blank(let next):
          pos = next
        case .incomplete:
          return pos
        case .failure(let code, let at, let field, let message):
          throw DataError(
            code, message, file: path, line: lineNumber(offset + at), column: field + 1)
        case .record(let next):
          try convert(window, recordOffset: offset + pos, lineNumber: lineNumber)
          pos = next
        }
      }
    }
    return atEOF ? nil : pos
  }

  private enum FastOutcome {
    case record(next: Int)
    case incomplete
    case fallBack
  }

  /// Converts the record at `pos` into the table's next row (not yet committed), if it is a
  /// plain one (see the type's documentation).
  @inline(__always)
  private mutating func fastRecord(
    _ base: UnsafePointer<UInt8>, _ n: Int, from pos: Int, atEOF: Bool
  ) -> FastOutcome {
    let row = table.nextRow()
    let last = kinds.count - 1
    var label = Double.nan
    var i = pos
    var k = 0
    while true {
      let start = i
      let kind = kinds[k]
      // A numeric field is converted while its end is found; anything unusual in it (an
      // exponent, many digits, spaces, NA) leaves `plain` nil and takes the general way.
      var plain: Double? = nil
      if kind == .numeric || kind == .label { plain = NumberParser.parsePlain(base, &i, n) }
      if plain == nil {
        while i < n {
          let c = base[i]
          if c == CSVScanner.comma || c == CSVScanner.newline { break }
          if c == CSVScanner.quote { return .fallBack }
          i += 1
        }
      }
      var end = i
      let next: Int?
      if i >= n {
        if !atEOF { return .incomplete }
        if k != last { return .fallBack }
        next = n
      } else if base[i] == CSVScanner.comma {
        if k == last { return .fallBack }
        next = nil
      } else {
        if k != last { return .fallBack }
        next = i + 1
      }
      if next != nil && end > start && base[end - 1] == CSVScanner.carriageReturn { end -= 1 }
      let p = base + start
      let count = end - start
      switch kind {
      case .skip:
        break
      case .label:
        guard let v = plain ?? number(p, count) else { return .fallBack }
        label = v
      case .numeric:
        guard let v = plain ?? number(p, count) else { return .fallBack }
        if plain == nil && narrow && !Self.fitsFloat(v) { return .fallBack }
        row.setNumeric(slots[k], v)
      case .categorical:
        let s = slots[k]
        if NumberParser.isMissing(p, count) {
          row.codes[s] = -1
        } else {
          let c = encoders[s].code(p, count)
          if c == CategoryEncoder.invalid { return .fallBack }
          row.codes[s] = c
        }
      }
      if let next {
        row.label.pointee = label
        return .record(next: next)
      }
      i += 1
      k += 1
    }
  }

  /// The value of a numeric field: NaN when missing, nil when it is not a finite number.
  @inline(__always)
  private mutating func number(_ p: UnsafePointer<UInt8>, _ n: Int) -> Double? {
    if NumberParser.isMissing(p, n) { return .nan }
    return numbers.parse(p, n)
  }

  /// Whether `v` (NaN: missing) is stored in a `Float` without becoming infinite.
  @inline(__always)
  private static func fitsFloat(_ v: Double) -> Bool { v.isNaN || Float(v).isFinite }

  /// Converts the fields `CSVScanner` found into the table's next row and adds it.
  private mutating func convert(
    _ buf: UnsafeBufferPointer<UInt8>, recordOffset: Int, lineNumber: (Int) -> Int?
  ) throws {
    if fields.count != kinds.count {
      throw DataError(
        .raggedRow,
        "expected \(kinds.count) fields as in the header, found \(fields.count)",
        file: path, line: lineNumber(recordOffset))
    }
    let row = table.nextRow()
    var label = Double.nan
    for k in 0..<fields.count {
      let f = fields[k]
      // Doubled quotes collapsed; an unescaped field is used in place.
      let bytes = f.escaped ? CSVScanner.bytes(buf, f) : nil
      try Self.withFieldBytes(buf, f, bytes) { p, count in
        switch kinds[k] {
        case .skip:
          break
        case .label:
          label = try value(p, count, column: k, recordOffset, lineNumber)
        case .numeric:
          let v = try value(p, count, column: k, recordOffset, lineNumber)
          if narrow && !Self.fitsFloat(v) {
            throw DataError(
              .notANumber,
              "expected a number within float32's range (±3.4e38) in column '\(names[k])', "
                + "found '\(Self.text(p, count))' (the matrix is float32)",
              file: path, line: lineNumber(recordOffset), column: k + 1)
          }
          row.setNumeric(slots[k], v)
        case .categorical:
          let s = slots[k]
          if NumberParser.isMissing(p, count) {
            row.codes[s] = -1
          } else {
            let c = encoders[s].code(p, count)
            if c == CategoryEncoder.invalid {
              throw DataError(
                .invalidText,
                UTF8Text.message(
                  UnsafeBufferPointer(start: p, count: count), in: "column '\(names[k])'"),
                file: path, line: lineNumber(recordOffset), column: k + 1)
            }
            row.codes[s] = c
          }
        }
      }
    }
    row.label.pointee = label
    table.commitRow()
  }

  private static func withFieldBytes(
    _ buf: UnsafeBufferPointer<UInt8>, _ f: FieldSpan, _ bytes: [UInt8]?,
    _ body: (UnsafePointer<UInt8>, Int) throws -> Void
  ) rethrows {
    if let bytes {
      // A pointer even for no bytes, so that `body` never sees nil.
      try (bytes + [0]).withUnsafeBufferPointer { try body($0.baseAddress!, bytes.count) }
    } else {
      try body(buf.baseAddress! + f.start, f.end - f.start)
    }
  }

  private mutating func value(
    _ p: UnsafePointer<UInt8>, _ n: Int, column: Int, _ recordOffset: Int,
    _ lineNumber: (Int) -> Int?
  ) throws -> Double {
    if let v = number(p, n) { return v }
    let expected = NumberParser.expectation(p, n)
    // `nan` spelled otherwise than the missing-value markers is refused, not read as missing.
    let hint =
      expected == "a finite number" && strtod(Self.text(p, n), nil).isNaN
      ? " (a missing value is written as an empty field, NA or NaN)" : ""
    throw DataError(
      .notANumber,
      "expected \(expected) in column '\(names[column])', found '\(Self.text(p, n))'\(hint)",
      file: path, line: lineNumber(recordOffset), column: column + 1)
  }

  /// The field's bytes for a message (invalid UTF-8 repaired).
  private static func text(_ p: UnsafePointer<UInt8>, _ n: Int) -> String {
    String(decoding: UnsafeBufferPointer(start: p, count: n), as: UTF8.self)
  }

  /// Copies the categories seen so far into the table.
  func finish() {
    for slot in 0..<encoders.count { table.categories[slot] = encoders[slot].values }
  }
}
