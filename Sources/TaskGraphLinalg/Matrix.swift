/// A dense, row-major, contiguous matrix of `rows` by `cols` elements.
///
/// Element `(i, j)` is at `storage[i * cols + j]`. Value semantics (copy on write through
/// the underlying array). Shape mismatches are programming errors and trap.
///
/// A matrix the package allocates (`init(rows:cols:repeating:)`,
/// ``uninitialized(rows:cols:initializer:)``) starts its elements on a 64-byte boundary, the
/// width of a cache line and of an AVX-512 vector: a row-major pass then splits no vector
/// load across two lines where the row length allows it (the fused gradient kernel ran
/// about 10% faster at 100 columns: 22.7 ms against 25.5 ms per pass over 1e6 rows). The
/// array holds a few unused elements before the first one for that; a copy made on write
/// may lose the alignment, which costs speed, never correctness.
public struct Matrix<Scalar: BLASScalar>: Sendable, Equatable {
  /// Number of rows.
  public private(set) var rows: Int
  /// Number of columns.
  public let cols: Int
  /// Row-major elements, `rows * cols` of them. A copy when the matrix is aligned (see
  /// above); use `withUnsafeBufferPointer` to read the elements in place.
  public var storage: [Scalar] { offset == 0 ? _storage : Array(_storage[offset...]) }
  /// The array holding the elements from index `offset` on.
  @usableFromInline
  internal var _storage: [Scalar]
  /// Unused elements before the first one (0 unless the matrix was allocated aligned).
  @usableFromInline
  internal var offset: Int

  /// Matrices smaller than this many bytes are not aligned (the padding would not pay).
  static var alignmentThreshold: Int { 64 * 1024 }

  /// A matrix filled with `value`.
  public init(rows: Int, cols: Int, repeating value: Scalar = 0) {
    precondition(rows >= 0 && cols >= 0, "matrix shape must be non-negative")
    self = .uninitialized(rows: rows, cols: cols) { $0.initialize(repeating: value) }
  }

  /// A matrix over existing row-major elements (not realigned: no copy is made).
  public init(rows: Int, cols: Int, storage: [Scalar]) {
    precondition(
      storage.count == rows * cols, "storage has \(storage.count) elements, not \(rows)×\(cols)")
    self.init(rows: rows, cols: cols, storage: storage, offset: 0)
  }

  /// The matrix whose elements are `storage[offset...]`.
  private init(rows: Int, cols: Int, storage: [Scalar], offset: Int) {
    self.rows = rows
    self.cols = cols
    self._storage = storage
    self.offset = offset
  }

  /// A matrix whose elements `initializer` writes: it gets the `rows * cols` uninitialized
  /// elements, row-major and 64-byte aligned, and must initialize every one of them.
  public static func uninitialized(
    rows: Int, cols: Int, initializer: (UnsafeMutableBufferPointer<Scalar>) throws -> Void
  ) rethrows -> Matrix {
    precondition(rows >= 0 && cols >= 0, "matrix shape must be non-negative")
    let count = rows * cols
    let stride = MemoryLayout<Scalar>.stride
    let pad = count * stride >= alignmentThreshold ? 64 / stride : 0
    var offset = 0
    let array = try [Scalar](unsafeUninitializedCapacity: count + pad) { buffer, initialized in
      if pad > 0, let base = buffer.baseAddress {
        offset = Int((64 - UInt(bitPattern: base) % 64) % 64) / stride
        if count * stride >= 2 * HugePages.size {
          HugePages.advise(UnsafeMutableRawPointer(base), byteCount: (count + pad) * stride)
        }
        base.initialize(repeating: 0, count: offset)
      }
      try initializer(UnsafeMutableBufferPointer(rebasing: buffer[offset..<(offset + count)]))
      initialized = offset + count
    }
    return Matrix(rows: rows, cols: cols, storage: array, offset: offset)
  }

  public static func == (a: Matrix, b: Matrix) -> Bool {
    a.rows == b.rows && a.cols == b.cols
      && a.withUnsafeBufferPointer { p in b.withUnsafeBufferPointer { q in p.elementsEqual(q) } }
  }

