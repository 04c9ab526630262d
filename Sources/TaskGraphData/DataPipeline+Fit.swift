import TaskGraphLinalg

extension DataPipeline {
  /// Which rows survive: a row is dropped if its label is missing (when labels are required) or,
  /// under `MissingPolicy.drop`, if any needed feature is missing.
  static func keptRows(
    _ table: RawTable, numericSlots: [Int], categoricalSlots: [Int], policy: MissingPolicy,
    requireLabel: Bool
  ) -> [Bool] {
    var keep = [Bool](repeating: true, count: table.rows)
    let cw = table.categoricalNames.count
    let checkLabel = requireLabel && table.hasLabel
    // A reader that refused NaN leaves no value to look for.
    let numericSlots = table.numericMayBeMissing ? numericSlots : []
    table.forEachBlock { rows, block in
      for r in rows {
        let i = r - rows.lowerBound
        if checkLabel && block.labels[i].isNaN {
          keep[r] = false
          continue
        }
        guard policy == .drop else { continue }
        for s in numericSlots where block.numeric(i * block.stride + s).isNaN {
          keep[r] = false
          break
        }
        if !keep[r] { continue }
        for s in categoricalSlots where block.codes[i * cw + s] < 0 {
          keep[r] = false
          break
        }
      }
    }
    return keep
  }

  /// The values of numeric slot `s` in the rows that are kept, in row order (NaN where
  /// missing).
  static func numericColumn(_ table: RawTable, _ s: Int, keep: [Bool]) -> [Double] {
    var values: [Double] = []
    table.forEachBlock { rows, block in
      for r in rows where keep[r] {
        values.append(block.numeric((r - rows.lowerBound) * block.stride + s))
      }
    }
    return values
  }

  /// The mean and standard deviation of `values` (NaN read as `fill`), summed over the values
  /// divided by the largest magnitude among them, so that neither sum can overflow; both
  /// results are then at most that magnitude, hence finite.
  static func scaledMoments(_ values: [Double], fill: Double) -> (mean: Double, std: Double) {
    let filled = values.map { $0.isNaN ? fill : $0 }
    let top = filled.reduce(0) { max($0, abs($1)) }
    guard top > 0, top.isFinite else { return (0, 0) }
    let n = Double(filled.count)
    let mean = filled.reduce(0) { $0 + $1 / top } / n
    let variance = filled.reduce(0) { $0 + ($1 / top - mean) * ($1 / top - mean) } / n
    return (mean * top, variance.squareRoot() * top)
  }

  /// Calls `body` with the numeric values of each kept row, in row order.
  private static func forEachKeptRow(
    _ table: RawTable, _ keep: [Bool], _ body: (UnsafePointer<Double>) -> Void
  ) {
    let nw = table.numericNames.count
    var row = [Double](repeating: 0, count: nw)
    row.withUnsafeMutableBufferPointer { row in
      table.forEachBlock { rows, block in
        for r in rows where keep[r] {
          let first = (r - rows.lowerBound) * block.stride
          if let values = block.doubles(from: first) {
            body(values)
          } else {
            for s in 0..<nw { row[s] = block.numeric(first + s) }
            body(UnsafePointer(row.baseAddress!))
          }
        }
      }
    }
  }

