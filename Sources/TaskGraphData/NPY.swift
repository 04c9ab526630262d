import TaskGraphLinalg

/// Reading and writing NumPy `.npy` files holding float32 or float64 arrays of one or two
/// dimensions in C (row-major) order, format versions 1.0, 2.0 and 3.0.
///
/// A 1-D array of length `n` reads as an `n × 1` matrix. Writing always produces a version
/// 1.0 file (2.0 if the header would not fit), little-endian, with the header padded so the
/// data starts at a multiple of 64 bytes, as NumPy does.
///
/// Reading trusts nothing the header declares: the shape is checked against the file's size
/// (a header may declare terabytes in a file of a few bytes) and against `DataLimits` before
/// anything is allocated, and every element read must be finite (and, read as `Float`, within
/// `Float`'s range); an infinite or NaN element is an error naming its row and column.
public enum NPY {
  /// The parsed header of a `.npy` file.
  public struct Header: Sendable, Equatable {
    /// Bytes per element: 4 (`<f4`) or 8 (`<f8`).
    public var elementSize: Int
    /// The array shape, `[rows]` or `[rows, cols]`.
    public var shape: [Int]
    /// Offset of the first data byte.
    public var dataOffset: Int
    /// Rows of the array read as a matrix.
    public var rows: Int { shape.first ?? 1 }
    /// Columns of the array read as a matrix.
    public var cols: Int { shape.count > 1 ? shape[1] : 1 }
  }

  private static let magic: [UInt8] = [0x93, 0x4E, 0x55, 0x4D, 0x50, 0x59]

  /// Parses the header at the start of `bytes`.
  /// - Throws: `DataError` with `npyBadMagic`, `npyBadHeader`, `npyUnsupportedDtype` or
  ///   `npyFortranOrder`.
  public static func header(_ bytes: [UInt8], path: String) throws -> Header {
    guard bytes.count >= 10, Array(bytes[0..<6]) == magic else {
      throw DataError(.npyBadMagic, "not a NumPy .npy file (wrong magic string)", file: path)
    }
    let major = bytes[6]
    let lengthSize: Int
    switch major {
    case 1: lengthSize = 2
    case 2, 3: lengthSize = 4
    default:
      throw DataError(.npyBadHeader, "unsupported .npy format version \(major)", file: path)
    }
    guard bytes.count >= 8 + lengthSize else {
      throw DataError(.npyTruncated, "the .npy header is truncated", file: path)
    }
    var headerLength = 0
    for k in 0..<lengthSize { headerLength |= Int(bytes[8 + k]) << (8 * k) }
    let start = 8 + lengthSize
    guard bytes.count >= start + headerLength else {
      throw DataError(.npyTruncated, "the .npy header is truncated", file: path)
    }
    let text = String(decoding: bytes[start..<(start + headerLength)], as: UTF8.self)
    func value(of key: String) -> Substring? {
      guard let r = text.range(of: "'\(key)':") else { return nil }
      return text[r.upperBound...].drop(while: { $0 == " " })
    }
    guard let descrText = value(of: "descr"), let q = descrText.first, q == "'" || q == "\"",
      let close = descrText.dropFirst().firstIndex(of: q)
    else {
      throw DataError(.npyBadHeader, "the .npy header has no 'descr'", file: path)
    }
    let descr = String(descrText[descrText.index(after: descrText.startIndex)..<close])
    let elementSize: Int
    switch descr {
    case "<f8": elementSize = 8
    case "<f4": elementSize = 4
    default:
      throw DataError(
        .npyUnsupportedDtype,
        "unsupported .npy dtype '\(descr)' (expected little-endian float32 '<f4' or float64 '<f8')",
        file: path)
    }
    guard let fortran = value(of: "fortran_order") else {
      throw DataError(.npyBadHeader, "the .npy header has no 'fortran_order'", file: path)
    }
    if fortran.hasPrefix("True") {
      throw DataError(
        .npyFortranOrder, "Fortran-ordered .npy arrays are not supported (save with C order)",
        file: path)
    }
    guard let shapeText = value(of: "shape"), shapeText.first == "(",
      let shapeClose = shapeText.firstIndex(of: ")")
    else {
      throw DataError(.npyBadHeader, "the .npy header has no 'shape'", file: path)
    }
    let inner = shapeText[shapeText.index(after: shapeText.startIndex)..<shapeClose]
    let parts = inner.split(separator: ",").map { $0.trimmingSpaces() }.filter { !$0.isEmpty }
    let shape = parts.compactMap { Int($0) }
    guard shape.count == parts.count, (1...2).contains(shape.count), shape.allSatisfy({ $0 >= 0 })
    else {
      throw DataError(
        .npyBadHeader, "unsupported .npy shape (\(inner)): expected 1 or 2 dimensions",
        file: path)
    }
    return Header(elementSize: elementSize, shape: shape, dataOffset: start + headerLength)
  }

