/// The bytes of one field of a CSV record, as offsets into the scanned buffer.
struct FieldSpan {
  /// First byte of the content (after an opening quote).
  var start: Int
  /// One past the last byte of the content (before a closing quote).
  var end: Int
  /// The field was quoted and contains doubled quotes that must be collapsed.
  var escaped: Bool
}

/// The outcome of scanning one record.
enum ScanOutcome {
  /// A record; the next one starts at `next`.
  case record(next: Int)
  /// An empty line, skipped; the next record starts at `next`.
  case blank(next: Int)
  /// The buffer ends inside the record and more input exists.
  case incomplete
  /// A syntax error at buffer offset `offset` in field `field` (0-based).
  case failure(DataError.Code, offset: Int, field: Int, message: String)
}

/// An RFC 4180 record scanner over bytes: comma separated, `"` quoting with doubled quotes,
/// quoted fields may hold commas and newlines, records end in LF or CRLF.
///
/// It is strict about quotes (a quote inside an unquoted field, or text after a closing quote,
/// is an error): that strictness is what makes quote parity a correct way to find record
/// boundaries from an arbitrary offset (see `CSVSplitter`).
enum CSVScanner {
  static let comma: UInt8 = 0x2C
  static let quote: UInt8 = 0x22
  static let newline: UInt8 = 0x0A
  static let carriageReturn: UInt8 = 0x0D

  /// Scans the record at `pos`, replacing `fields` with its fields.
  ///
  /// - Parameter atEOF: whether the end of `buf` is the end of the input (otherwise a record
  ///   that runs to the end of `buf` is `.incomplete`).
  @inline(__always)
  static func scan(
    _ buf: UnsafeBufferPointer<UInt8>, from pos: Int, atEOF: Bool, fields: inout [FieldSpan]
  ) -> ScanOutcome {
    fields.removeAll(keepingCapacity: true)
    let base = buf.baseAddress!
    let n = buf.count
    var i = pos
    // An empty line (LF or CRLF) is not a record.
    if i < n && base[i] == newline { return .blank(next: i + 1) }
    if i + 1 < n && base[i] == carriageReturn && base[i + 1] == newline {
      return .blank(next: i + 2)
    }
    while true {
      if i < n && base[i] == quote {
        let start = i + 1
        var j = start
        var escaped = false
        while true {
          // Find the next quote.
          while j < n && base[j] != quote { j += 1 }
          if j >= n {
            if atEOF {
              return .failure(
                .unterminatedQuote, offset: pos, field: fields.count,
                message: "unterminated quoted field (the closing quote is missing)")
            }
            return .incomplete
          }
          if j + 1 < n && base[j + 1] == quote {
            escaped = true
            j += 2
            continue
          }
          if j + 1 >= n && !atEOF { return .incomplete }
          break
        }
        fields.append(FieldSpan(start: start, end: j, escaped: escaped))
        i = j + 1
        if i >= n { return .record(next: n) }
        let c = base[i]
        if c == comma {
          i += 1
          continue
        }
        if c == newline { return .record(next: i + 1) }
        if c == carriageReturn {
          if i + 1 < n && base[i + 1] == newline { return .record(next: i + 2) }
          if i + 1 >= n {
            if atEOF { return .record(next: n) }
            return .incomplete
          }
        }
        return .failure(
          .unexpectedQuote, offset: pos, field: fields.count - 1,
          message: "unexpected text after a closing quote")
      } else {
        let start = i
        while i < n {
          let c = base[i]
          if c == comma || c == newline { break }
          if c == quote {
            return .failure(
              .unexpectedQuote, offset: pos, field: fields.count,
              message: "a quote inside an unquoted field (quote the whole field and double it)")
          }
          i += 1
        }
        if i >= n {
          if !atEOF { return .incomplete }
          var end = n
          if end > start && base[end - 1] == carriageReturn { end -= 1 }
          fields.append(FieldSpan(start: start, end: end, escaped: false))
          return .record(next: n)
        }
        if base[i] == comma {
          fields.append(FieldSpan(start: start, end: i, escaped: false))
          i += 1
          if i >= n && atEOF {
            fields.append(FieldSpan(start: i, end: i, escaped: false))
            return .record(next: n)
          }
          continue
        }
        var end = i
        if end > start && base[end - 1] == carriageReturn { end -= 1 }
        fields.append(FieldSpan(start: start, end: end, escaped: false))
        return .record(next: i + 1)
      }
    }
  }

  /// The content of a field as bytes, with doubled quotes collapsed.
  static func bytes(_ buf: UnsafeBufferPointer<UInt8>, _ f: FieldSpan) -> [UInt8] {
    var out: [UInt8] = []
    out.reserveCapacity(f.end - f.start)
    var k = f.start
    while k < f.end {
      out.append(buf[k])
      k += (f.escaped && buf[k] == quote) ? 2 : 1
    }
    return out
  }

  /// The content of a field as a string (invalid UTF-8 is repaired).
  static func string(_ buf: UnsafeBufferPointer<UInt8>, _ f: FieldSpan) -> String {
    if !f.escaped {
      return String(
        decoding: UnsafeBufferPointer(rebasing: buf[f.start..<f.end]), as: UTF8.self)
    }
    return String(decoding: bytes(buf, f), as: UTF8.self)
  }
}
