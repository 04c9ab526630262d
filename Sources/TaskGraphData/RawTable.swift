import CTaskGraphKernels

/// What the reader does with one source column.
enum ColumnRole: Equatable, Sendable {
  /// Not needed: the field is skipped without being converted.
  case skip
  /// The label: parsed as a number into the table's labels.
  case label
  /// A numeric feature stored in the table's numeric values at this slot.
  case numeric(Int)
  /// A categorical feature stored as codes in the table at this slot.
  case categorical(Int)
}

/// The needed columns of the rows read, in a compact form: numeric values as `Double`, or as
/// `Float` in a *narrow* table (read for a Float matrix, so that the table is no larger than
/// the matrix it becomes) (NaN = missing), categorical values as small integer codes into
/// per-column dictionaries (−1 = missing), labels as `Double` (NaN = missing). This is the
/// single intermediate between parsing and materialising; it is much smaller than a one-hot
/// encoded matrix, and never holds a `String` per field.
///
/// Rows live in blocks of `blockRows` rows mapped from the operating system (see
/// `PageBuffer`): the table grows without copying what it holds, and `releaseBlocks(below:)`
/// returns the memory of rows already written to the matrix, so that materialising needs
/// about the larger of the table and the matrix rather than their sum. Within a block, rows
/// are row-major: `numeric[row * numericNames.count + slot]`.
///
/// A class: the rows are shared storage and are written in place through pointers.
final class RawTable {
  /// One block of rows.
  struct Block {
    fileprivate let memory: PageBuffer
    /// Row-major `blockRows` rows of `numericNames.count` values, `stride` values apart:
    /// `Double`, or `Float` if `narrow`. In a view of a file (`RawTable.view`) they are the
    /// file's bytes, read-only.
    fileprivate let numericBytes: UnsafeMutableRawPointer
    fileprivate let narrow: Bool
    /// Values from one row's first to the next row's: `numericNames.count`, or the file's
    /// columns in a view.
    let stride: Int
    /// `blockRows` labels.
    let labels: UnsafeMutablePointer<Double>
    /// Row-major `blockRows × categoricalNames.count` codes.
    let codes: UnsafeMutablePointer<Int32>

    /// The numeric value at `index` (`row * stride + slot` within the block).
    @inline(__always)
    func numeric(_ index: Int) -> Double { numericBytes.tableValue(index, narrow: narrow) }

    /// Sets the numeric value at `index` (rounded to `Float` in a narrow table).
    @inline(__always)
    func setNumeric(_ index: Int, _ value: Double) {
      numericBytes.setTableValue(index, value, narrow: narrow)
    }

    /// The values from `index` on, in place, if they are stored as `Double` (not narrow).
    @inline(__always)
    func doubles(from index: Int) -> UnsafePointer<Double>? {
      narrow ? nil : UnsafePointer(numericBytes.assumingMemoryBound(to: Double.self) + index)
    }
  }

  /// Where the fields of one row go.
  struct RowPointers {
    /// `numericNames.count` values (`Double`, or `Float` if `narrow`).
    fileprivate let numericBytes: UnsafeMutableRawPointer
    fileprivate let narrow: Bool
    /// `categoricalNames.count` codes.
    let codes: UnsafeMutablePointer<Int32>
    /// The label.
    let label: UnsafeMutablePointer<Double>

    /// Sets the value of numeric slot `s` (rounded to `Float` in a narrow table).
    @inline(__always)
    func setNumeric(_ s: Int, _ value: Double) {
      numericBytes.setTableValue(s, value, narrow: narrow)
    }
  }

  /// Names of the numeric slots.
  let numericNames: [String]
  /// Names of the categorical slots.
  let categoricalNames: [String]
  /// Per categorical slot, the distinct values in order of first appearance (index = code).
  var categories: [[String]]
  /// Whether the rows have labels.
  let hasLabel: Bool
  /// Whether numeric values are stored as `Float`.
  let narrow: Bool
  /// The feature slots in source-column order (`.numeric` / `.categorical` roles).
  var order: [ColumnRole]
  /// Number of rows.
  private(set) var rows = 0
  /// Rows per block, a power of two.
  let blockRows: Int
  private let blockShift: Int
  private var blocks: [Block?] = []
  private let numericWidth: Int
  private let codeWidth: Int
  /// Bytes per numeric value: 4 in a narrow table, else 8.
  private let valueBytes: Int
  /// The file a view's rows are read from (see `view`); nil in a table that holds its rows.
  private var file: MappedBytes?
  /// Whether a numeric value may be missing (NaN). Readers that refuse NaN clear it, so that
  /// finding the rows to keep need not read every value.
  var numericMayBeMissing = true