  /// Reads a `.npy` file as a matrix of `T` (converting from the stored precision).
  /// - Throws: `DataError` (see `header(_:path:)`; `npyTruncated` when the data is shorter
  ///   than the shape declares, `tooLarge` when the matrix would exceed `limits`,
  ///   `notANumber` for an element that is infinite or NaN, or too large for `T`).
  public static func read<T: BLASScalar>(
    path: String, as: T.Type = T.self, limits: DataLimits = .defaults
  ) throws -> Matrix<T> {
    let bytes = try InputFile.readAll(path, limits: limits)
    let h = try header(bytes, path: path)
    try checkSize(
      h, fileBytes: bytes.count, path: path, limits: limits, valueBytes: MemoryLayout<T>.size)
    var m = Matrix<T>(rows: h.rows, cols: h.cols)
    try decode(bytes, h, path: path) { values in
      try m.withUnsafeMutableBufferPointer { out in
        for k in 0..<out.count {
          let v = values(k)
          out[k] = T(v)
          if !out[k].isFinite {
            throw elementError(v, k, h, path: path, narrow: T.self == Float.self)
          }
        }
      }
    }
    return m
  }

  /// Checks the shape the header declares against the file's size (`fileBytes`, the whole
  /// file) and against `limits` for a matrix of `valueBytes`-byte elements (one row at least,
  /// so that a header declaring no rows but 10¹² columns is refused too).
  /// - Throws: `DataError` with `npyTruncated` or `tooLarge`, stating the sizes.
  static func checkSize(
    _ h: Header, fileBytes: Int, path: String, limits: DataLimits, valueBytes: Int
  ) throws {
    let shape = h.shape.count == 1 ? "\(h.shape[0])" : "\(h.rows)×\(h.cols)"
    let type = h.elementSize == 4 ? "float32" : "float64"
    let available = max(0, fileBytes - h.dataOffset)
    let needed = DataLimits.product(h.rows, h.cols, h.elementSize)
    if needed == nil || needed! > available {
      let size = needed.map { "\(DataLimits.bytes($0)), \($0) bytes" } ?? "more than 9.2 EB"
      throw DataError(
        .npyTruncated,
        "the .npy file is truncated: its header declares \(shape) \(type) (\(size)) but the "
          + "file holds \(available) bytes of data", file: path)
    }
    let matrix = DataLimits.product(max(h.rows, 1), h.cols, valueBytes)
    if matrix == nil || matrix! > limits.memoryBytes {
      let size = matrix.map { DataLimits.bytes($0) } ?? "more than 9.2 EB"
      throw DataError(
        .tooLarge,
        "the .npy header declares \(shape) \(type): the matrix would take \(size), more than "
          + "\(limits.memoryText)", file: path)
    }
  }

  /// The error for element `k` (as read, `value`): infinite or NaN, or (`narrow`) beyond
  /// `Float`'s range.
  static func elementError(_ value: Double, _ k: Int, _ h: Header, path: String, narrow: Bool)
    -> DataError
  {
    let row = k / max(h.cols, 1)
    let column = k % max(h.cols, 1)
    let place = "element [\(row), \(column)] (row \(row + 1), column \(column + 1))"
    if value.isFinite && narrow {
      return DataError(
        .notANumber,
        "expected a number within float32's range (±3.4e38) at \(place), found \(value) "
          + "(the matrix is float32)", file: path, column: column + 1)
    }
    return DataError(
      .notANumber, "expected a finite number at \(place), found \(value)", file: path,
      column: column + 1)
  }

