#if canImport(Glibc)
  import Glibc
#elseif canImport(Musl)
  import Musl
#elseif canImport(Darwin)
  import Darwin
#endif

/// Parses finite decimal numbers straight from bytes.
///
/// The fast path (Clinger's): a decimal significand of at most 15 digits and a power of ten of
/// at most 22 in magnitude are both exact doubles, so one correctly rounded multiply or divide
/// gives the correctly rounded result. Everything else falls back to `strtod` on a
/// NUL-terminated scratch copy, so results always equal `strtod`'s — for the inputs accepted.
///
/// Only finite decimal numbers are accepted: `strtod` also reads `inf`, `infinity`, `nan`,
/// hexadecimal (`0x10`) and decimals that overflow to infinity (`1e400`), and `parse` refuses
/// all of those (nil). Both fast paths only ever produce finite values (at most 15 digits
/// times at most 10^22), so the check costs nothing there: it is made on the slow path only.
struct NumberParser {
  private var scratch: [CChar] = Array(repeating: 0, count: 64)

  /// 10^e for 0 ≤ e ≤ 22, all exact doubles. A switch over literals compiles to a constant
  /// table; a global array would be initialised lazily and checked on every call.
  @inline(__always)
  static func powerOfTen(_ e: Int) -> Double {
    switch e {
    case 0: return 1e0
    case 1: return 1e1
    case 2: return 1e2
    case 3: return 1e3
    case 4: return 1e4
    case 5: return 1e5
    case 6: return 1e6
    case 7: return 1e7
    case 8: return 1e8
    case 9: return 1e9
    case 10: return 1e10
    case 11: return 1e11
    case 12: return 1e12
    case 13: return 1e13
    case 14: return 1e14
    case 15: return 1e15
    case 16: return 1e16
    case 17: return 1e17
    case 18: return 1e18
    case 19: return 1e19
    case 20: return 1e20
    case 21: return 1e21
    default: return 1e22
    }
  }

  /// The common case in one pass: `[-+]digits[.digits]` with at most 15 digits, starting at
  /// `p[i]` and ending before `p[end]`, a comma or a line feed (nothing else may follow). On
  /// success `i` is where it stopped. Nil (with `i` unchanged) for anything else, including an
  /// empty field; `parse` handles those.
  @inline(__always)
  static func parsePlain(_ p: UnsafePointer<UInt8>, _ i: inout Int, _ end: Int) -> Double? {
    var j = i
    var negative = false
    if j < end && (p[j] == 0x2D || p[j] == 0x2B) {
      negative = p[j] == 0x2D
      j += 1
    }
    var mantissa: Int64 = 0
    var digits = 0
    var fraction = 0
    while j < end {
      let d = p[j] &- 0x30
      if d > 9 { break }
      mantissa = mantissa &* 10 &+ Int64(d)
      digits += 1
      j += 1
    }
    if j < end && p[j] == 0x2E {
      j += 1
      while j < end {
        let d = p[j] &- 0x30
        if d > 9 { break }
        mantissa = mantissa &* 10 &+ Int64(d)
        digits += 1
        fraction += 1
        j += 1
      }
    }
    guard digits > 0 && digits <= 15 else { return nil }
    if j < end && p[j] != CSVScanner.comma && p[j] != CSVScanner.newline { return nil }
    // Both the significand (< 10^15 < 2^53) and 10^fraction are exact, so one correctly
    // rounded division gives the correctly rounded value, as strtod's.
    var value = Double(mantissa)
    if fraction > 0 { value /= powerOfTen(fraction) }
    i = j
    return negative ? -value : value
  }

  /// Whether the bytes spell a missing value: empty, `NA` or `NaN`.
  @inline(__always)
  static func isMissing(_ p: UnsafePointer<UInt8>, _ n: Int) -> Bool {
    if n == 0 { return true }
    if n == 2 { return p[0] == 0x4E && p[1] == 0x41 }  // NA
    if n == 3 { return p[0] == 0x4E && p[1] == 0x61 && p[2] == 0x4E }  // NaN
    return false
  }

