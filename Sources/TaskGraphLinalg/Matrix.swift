/// A dense, row-major, contiguous matrix of `rows` by `cols` elements.
///
/// Element `(i, j)` is at `storage[i * cols + j]`. Value semantics (copy on write through
/// the underlying array). Shape mismatches are programming errors and trap.
public struct Matrix<Scalar: BLASScalar>: Sendable, Equatable {
  /// Number of rows.
  public private(set) var rows: Int
  /// Number of columns.
  public let cols: Int
  /// Row-major elements, `rows * cols` of them.
  public var storage: [Scalar] { _storage }
  @usableFromInline
  internal var _storage: [Scalar]

  /// A matrix filled with `value`.
  public init(rows: Int, cols: Int, repeating value: Scalar = 0) {
    precondition(rows >= 0 && cols >= 0, "matrix shape must be non-negative")
    self.rows = rows
    self.cols = cols
    self._storage = Array(repeating: value, count: rows * cols)
  }

  /// A matrix over existing row-major elements.
  public init(rows: Int, cols: Int, storage: [Scalar]) {
    precondition(
      storage.count == rows * cols, "storage has \(storage.count) elements, not \(rows)×\(cols)")
    self.rows = rows
    self.cols = cols
    self._storage = storage
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
    get { _storage[i * cols + j] }
    set { _storage[i * cols + j] = newValue }
  }

  /// A copy of row `i`.
  public func row(_ i: Int) -> [Scalar] {
    Array(storage[(i * cols)..<((i + 1) * cols)])
  }

  /// Appends one row (amortised O(cols)).
  public mutating func appendRow<C: Collection>(_ values: C) where C.Element == Scalar {
    precondition(values.count == cols, "row has \(values.count) values, matrix has \(cols) columns")
    _storage.append(contentsOf: values)
    rows += 1
  }

  /// Reserves capacity for `rows` rows in total.
  public mutating func reserveRows(_ rows: Int) {
    _storage.reserveCapacity(rows * cols)
  }

  /// The bytes the elements occupy.
  public var byteCount: Int { storage.count * MemoryLayout<Scalar>.stride }

  /// The transpose, as a new matrix.
  public func transposed() -> Matrix {
    var t = Matrix(rows: cols, cols: rows)
    for i in 0..<rows {
      for j in 0..<cols { t._storage[j * rows + i] = storage[i * cols + j] }
    }
    return t
  }

  /// The rows in `range`, as a new matrix.
  public func rows(_ range: Range<Int>) -> Matrix {
    Matrix(
      rows: range.count, cols: cols,
      storage: Array(storage[(range.lowerBound * cols)..<(range.upperBound * cols)]))
  }

  /// The rows at `indices`, in that order, as a new matrix.
  public func rows<S: Sequence>(at indices: S) -> Matrix where S.Element == Int {
    var out = Matrix(rows: 0, cols: cols)
    for i in indices {
      out._storage.append(contentsOf: storage[(i * cols)..<((i + 1) * cols)]); out.rows += 1
    }
    return out
  }

  /// Calls `body` with a pointer to the row-major elements.
  @inlinable
  public func withUnsafeBufferPointer<R>(_ body: (UnsafeBufferPointer<Scalar>) throws -> R) rethrows
    -> R
  {
    try _storage.withUnsafeBufferPointer(body)
  }

  /// Calls `body` with a mutable pointer to the row-major elements.
  @inlinable
  public mutating func withUnsafeMutableBufferPointer<R>(
    _ body: (inout UnsafeMutableBufferPointer<Scalar>) throws -> R
  ) rethrows -> R {
    try _storage.withUnsafeMutableBufferPointer(body)
  }

  /// Converts the elements to another precision.
  public func converted<T: BLASScalar>(to: T.Type = T.self) -> Matrix<T> {
    Matrix<T>(rows: rows, cols: cols, storage: storage.map { T($0) })
  }
}