  /// An empty table. Blocks hold about `blockBytes` bytes each (at least one row). A `narrow`
  /// table stores numeric values as `Float`.
  init(
    numericNames: [String], categoricalNames: [String], hasLabel: Bool, narrow: Bool = false,
    blockBytes: Int = 4 << 20
  ) {
    self.narrow = narrow
    self.valueBytes = narrow ? 4 : 8
    self.numericNames = numericNames
    self.categoricalNames = categoricalNames
    self.categories = Array(repeating: [], count: categoricalNames.count)
    self.hasLabel = hasLabel
    self.order = numericNames.indices.map { .numeric($0) }
    numericWidth = numericNames.count
    codeWidth = categoricalNames.count
    let rowBytes = valueBytes * numericWidth + 8 + 4 * codeWidth
    var shift = 0
    while (rowBytes << (shift + 1)) <= blockBytes { shift += 1 }
    blockShift = shift
    blockRows = 1 << shift
  }

  /// The bytes of rows held now (blocks not yet released).
  var residentBytes: Int { blocks.reduce(0) { $0 + ($1?.memory.byteCount ?? 0) } }

  /// The bytes the rows read so far take (blocks are mapped in larger steps, but their pages
  /// are only resident once written).
  var rowsBytes: Int { rows * (valueBytes * numericWidth + 8 + 4 * codeWidth) }

  private func allocateBlock() {
    let numericBytes = valueBytes * blockRows * numericWidth
    let labelBytes = 8 * blockRows
    let memory = PageBuffer(byteCount: numericBytes + labelBytes + 4 * blockRows * codeWidth)
    let base = memory.base
    if narrow {
      base.bindMemory(to: Float.self, capacity: blockRows * numericWidth)
    } else {
      base.bindMemory(to: Double.self, capacity: blockRows * numericWidth)
    }
    blocks.append(
      Block(
        memory: memory, numericBytes: base, narrow: narrow, stride: numericWidth,
        labels: (base + numericBytes).bindMemory(to: Double.self, capacity: blockRows),
        codes: (base + numericBytes + labelBytes).bindMemory(
          to: Int32.self, capacity: blockRows * codeWidth)))
  }

  /// The storage of row `rows` (the next one), which `commitRow()` adds to the table. Until
  /// then the row may be written and abandoned.
  @inline(__always)
  func nextRow() -> RowPointers {
    precondition(file == nil, "rows cannot be added to a view of a file")
    let b = rows >> blockShift
    if b == blocks.count { allocateBlock() }
    let block = blocks[b].unsafelyUnwrapped
    let i = rows & (blockRows - 1)
    return RowPointers(
      numericBytes: block.numericBytes + i * numericWidth * valueBytes, narrow: narrow,
      codes: block.codes + i * codeWidth, label: block.labels + i)
  }

  /// Adds the row written through `nextRow()`.
  @inline(__always)
  func commitRow() { rows += 1 }

  /// A table of doubles whose numeric values are read in place from `file`, a row-major
  /// array of `rows` rows of `cols` little-endian doubles: numeric slot `s` is element
  /// `first + s` of a row, the label (if any) element `labelColumn`, copied out. Building it
  /// reads every element once to check it is finite; nothing is copied but the labels, so
  /// that loading an 800 MB `.npy` file costs a read of it rather than a copy into fresh
  /// memory (which costs more in page faults than in copying). No categorical slots.
  ///
  /// - Returns: the table, or the index of the first element that is not finite.
  static func view(
    of file: MappedBytes, rows: Int, cols: Int, labelColumn: Int?, first: Int,
    numericNames: [String]
  ) -> Result<RawTable, NonFiniteElement> {
    let table = RawTable(
      numericNames: numericNames, categoricalNames: [], hasLabel: labelColumn != nil)
    table.file = file
    table.numericMayBeMissing = false
    let numeric = UnsafeMutableRawPointer(mutating: file.bytes) + 8 * first
    var r = 0
    while r < rows {
      let count = min(table.blockRows, rows - r)
      let labels = PageBuffer(byteCount: 8 * count)
      let labelPointer = labels.base.bindMemory(to: Double.self, capacity: count)
      if labelColumn == nil { labelPointer.update(repeating: .nan, count: count) }
      let bad = tg_copy_rows_f64(
        file.bytes + r * cols * 8, cols, count, labelColumn.map(Int64.init) ?? -1, first,
        numericNames.count, nil, labelPointer)
      if bad >= 0 { return .failure(NonFiniteElement(index: r * cols + Int(bad))) }
      table.blocks.append(
        Block(
          memory: labels, numericBytes: numeric + r * cols * 8, narrow: false, stride: cols,
          labels: labelPointer, codes: labels.base.bindMemory(to: Int32.self, capacity: 0)))
      table.rows += count
      r += count
    }
    return .success(table)
  }