  /// The number the `n` bytes at `p` spell, or `nil` if they are not a number.
  /// Leading and trailing spaces are ignored.
  @inline(__always)
  mutating func parse(_ p: UnsafePointer<UInt8>, _ n: Int) -> Double? {
    var stop = 0
    if let v = Self.parsePlain(p, &stop, n), stop == n { return v }
    var start = 0
    var end = n
    while start < end && p[start] == 0x20 { start += 1 }
    while end > start && p[end - 1] == 0x20 { end -= 1 }
    if start == end { return nil }
    var i = start
    var negative = false
    if p[i] == 0x2D {
      negative = true
      i += 1
    } else if p[i] == 0x2B {
      i += 1
    }
    var mantissa: UInt64 = 0
    var digits = 0
    var exponent = 0
    var sawDigit = false
    var exact = true
    while i < end {
      let d = p[i] &- 0x30
      if d > 9 { break }
      sawDigit = true
      if digits < 19 {
        mantissa = mantissa &* 10 &+ UInt64(d)
        if mantissa != 0 { digits += 1 }
      } else {
        exponent += 1
        if d != 0 { exact = false }
      }
      i += 1
    }
    if i < end && p[i] == 0x2E {
      i += 1
      while i < end {
        let d = p[i] &- 0x30
        if d > 9 { break }
        sawDigit = true
        if digits < 19 {
          mantissa = mantissa &* 10 &+ UInt64(d)
          if mantissa != 0 { digits += 1 }
          exponent -= 1
        } else if d != 0 {
          exact = false
        }
        i += 1
      }
    }
    if sawDigit && i < end && (p[i] | 0x20) == 0x65 {
      var j = i + 1
      var expNegative = false
      if j < end && (p[j] == 0x2D || p[j] == 0x2B) {
        expNegative = p[j] == 0x2D
        j += 1
      }
      var e = 0
      var sawExpDigit = false
      while j < end {
        let d = p[j] &- 0x30
        if d > 9 { break }
        sawExpDigit = true
        if e < 100_000 { e = e * 10 + Int(d) }
        j += 1
      }
      if sawExpDigit {
        exponent += expNegative ? -e : e
        i = j
      }
    }
    if sawDigit && i == end && exact && digits <= 15 && exponent >= -22 && exponent <= 22 {
      var value = Double(mantissa)
      if exponent >= 0 {
        value *= Self.powerOfTen(exponent)
      } else {
        value /= Self.powerOfTen(-exponent)
      }
      return negative ? -value : value
    }
    return slowParse(p + start, end - start)
  }

  private mutating func slowParse(_ p: UnsafePointer<UInt8>, _ n: Int) -> Double? {
    // Hexadecimal (`0x10`, `0x1p3`) is refused before strtod would read it.
    for k in 0..<n where p[k] | 0x20 == 0x78 { return nil }
    if scratch.count < n + 1 { scratch = Array(repeating: 0, count: n + 1) }
    return scratch.withUnsafeMutableBufferPointer { buf -> Double? in
      let base = buf.baseAddress!
      for k in 0..<n { base[k] = CChar(bitPattern: p[k]) }
      base[n] = 0
      var endPtr: UnsafeMutablePointer<CChar>? = nil
      let value = strtod(base, &endPtr)
      guard let endPtr, endPtr == base + n, value.isFinite else { return nil }
      return value
    }
  }

  /// What a field that `parse` refused should have been, for error messages: `a finite
  /// number` for text `strtod` reads as infinite or NaN (`inf`, `1e400`, `nan`), `a decimal
  /// number` for hexadecimal, `a number` for anything else.
  static func expectation(_ p: UnsafePointer<UInt8>, _ n: Int) -> String {
    var text = Array(UnsafeBufferPointer(start: p, count: n))
    while text.last == 0x20 { text.removeLast() }
    let hex = text.contains { $0 | 0x20 == 0x78 }
    let cString = text.map { CChar(bitPattern: $0) } + [0]
    return cString.withUnsafeBufferPointer { buf -> String in
      var endPtr: UnsafeMutablePointer<CChar>? = nil
      let value = strtod(buf.baseAddress!, &endPtr)
      guard let endPtr, endPtr == UnsafeMutablePointer(mutating: buf.baseAddress!) + text.count,
        !text.isEmpty
      else { return "a number" }
      if hex { return "a decimal number (hexadecimal is not read)" }
      return value.isFinite ? "a number" : "a finite number"
    }
  }
}