  /// Fits vocabularies, imputation values and standardisation on the rows of `table` that are
  /// kept, in source-column order.
  ///
  /// Sums run over the table row by row with one accumulator per column (reading the
  /// row-major table once per statistic instead of once per column); each column's sum still
  /// adds its values in row order, so the results do not depend on the number of columns.
  static func fitTransforms(_ table: RawTable, options: PipelineOptions, path: String) throws
    -> FittedPipeline
  {
    let keep = keptRows(
      table, numericSlots: Array(table.numericNames.indices),
      categoricalSlots: Array(table.categoricalNames.indices), policy: options.missing,
      requireLabel: true)
    let nw = table.numericNames.count
    let cw = table.categoricalNames.count
    var fills = [Double?](repeating: nil, count: nw)
    switch options.missing {
    case .drop:
      break
    case .mean:
      var sums = [Double](repeating: 0, count: nw)
      var counts = [Int](repeating: 0, count: nw)
      forEachKeptRow(table, keep) { values in
        for s in 0..<nw where !values[s].isNaN {
          sums[s] += values[s]
          counts[s] += 1
        }
      }
      for s in 0..<nw { fills[s] = counts[s] == 0 ? 0 : sums[s] / Double(counts[s]) }
    case .median:
      for s in 0..<nw {
        var values = numericColumn(table, s, keep: keep).filter { !$0.isNaN }
        fills[s] = Statistics.median(&values)
      }
    }
    var used = table.categories.map { [Bool](repeating: false, count: $0.count) }
    table.forEachBlock { rows, block in
      for r in rows where keep[r] {
        let codes = block.codes + (r - rows.lowerBound) * cw
        for s in 0..<cw where codes[s] >= 0 { used[s][Int(codes[s])] = true }
      }
    }
    var columns: [FittedPipeline.Column] = []
    for role in table.order {
      switch role {
      case .numeric(let s):
        columns.append(.init(name: table.numericNames[s], kind: .numeric, fill: fills[s]))
      case .categorical(let s):
        // Sorted, not in the encoder's first-seen order, so that the levels (and the first,
        // which `dropFirst` drops) do not depend on the order of the rows or the shards.
        let vocabulary = table.categories[s].enumerated().filter { used[s][$0.offset] }
          .map(\.element).sorted()
        // A model file must not hold an empty vocabulary (see `FittedPipeline.problem`).
        if vocabulary.isEmpty {
          throw DataError(
            .noFeatures,
            "categorical column '\(table.categoricalNames[s])' has no value in the "
              + "\(keep.lazy.filter { $0 }.count) rows kept for fitting, so one-hot encoding "
              + "gives it no features (exclude it)", file: path)
        }
        columns.append(
          .init(
            name: table.categoricalNames[s], kind: .categorical(vocabulary: vocabulary),
            dropFirst: options.dropFirst))
      case .skip, .label:
        break
      }
    }
    // Dropping the first level leaves a single-level column no feature; a model needs one.
    if columns.allSatisfy({ $0.width == 0 }) {
      let names = columns.map { "'\($0.name)'" }.joined(separator: ", ")
      throw DataError(
        .noFeatures,
        "no features are left: categorical column\(columns.count == 1 ? "" : "s") \(names) "
          + "\(columns.count == 1 ? "has" : "have") a single level in the rows kept for "
          + "fitting, and dropping the first level (drop-first) removes it", file: path)
    }
    // Finite values can still sum to infinity: such a fill would make an unreadable model.
    for (s, fill) in fills.enumerated() where !(fill?.isFinite ?? true) {
      throw DataError(
        .notANumber,
        "the \(options.missing) of column '\(table.numericNames[s])' is not finite (its "
          + "values are too large to impute)", file: path)
    }
    var pipeline = FittedPipeline(label: options.label, columns: columns, missing: options.missing)
    if options.standardize {
      let fill = fills.map { $0 ?? 0 }
      let n = keep.reduce(0) { $0 + ($1 ? 1 : 0) }
      // The accumulators through pointers: the per-row closure then does no copy-on-write
      // check per element (the sums' order, row by row, is unchanged).
      var sums = [Double](repeating: 0, count: nw)
      sums.withUnsafeMutableBufferPointer { sp in
        fill.withUnsafeBufferPointer { fp in
          forEachKeptRow(table, keep) { values in
            for s in 0..<nw { sp[s] += values[s].isNaN ? fp[s] : values[s] }
          }
        }
      }
      let mean = sums.map { n > 0 ? $0 / Double(n) : 0 }
      var squares = [Double](repeating: 0, count: nw)
      squares.withUnsafeMutableBufferPointer { qp in
        fill.withUnsafeBufferPointer { fp in
          mean.withUnsafeBufferPointer { mp in
            forEachKeptRow(table, keep) { values in
              for s in 0..<nw {
                let d = (values[s].isNaN ? fp[s] : values[s]) - mp[s]
                qp[s] += d * d
              }
            }
          }
        }
      }
      var means: [Double] = []
      var scales: [Double] = []
      for (column, role) in zip(columns, table.order) {
        guard case .numeric(let s) = role else {
          means += Array(repeating: 0, count: column.width)
          scales += Array(repeating: 1, count: column.width)
          continue
        }
        var (m, std) = (mean[s], n > 0 ? (squares[s] / Double(n)).squareRoot() : 0)
        if !m.isFinite || !std.isFinite {
          // The plain sums overflowed (values near 1e154 and beyond): again, on the values
          // divided by the largest of them.
          (m, std) = scaledMoments(numericColumn(table, s, keep: keep), fill: fill[s])
        }
        means.append(m)
        scales.append(std > 0 ? std : 1)
      }
      pipeline.means = means
      pipeline.scales = scales
    }
    return pipeline
  }

