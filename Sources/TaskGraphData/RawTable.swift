/// What the reader does with one source column.
enum ColumnRole: Equatable {
  /// Not needed: the field is skipped without being converted.
  case skip
  /// The label: parsed as a number into `RawTable.labels`.
  case label
  /// A numeric feature stored in `RawTable.numeric` at this slot.
  case numeric(Int)
  /// A categorical feature stored as codes in `RawTable.codes` at this slot.
  case categorical(Int)
}

/// The needed columns of the rows read, in a compact form: numeric values as `Double`
/// (NaN = missing), categorical values as small integer codes into per-column dictionaries
/// (−1 = missing). This is the single intermediate between parsing and materialising; it is
/// much smaller than the one-hot encoded matrix, and never holds a `String` per field.
struct RawTable {
  /// Names of the numeric slots.
  var numericNames: [String]
  /// Names of the categorical slots.
  var categoricalNames: [String]
  /// Row-major `rows × numericNames.count` values, NaN where missing.
  var numeric: [Double] = []
  /// Row-major `rows × categoricalNames.count` codes, −1 where missing.
  var codes: [Int32] = []
  /// Per categorical slot, the distinct values in order of first appearance (index = code).
  var categories: [[String]]
  /// Labels (NaN where missing), or nil when the source has no label column.
  var labels: [Double]?
  /// Number of rows.
  var rows = 0
  /// The feature slots in source-column order (`.numeric` / `.categorical` roles).
  var order: [ColumnRole] = []

  init(numericNames: [String], categoricalNames: [String], hasLabel: Bool) {
    self.numericNames = numericNames
    self.categoricalNames = categoricalNames
    self.categories = Array(repeating: [], count: categoricalNames.count)
    self.labels = hasLabel ? [] : nil
    self.order = numericNames.indices.map { .numeric($0) }
  }
}

/// Maps the bytes of categorical values to codes without building a `String` for values
/// already seen in the previous row of the same column (the common case in sorted data).
struct CategoryEncoder {
  private var index: [String: Int32] = [:]
  private var lastBytes: [UInt8] = []
  private var lastCode: Int32 = -1
  /// Values in order of first appearance.
  private(set) var values: [String] = []

  @inline(__always)
  mutating func code(_ p: UnsafePointer<UInt8>, _ n: Int) -> Int32 {
    if lastCode >= 0 && n == lastBytes.count {
      let same = lastBytes.withUnsafeBufferPointer { last -> Bool in
        for k in 0..<n where last[k] != p[k] { return false }
        return true
      }
      if same { return lastCode }
    }
    let buffer = UnsafeBufferPointer(start: p, count: n)
    let key = String(decoding: buffer, as: UTF8.self)
    let code: Int32
    if let c = index[key] {
      code = c
    } else {
      code = Int32(values.count)
      index[key] = code
      values.append(key)
    }
    lastBytes.removeAll(keepingCapacity: true)
    lastBytes.append(contentsOf: buffer)
    lastCode = code
    return code
  }
}