  /// An element of an array that is not finite, by its index in the array.
  struct NonFiniteElement: Error {
    var index: Int
  }

  /// Appends rows of a row-major array of little-endian IEEE values (`elementSize` 8:
  /// `Double`, 4: `Float`) of `cols` elements per row at `data`: rows `rows`, each row's
  /// element `labelColumn` (if any) as its label, and element `columnOf[s]` as numeric slot
  /// `s`. One tight loop per row, no per-element call: this is how a `.npy` file is read.
  ///
  /// - Returns: the index of the first element read that is not finite (or not finite as a
  ///   `Float` in a narrow table), after which nothing more is appended; nil if none.
  func appendRows(
    from data: UnsafeRawPointer, elementSize: Int, cols: Int, rows: Range<Int>,
    labelColumn: Int?, columnOf: [Int]
  ) -> Int? {
    precondition(codeWidth == 0 && columnOf.count == numericWidth)
    if let bad = appendContiguousRows(
      from: data, elementSize: elementSize, cols: cols, rows: rows, labelColumn: labelColumn,
      columnOf: columnOf)
    {
      return bad
    }
    @inline(__always) func value(_ k: Int) -> Double {
      NPY.element(data, k, elementSize: elementSize)
    }
    for r in rows {
      let row = nextRow()
      let base = r * cols
      if let labelColumn {
        let v = value(base + labelColumn)
        guard v.isFinite else { return base + labelColumn }
        row.label.pointee = v
      } else {
        row.label.pointee = .nan
      }
      if narrow {
        let out = row.numericBytes.assumingMemoryBound(to: Float.self)
        for s in 0..<numericWidth {
          let v = value(base + columnOf[s])
          let f = Float(v)
          guard v.isFinite && f.isFinite else { return base + columnOf[s] }
          out[s] = f
        }
      } else {
        let out = row.numericBytes.assumingMemoryBound(to: Double.self)
        var finite = true
        columnOf.withUnsafeBufferPointer { c in
          for s in 0..<numericWidth {
            let v = value(base + c[s])
            finite = finite && v.isFinite
            out[s] = v
          }
        }
        guard finite else {
          return columnOf.map { base + $0 }.first { !value($0).isFinite }
        }
      }
      commitRow()
    }
    return nil
  }

  /// `appendRows(from:…)` for the common case of a `.npy` file of doubles whose features
  /// are consecutive columns (all of them but the label's, before or after them) in a table
  /// of doubles: the rows go block by block through one C loop that copies and checks them
  /// (`tg_copy_rows_f64`), about memcpy's speed. Returns nil, having appended nothing, when
  /// the case does not apply; else `.some` of `appendRows`' result.
  private func appendContiguousRows(
    from data: UnsafeRawPointer, elementSize: Int, cols: Int, rows: Range<Int>,
    labelColumn: Int?, columnOf: [Int]
  ) -> Int?? {
    #if _endian(little)
      let first = columnOf.first ?? 0
      guard elementSize == 8, !narrow,
        columnOf.indices.allSatisfy({ columnOf[$0] == first + $0 })
      else { return nil }
      var r = rows.lowerBound
      while r < rows.upperBound {
        let b = self.rows >> blockShift
        if b == blocks.count { allocateBlock() }
        let block = blocks[b].unsafelyUnwrapped
        let i = self.rows & (blockRows - 1)
        let count = min(blockRows - i, rows.upperBound - r)
        let numeric = block.numericBytes.assumingMemoryBound(to: Double.self) + i * numericWidth
        if labelColumn == nil {
          (block.labels + i).update(repeating: .nan, count: count)
        }
        let bad = tg_copy_rows_f64(
          data + r * cols * 8, cols, count, labelColumn.map(Int64.init) ?? -1, first,
          numericWidth, numeric, block.labels + i)
        if bad >= 0 { return .some(r * cols + Int(bad)) }
        self.rows += count
        r += count
      }
      return .some(nil)
    #else
      return nil
    #endif
  }