  /// Writes the kept rows of `table` through `pipeline` into a new matrix.
  ///
  /// The table's blocks are released as their rows are written (so memory peaks at about the
  /// larger of the table and the matrix): `table` cannot be read afterwards.
  ///
  /// - Throws: `DataError.Code.tooLarge` (naming `path`) if the matrix would take more than
  ///   `limits.memoryBytes`, e.g. because one-hot encoding a column with very many distinct
  ///   values makes it very wide; nothing is allocated or released then.
  static func materialise<T: BLASScalar>(
    _ table: RawTable, _ pipeline: FittedPipeline, requireLabel: Bool,
    limits: DataLimits = .defaults, path: String? = nil
  ) throws -> PreparedData<T> {
    // Map each pipeline column to its slot in the table (matched by name).
    var numericSlot: [String: Int] = [:]
    for (s, name) in table.numericNames.enumerated() { numericSlot[name] = s }
    var categoricalSlot: [String: Int] = [:]
    for (s, name) in table.categoricalNames.enumerated() { categoricalSlot[name] = s }
    var plan = OutputPlan(width: pipeline.featureNames.count)
    var j = 0
    for column in pipeline.columns {
      switch column.kind {
      case .numeric:
        plan.numeric.append(
          .init(
            slot: numericSlot[column.name]!, column: j, fill: column.fill,
            mean: pipeline.means?[j] ?? 0, scale: pipeline.scales?[j] ?? 1))
      case .categorical:
        let s = categoricalSlot[column.name]!
        // A dropped first level (the reference) maps to −1 like an unseen value: all zeros.
        var position: [String: Int32] = [:]
        for (k, v) in column.levels.enumerated() { position[v] = Int32(k) }
        plan.categorical.append(
          .init(
            slot: s, column: j, codeToIndex: table.categories[s].map { position[$0] ?? -1 }))
      }
      j += column.width
    }
    plan.standardize = pipeline.means != nil && pipeline.scales != nil
    let keep = keptRows(
      table, numericSlots: plan.numeric.map(\.slot), categoricalSlots: plan.categorical.map(\.slot),
      policy: pipeline.missing, requireLabel: requireLabel)
    let kept = keep.reduce(0) { $0 + ($1 ? 1 : 0) }
    try checkMatrixSize(
      rows: kept, pipeline, valueBytes: MemoryLayout<T>.size, limits: limits, path: path)
    var y: [Double]? = table.hasLabel ? [] : nil
    y?.reserveCapacity(kept)
    // Dispatch to concrete element types so that the row loop is specialised (this generic
    // function is called across modules, where it would run through witness tables).
    let x: Matrix<T>
    if T.self == Double.self {
      x = unsafeBitCast(fillRows(Double.self, table, plan, keep, kept, &y), to: Matrix<T>.self)
    } else if T.self == Float.self {
      x = unsafeBitCast(fillRows(Float.self, table, plan, keep, kept, &y), to: Matrix<T>.self)
    } else {
      x = fillRows(T.self, table, plan, keep, kept, &y)
    }
    return PreparedData(
      x: x, y: y, featureNames: pipeline.featureNames, droppedRows: table.rows - kept,
      rowsRead: table.rows, pipeline: pipeline)
  }
}

