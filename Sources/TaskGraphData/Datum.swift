import TaskGraphLinalg

/// One example: a dense feature vector and its label.
///
/// The unit that flows through the streaming layer (`DatumIterator` → `DatumTransformer` →
/// `DatumStore`), which is how a user plugs in a source or a transform of their own. The
/// built-in file formats go through `DataPipeline`, which parses straight into a matrix.
public struct Datum: Sendable, Equatable {
  /// Feature values.
  public var features: [Double]
  /// The label, or nil when the source has none.
  public var label: Double?

  /// A datum from its parts.
  public init(features: [Double], label: Double?) {
    self.features = features
    self.label = label
  }
}

/// A source of data, one `Datum` at a time; `next()` returns nil at the end.
///
/// The Swift form of the original `DatumIterator` (`HasNext` / `Next`): like
/// `IteratorProtocol`, but reading a file can fail, so `next()` throws. Any
/// `IteratorProtocol` of `Datum` is one too (see `DatumSequenceIterator`).
public protocol DatumIterator {
  /// The next datum, or nil at the end.
  mutating func next() throws -> Datum?
}

/// A step that rewrites each datum, or drops it by returning nil.
///
/// Transformers are values: a fitted transform holds its statistics and can be stored.
public protocol DatumTransformer: Sendable {
  /// The transformed datum, or nil to drop it.
  func transform(_ datum: Datum) throws -> Datum?
}

/// Adapts any `IteratorProtocol` whose elements are `Datum` (for example an array's iterator or
/// a generator) to `DatumIterator`.
public struct DatumSequenceIterator<Base: IteratorProtocol>: DatumIterator
where Base.Element == Datum {
  private var base: Base
  /// Wraps `base`.
  public init(_ base: Base) { self.base = base }
  /// The base iterator's next element.
  public mutating func next() throws -> Datum? { base.next() }
}

/// The data of `base`, passed through `transformer`.
public struct TransformedDatumIterator<Base: DatumIterator, Transformer: DatumTransformer>:
  DatumIterator
{
  private var base: Base
  private let transformer: Transformer
  /// `base` transformed by `transformer`.
  public init(_ base: Base, _ transformer: Transformer) {
    self.base = base
    self.transformer = transformer
  }
  /// The next datum that the transformer keeps.
  public mutating func next() throws -> Datum? {
    while let datum = try base.next() {
      if let out = try transformer.transform(datum) { return out }
    }
    return nil
  }
}

extension DatumIterator {
  /// This iterator's data passed through `transformer`.
  public func transformed<Transformer: DatumTransformer>(_ transformer: Transformer)
    -> TransformedDatumIterator<Self, Transformer>
  {
    TransformedDatumIterator(self, transformer)
  }
}

/// A transformer from a closure.
public struct ClosureDatumTransformer: DatumTransformer {
  private let body: @Sendable (Datum) throws -> Datum?
  /// A transformer that calls `body`.
  public init(_ body: @escaping @Sendable (Datum) throws -> Datum?) { self.body = body }
  /// Calls the closure.
  public func transform(_ datum: Datum) throws -> Datum? { try body(datum) }
}

/// The rows of a materialised matrix (and labels) as data: the way back from a `DatumStore`
/// or a `PreparedData` to the streaming layer.
public struct MatrixDatumIterator<T: BLASScalar>: DatumIterator, Sequence, IteratorProtocol {
  private let x: Matrix<T>
  private let y: [Double]?
  private var row = 0
  /// Iterates the rows of `x`, labelled by `y` when given (`y.count == x.rows`).
  public init(x: Matrix<T>, y: [Double]?) {
    precondition(y == nil || y!.count == x.rows, "one label per row")
    self.x = x
    self.y = y
  }
  /// The next row.
  public mutating func next() -> Datum? {
    guard row < x.rows else { return nil }
    defer { row += 1 }
    let features = x.withUnsafeBufferPointer { all in
      (0..<x.cols).map { Double(all[row * x.cols + $0]) }
    }
    return Datum(features: features, label: y?[row])
  }
}

/// An in-memory cache of data: features as a dense row-major `Matrix<T>` and labels as
/// `[Double]`, filled from any `DatumIterator` without intermediate copies (rows are appended
/// straight into the matrix storage).
public struct DatumStore<T: BLASScalar>: Sendable {
  /// The features, one row per datum.
  public private(set) var x: Matrix<T>
  /// The labels, one per row (NaN for a datum without a label).
  public private(set) var y: [Double]

  /// An empty store of rows of `width` features.
  public init(width: Int) {
    x = Matrix(rows: 0, cols: width)
    y = []
  }

  /// Reads every datum of `iterator` into a store. The width is that of the first datum
  /// (0 for no data); a datum of another width is a `DataError` (`raggedRow`).
  /// - Parameter expectedRows: a capacity hint.
  public init<I: DatumIterator>(_ iterator: I, expectedRows: Int = 0) throws {
    var it = iterator
    guard let first = try it.next() else {
      self.init(width: 0)
      return
    }
    self.init(width: first.features.count)
    x.reserveRows(expectedRows)
    y.reserveCapacity(expectedRows)
    try append(first)
    while let datum = try it.next() { try append(datum) }
  }

  /// Appends one datum.
  /// - Throws: `DataError` (`raggedRow`) when its width differs from the store's.
  public mutating func append(_ datum: Datum) throws {
    guard datum.features.count == x.cols else {
      throw DataError(
        .raggedRow,
        "datum \(x.rows + 1) has \(datum.features.count) features, the store has \(x.cols)")
    }
    x.appendRow(datum.features.lazy.map { T($0) })
    y.append(datum.label ?? .nan)
  }

  /// The number of rows.
  public var count: Int { x.rows }

  /// The stored data as an iterator.
  public func makeIterator() -> MatrixDatumIterator<T> { MatrixDatumIterator(x: x, y: y) }
}

/// Builds a `DatumIterator` over a file, the Swift form of the original
/// `DatumIteratorBuilder`.
public enum DatumIteratorBuilder {
  /// The rows of `shard` of `path` after `pipeline`, as data. The rows are materialised once
  /// (the file formats parse in bulk) and then iterated.
  public static func iterator(
    path: String, pipeline: FittedPipeline, requireLabel: Bool = true, shard: Shard? = nil
  ) throws -> MatrixDatumIterator<Double> {
    let data = try DataPipeline.apply(
      pipeline, path: path, requireLabel: requireLabel, shard: shard, as: Double.self)
    return MatrixDatumIterator(x: data.x, y: data.y)
  }
}

extension PreparedData {
  /// The rows as data, for custom transformers.
  public func makeDatumIterator() -> MatrixDatumIterator<T> { MatrixDatumIterator(x: x, y: y) }
}