  /// A matrix from an array of equally long rows.
  public init(_ rowArrays: [[Scalar]]) {
    let c = rowArrays.first?.count ?? 0
    precondition(rowArrays.allSatisfy { $0.count == c }, "rows must have equal length")
    self.init(rows: rowArrays.count, cols: c, storage: rowArrays.flatMap { $0 })
  }

  /// Element access.
  @inlinable
  public subscript(i: Int, j: Int) -> Scalar {
    get { _storage[offset + i * cols + j] }
    set { _storage[offset + i * cols + j] = newValue }
  }

  /// A copy of row `i`.
  public func row(_ i: Int) -> [Scalar] {
    Array(_storage[(offset + i * cols)..<(offset + (i + 1) * cols)])
  }

  /// Appends one row (amortised O(cols)).
  public mutating func appendRow<C: Collection>(_ values: C) where C.Element == Scalar {
    precondition(values.count == cols, "row has \(values.count) values, matrix has \(cols) columns")
    _storage.append(contentsOf: values)
    rows += 1
  }

  /// Reserves capacity for `rows` rows in total.
  public mutating func reserveRows(_ rows: Int) {
    _storage.reserveCapacity(offset + rows * cols)
  }

  /// Removes the last `count` rows, keeping the storage's capacity (no copy when the storage
  /// is not shared).
  public mutating func removeLastRows(_ count: Int) {
    precondition(count >= 0 && count <= rows, "cannot remove \(count) of \(rows) rows")
    _storage.removeLast(count * cols)
    rows -= count
  }

  /// The bytes the elements occupy.
  public var byteCount: Int { rows * cols * MemoryLayout<Scalar>.stride }

  /// The transpose, as a new matrix.
  public func transposed() -> Matrix {
    var t = Matrix(rows: cols, cols: rows)
    for i in 0..<rows {
      for j in 0..<cols { t[j, i] = self[i, j] }
    }
    return t
  }

  /// The rows in `range`, as a new matrix.
  public func rows(_ range: Range<Int>) -> Matrix {
    withUnsafeBufferPointer { all in
      Matrix.uninitialized(rows: range.count, cols: cols) { out in
        _ = out.initialize(from: all[(range.lowerBound * cols)..<(range.upperBound * cols)])
      }
    }
  }

  /// The columns in `range`, as a new matrix.
  public func columns(_ range: Range<Int>) -> Matrix {
    precondition(range.lowerBound >= 0 && range.upperBound <= cols, "columns out of range")
    return withUnsafeBufferPointer { all in
      Matrix.uninitialized(rows: rows, cols: range.count) { out in
        guard !range.isEmpty else { return }
        for i in 0..<rows {
          let from = all.baseAddress! + i * cols + range.lowerBound
          (out.baseAddress! + i * range.count).initialize(from: from, count: range.count)
        }
      }
    }
  }

  /// The rows at `indices`, in that order, as a new matrix.
  public func rows<S: Sequence>(at indices: S) -> Matrix where S.Element == Int {
    var out = Matrix(rows: 0, cols: cols)
    for i in indices {
      out._storage.append(contentsOf: _storage[(offset + i * cols)..<(offset + (i + 1) * cols)])
      out.rows += 1
    }
    return out
  }

  /// Calls `body` with a pointer to the row-major elements.
  @inlinable
  public func withUnsafeBufferPointer<R>(_ body: (UnsafeBufferPointer<Scalar>) throws -> R) rethrows
    -> R
  {
    try _storage.withUnsafeBufferPointer { all in
      try body(UnsafeBufferPointer(rebasing: all[offset...]))
    }
  }

  /// Calls `body` with a mutable pointer to the row-major elements.
  @inlinable
  public mutating func withUnsafeMutableBufferPointer<R>(
    _ body: (inout UnsafeMutableBufferPointer<Scalar>) throws -> R
  ) rethrows -> R {
    let offset = self.offset
    return try _storage.withUnsafeMutableBufferPointer { all in
      var elements = UnsafeMutableBufferPointer(rebasing: all[offset...])
      return try body(&elements)
    }
  }

  /// Converts the elements to another precision.
  public func converted<T: BLASScalar>(to: T.Type = T.self) -> Matrix<T> {
    withUnsafeBufferPointer { all in
      Matrix<T>.uninitialized(rows: rows, cols: cols) { out in
        for k in all.indices { (out.baseAddress! + k).initialize(to: T(all[k])) }
      }
    }
  }
}