extension DataPipeline {
  /// Checks that a `rows` × `pipeline.featureNames.count` matrix of `valueBytes`-byte elements
  /// fits in `limits.memoryBytes`; the error states its size and the widest one-hot group.
  static func checkMatrixSize(
    rows: Int, _ pipeline: FittedPipeline, valueBytes: Int, limits: DataLimits, path: String?
  ) throws {
    let width = pipeline.featureNames.count
    let bytes = DataLimits.product(rows, width, valueBytes)
    if let bytes, bytes <= limits.memoryBytes { return }
    let size = bytes.map { DataLimits.bytes($0) } ?? "more than 9.2 EB"
    var message =
      "the prepared matrix would be \(rows) rows × \(width) columns of "
      + "\(valueBytes == 4 ? "float32" : "float64") (\(size)), more than \(limits.memoryText)"
    if let widest = pipeline.columns.max(by: { $0.width < $1.width }), widest.width > 1 {
      message +=
        "; one-hot encoding column '\(widest.name)' gives \(widest.width) of the columns "
        + "(one per distinct value\(widest.dropFirst ? " but the first" : ""))"
    }
    throw DataError(.tooLarge, message, file: path)
  }

  /// The output matrix: each kept row written once, in place, block by block, releasing
  /// each block of the table once its rows are written. Appends the kept rows' labels to `y`.
  static func fillRows<S: BLASScalar>(
    _: S.Type, _ table: RawTable, _ plan: OutputPlan, _ keep: [Bool], _ kept: Int,
    _ y: inout [Double]?
  ) -> Matrix<S> {
    let cw = table.categoricalNames.count
    let width = plan.width
    let standardize = plan.standardize
    let oneHot = !plan.categorical.isEmpty
    var labels: [Double] = []
    labels.reserveCapacity(y == nil ? 0 : kept)
    let out = Matrix<S>.uninitialized(rows: kept, cols: width) { out in
      var o = 0
      plan.numeric.withUnsafeBufferPointer { numericPlan in
        plan.categorical.withUnsafeBufferPointer { categoricalPlan in
          table.forEachBlock { rows, block in
            for r in rows where keep[r] {
              let i = r - rows.lowerBound
              let row = out.baseAddress! + o
              // One-hot groups are mostly zeros; numeric columns are all written below.
              if oneHot { row.initialize(repeating: 0, count: width) }
              let first = i * block.stride
              for p in numericPlan {
                var v = block.numeric(first + p.slot)
                if v.isNaN, let fill = p.fill { v = fill }
                if standardize { v = (v - p.mean) / p.scale }
                (row + p.column).initialize(to: S(v))
              }
              let codes = block.codes + i * cw
              for p in categoricalPlan {
                let c = codes[p.slot]
                if c >= 0 {
                  let k = p.codeToIndex[Int(c)]
                  if k >= 0 { row[p.column + Int(k)] = 1 }
                }
              }
              labels.append(block.labels[i])
              o += width
            }
            table.releaseBlocks(below: rows.upperBound)
          }
        }
      }
    }
    if y != nil { y = labels }
    return out
  }
}

/// How the pipeline's columns are written into an output row.
struct OutputPlan {
  /// A numeric column: its table slot, its output column, the value that replaces a missing
  /// one, and the standardisation (used when `standardize`).
  struct Numeric {
    var slot: Int
    var column: Int
    var fill: Double?
    var mean: Double
    var scale: Double
  }
  /// A one-hot group: its table slot, its first output column, and the table code →
  /// position among the encoded levels (−1: unseen, or the dropped first level).
  struct Categorical {
    var slot: Int
    var column: Int
    var codeToIndex: [Int32]
  }
  /// Output columns.
  var width: Int
  var numeric: [Numeric] = []
  var categorical: [Categorical] = []
  var standardize = false
}

/// Mean and median over plain arrays.
enum Statistics {
  /// The arithmetic mean (0 for no values).
  static func mean(_ values: [Double]) -> Double {
    values.isEmpty ? 0 : values.reduce(0, +) / Double(values.count)
  }

  /// The median (the mean of the middle two for an even count; 0 for no values). Sorts
  /// `values` in place.
  static func median(_ values: inout [Double]) -> Double {
    if values.isEmpty { return 0 }
    values.sort()
    let n = values.count
    return n % 2 == 1 ? values[n / 2] : (values[n / 2 - 1] + values[n / 2]) / 2
  }
}