  /// Calls `body` with an accessor of element `k` as `Double`, after checking the length.
  /// The header of the `.npy` file at `path`, its size in bytes and, for a gzip file, the
  /// decompressed bytes (a plain file's data is read by row range, `readRows`). A plain
  /// file's header is read from its first MiB.
  static func open(_ path: String, limits: DataLimits) throws -> (
    header: Header, fileBytes: Int, whole: [UInt8]?
  ) {
    if InputFile.isGzip(path) {
      let bytes = try InputFile.readAll(path, limits: limits)
      return (try header(bytes, path: path), bytes.count, bytes)
    }
    let prefix = try InputFile.read(path, offset: 0, count: 1 << 20)
    return (try header(prefix, path: path), try InputFile.size(path), nil)
  }

  /// Rows `rows` of a plain `.npy` file's array (its size checked with `checkSize` first),
  /// mapped from the file rather than copied.
  static func mapRows(_ path: String, _ h: Header, rows: Range<Int>) throws -> MappedBytes {
    let rowBytes = h.cols * h.elementSize
    let count = rows.count * rowBytes
    return try InputFile.map(
      path, offset: h.dataOffset + rows.lowerBound * rowBytes, count: count,
      short: { held in
        DataError(
          .npyTruncated,
          "the .npy data is truncated: rows \(rows.lowerBound)..<\(rows.upperBound) need \(count) bytes, the file holds \(held) of them",
          file: path)
      })
  }

  /// Element `k` of the array at `data`, of `elementSize` bytes (8: `<f8`, 4: `<f4`).
  @inline(__always)
  static func element(_ data: UnsafeRawPointer, _ k: Int, elementSize: Int) -> Double {
    elementSize == 8
      ? Double(
        bitPattern: UInt64(littleEndian: data.loadUnaligned(fromByteOffset: 8 * k, as: UInt64.self))
      )
      : Double(
        Float(
          bitPattern: UInt32(
            littleEndian: data.loadUnaligned(fromByteOffset: 4 * k, as: UInt32.self))
        ))
  }

  static func decode(
    _ bytes: [UInt8], _ h: Header, path: String, _ body: ((Int) -> Double) throws -> Void
  ) throws {
    let needed = DataLimits.product(h.rows, h.cols, h.elementSize).flatMap {
      h.dataOffset.addingReportingOverflow($0).overflow ? nil : h.dataOffset + $0
    }
    guard let needed, bytes.count >= needed else {
      throw DataError(
        .npyTruncated,
        "the .npy data is truncated: \(h.rows)×\(h.cols) elements need more than the "
          + "\(bytes.count) bytes the file has", file: path)
    }
    try bytes.withUnsafeBytes { raw in
      let data = raw.baseAddress! + h.dataOffset
      try body { k in element(data, k, elementSize: h.elementSize) }
    }
  }

  /// Writes `matrix` as a 2-D C-order `.npy` file of `T` (`<f4` or `<f8`).
  public static func write<T: BLASScalar>(_ matrix: Matrix<T>, to path: String) throws {
    try InputFile.writeFile(encode(matrix), to: path)
  }

  /// The bytes of a `.npy` file holding `matrix`.
  public static func encode<T: BLASScalar>(_ matrix: Matrix<T>) -> [UInt8] {
    let descr = T.self == Float.self ? "<f4" : "<f8"
    var dict =
      "{'descr': '\(descr)', 'fortran_order': False, 'shape': (\(matrix.rows), \(matrix.cols)), }"
    var version: UInt8 = 1
    var prefix = 10
    if (dict.utf8.count + 1 + prefix) > 65_535 + prefix {
      version = 2
      prefix = 12
    }
    let total = prefix + dict.utf8.count + 1
    dict += String(repeating: " ", count: (64 - total % 64) % 64) + "\n"
    var out = magic + [version, 0]
    let length = dict.utf8.count
    for k in 0..<(version == 1 ? 2 : 4) { out.append(UInt8(truncatingIfNeeded: length >> (8 * k))) }
    out += Array(dict.utf8)
    // Float and Double are stored in the host's byte order, little-endian on every platform
    // Swift supports here, which is the order '<f4' / '<f8' declare.
    matrix.withUnsafeBufferPointer { values in
      out.append(contentsOf: UnsafeRawBufferPointer(values))
    }
    return out
  }
}

extension Substring {
  fileprivate func trimmingSpaces() -> Substring {
    var s = self
    while s.first == " " { s = s.dropFirst() }
    while s.last == " " { s = s.dropLast() }
    return s
  }
}