  /// Adds `count` rows with every numeric value `fill`, no label (NaN) and missing codes.
  func appendRows(_ count: Int, numeric fill: Double) {
    for _ in 0..<count {
      let row = nextRow()
      for s in 0..<numericWidth { row.setNumeric(s, fill) }
      row.codes.update(repeating: -1, count: codeWidth)
      row.label.pointee = .nan
      commitRow()
    }
  }

  @inline(__always)
  private func block(_ r: Int) -> Block {
    precondition(r >= 0 && r < rows, "row \(r) out of 0..<\(rows)")
    guard let block = blocks[r >> blockShift] else {
      preconditionFailure("row \(r) was released")
    }
    return block
  }

  /// The numeric value of row `r`, slot `s`.
  @inline(__always)
  func numeric(_ r: Int, _ s: Int) -> Double {
    let block = block(r)
    return block.numeric((r & (blockRows - 1)) * block.stride + s)
  }

  /// Sets the numeric value of row `r`, slot `s`.
  @inline(__always)
  func setNumeric(_ r: Int, _ s: Int, _ value: Double) {
    precondition(file == nil, "a view of a file is read-only")
    block(r).setNumeric((r & (blockRows - 1)) * numericWidth + s, value)
  }

  /// The code of row `r`, categorical slot `s` (−1: missing).
  @inline(__always)
  func code(_ r: Int, _ s: Int) -> Int32 {
    block(r).codes[(r & (blockRows - 1)) * codeWidth + s]
  }

  /// The label of row `r` (NaN: missing or no label column).
  @inline(__always)
  func label(_ r: Int) -> Double { hasLabel ? block(r).labels[r & (blockRows - 1)] : .nan }

  /// Sets the label of row `r`.
  @inline(__always)
  func setLabel(_ r: Int, _ value: Double) { block(r).labels[r & (blockRows - 1)] = value }

  /// Calls `body` with each block and the range of rows it holds, in row order.
  func forEachBlock(_ body: (Range<Int>, Block) throws -> Void) rethrows {
    var first = 0
    for b in blocks.indices where first < rows {
      let range = first..<min(rows, first + blockRows)
      guard let block = blocks[b] else { preconditionFailure("block \(b) was released") }
      try body(range, block)
      first += blockRows
    }
  }

  /// Appends the rows of `other` (same columns), mapping its category codes onto this
  /// table's (values new to this table are added in `other`'s order, so the categories stay in
  /// order of first appearance). `other`'s blocks are released as they are copied.
  func append(_ other: RawTable) {
    precondition(
      other.numericNames == numericNames && other.categoricalNames == categoricalNames
        && other.hasLabel == hasLabel && other.narrow == narrow,
      "appending a table with other columns")
    let codeMaps = (0..<codeWidth).map { s -> [Int32] in
      var index: [String: Int32] = [:]
      for (c, value) in categories[s].enumerated() where index[value] == nil {
        index[value] = Int32(c)
      }
      return other.categories[s].map { value in
        if let c = index[value] { return c }
        let c = Int32(categories[s].count)
        categories[s].append(value)
        index[value] = c
        return c
      }
    }
    other.forEachBlock { rows, block in
      for i in 0..<rows.count {
        let row = nextRow()
        row.numericBytes.copyMemory(
          from: block.numericBytes + i * block.stride * valueBytes,
          byteCount: numericWidth * valueBytes)
        row.label.pointee = block.labels[i]
        for s in 0..<codeWidth {
          let c = block.codes[i * codeWidth + s]
          row.codes[s] = c < 0 ? c : codeMaps[s][Int(c)]
        }
        commitRow()
      }
      other.releaseBlocks(below: rows.upperBound)
    }
  }

  /// Returns the memory of every block whose rows are all below `row`; those rows can no
  /// longer be read.
  func releaseBlocks(below row: Int) {
    let end = row >= rows ? blocks.count : min(blocks.count, row >> blockShift)
    for b in 0..<end { blocks[b] = nil }
  }
}

extension UnsafeMutableRawPointer {
  /// Numeric value `index` of a table's storage: a `Float` if `narrow`, else a `Double`.
  @inline(__always)
  fileprivate func tableValue(_ index: Int, narrow: Bool) -> Double {
    narrow
      ? Double(assumingMemoryBound(to: Float.self)[index])
      : assumingMemoryBound(to: Double.self)[index]
  }

  /// Stores numeric value `index` of a table's storage (rounded to `Float` if `narrow`).
  @inline(__always)
  fileprivate func setTableValue(_ index: Int, _ value: Double, narrow: Bool) {
    if narrow {
      assumingMemoryBound(to: Float.self)[index] = Float(value)
    } else {
      assumingMemoryBound(to: Double.self)[index] = value
    }
  }
}
