import TaskGraphLinalg

extension DataPipeline {
  /// Which rows survive: a row is dropped if its label is missing (when labels are required) or,
  /// under `MissingPolicy.drop`, if any needed feature is missing.
  static func keptRows(
    _ table: RawTable, numericSlots: [Int], categoricalSlots: [Int], policy: MissingPolicy,
    requireLabel: Bool
  ) -> [Bool] {
    var keep = [Bool](repeating: true, count: table.rows)
    if requireLabel, let labels = table.labels {
      for r in 0..<table.rows where labels[r].isNaN { keep[r] = false }
    }
    if policy == .drop {
      let nw = table.numericNames.count
      let cw = table.categoricalNames.count
      for r in 0..<table.rows where keep[r] {
        for s in numericSlots where table.numeric[r * nw + s].isNaN {
          keep[r] = false
          break
        }
        if !keep[r] { continue }
        for s in categoricalSlots where table.codes[r * cw + s] < 0 {
          keep[r] = false
          break
        }
      }
    }
    return keep
  }

  /// Fits vocabularies, imputation values and standardisation on the rows of `table` that are
  /// kept, in source-column order.
  static func fitTransforms(_ table: RawTable, options: PipelineOptions, path: String) throws
    -> FittedPipeline
  {
    let keep = keptRows(
      table, numericSlots: Array(table.numericNames.indices),
      categoricalSlots: Array(table.categoricalNames.indices), policy: options.missing,
      requireLabel: true)
    let nw = table.numericNames.count
    let cw = table.categoricalNames.count
    var columns: [FittedPipeline.Column] = []
    for role in table.order {
      switch role {
      case .numeric(let s):
        var fill: Double? = nil
        if options.missing != .drop {
          var values: [Double] = []
          for r in 0..<table.rows where keep[r] {
            let v = table.numeric[r * nw + s]
            if !v.isNaN { values.append(v) }
          }
          fill = options.missing == .mean ? Statistics.mean(values) : Statistics.median(&values)
        }
        columns.append(.init(name: table.numericNames[s], kind: .numeric, fill: fill))
      case .categorical(let s):
        var used = [Bool](repeating: false, count: table.categories[s].count)
        for r in 0..<table.rows where keep[r] {
          let c = table.codes[r * cw + s]
          if c >= 0 { used[Int(c)] = true }
        }
        let vocabulary = table.categories[s].enumerated().filter { used[$0.offset] }
          .map(\.element).sorted()
        columns.append(
          .init(name: table.categoricalNames[s], kind: .categorical(vocabulary: vocabulary)))
      case .skip, .label:
        break
      }
    }
    var pipeline = FittedPipeline(label: options.label, columns: columns, missing: options.missing)
    if options.standardize {
      var means: [Double] = []
      var scales: [Double] = []
      for (column, role) in zip(columns, table.order) {
        guard case .numeric(let s) = role else {
          means += Array(repeating: 0, count: column.width)
          scales += Array(repeating: 1, count: column.width)
          continue
        }
        var sum = 0.0
        var n = 0
        for r in 0..<table.rows where keep[r] {
          let v = table.numeric[r * nw + s]
          sum += v.isNaN ? (column.fill ?? 0) : v
          n += 1
        }
        let mean = n > 0 ? sum / Double(n) : 0
        var squares = 0.0
        for r in 0..<table.rows where keep[r] {
          let v = table.numeric[r * nw + s]
          let d = (v.isNaN ? (column.fill ?? 0) : v) - mean
          squares += d * d
        }
        let std = n > 0 ? (squares / Double(n)).squareRoot() : 0
        means.append(mean)
        scales.append(std > 0 && std.isFinite ? std : 1)
      }
      pipeline.means = means
      pipeline.scales = scales
    }
    return pipeline
  }

  /// Writes the kept rows of `table` through `pipeline` into a new matrix.
  static func materialise<T: BLASScalar>(
    _ table: RawTable, _ pipeline: FittedPipeline, requireLabel: Bool
  ) -> PreparedData<T> {
    // Map each pipeline column to its slot in the table (matched by name).
    var numericSlot: [String: Int] = [:]
    for (s, name) in table.numericNames.enumerated() { numericSlot[name] = s }
    var categoricalSlot: [String: Int] = [:]
    for (s, name) in table.categoricalNames.enumerated() { categoricalSlot[name] = s }
    var plans: [OutputPlan] = []
    for column in pipeline.columns {
      switch column.kind {
      case .numeric:
        plans.append(.numeric(slot: numericSlot[column.name]!, fill: column.fill))
      case .categorical(let vocabulary):
        let s = categoricalSlot[column.name]!
        var position: [String: Int32] = [:]
        for (k, v) in vocabulary.enumerated() { position[v] = Int32(k) }
        plans.append(
          .categorical(
            slot: s, codeToIndex: table.categories[s].map { position[$0] ?? -1 },
            width: vocabulary.count))
      }
    }
    let keep = keptRows(
      table, numericSlots: plans.compactMap { if case .numeric(let s, _) = $0 { s } else { nil } },
      categoricalSlots: plans.compactMap {
        if case .categorical(let s, _, _) = $0 { s } else { nil }
      }, policy: pipeline.missing, requireLabel: requireLabel)
    let kept = keep.reduce(0) { $0 + ($1 ? 1 : 0) }
    let width = pipeline.featureNames.count
    var y: [Double]? = table.labels == nil ? nil : []
    y?.reserveCapacity(kept)
    // Dispatch to concrete element types so that the row loop is specialised (this generic
    // function is called across modules, where it would run through witness tables).
    let storage: [T]
    if T.self == Double.self {
      let rows = fillRows(Double.self, table, plans, keep, kept, width, pipeline)
      storage = unsafeBitCast(rows, to: [T].self)
    } else if T.self == Float.self {
      let rows = fillRows(Float.self, table, plans, keep, kept, width, pipeline)
      storage = unsafeBitCast(rows, to: [T].self)
    } else {
      storage = fillRows(T.self, table, plans, keep, kept, width, pipeline)
    }
    let x = Matrix<T>(rows: kept, cols: width, storage: storage)
    if let labels = table.labels {
      for r in 0..<table.rows where keep[r] { y!.append(labels[r]) }
    }
    return PreparedData(
      x: x, y: y, featureNames: pipeline.featureNames, droppedRows: table.rows - kept,
      rowsRead: table.rows, pipeline: pipeline)
  }
}

extension DataPipeline {
  /// The row-major output elements: each kept row written once, in place.
  static func fillRows<S: BLASScalar>(
    _: S.Type, _ table: RawTable, _ plans: [OutputPlan], _ keep: [Bool], _ kept: Int,
    _ width: Int, _ pipeline: FittedPipeline
  ) -> [S] {
    let nw = table.numericNames.count
    let cw = table.categoricalNames.count
    let means = pipeline.means
    let scales = pipeline.scales
    return [S](unsafeUninitializedCapacity: kept * width) { out, initialized in
      table.numeric.withUnsafeBufferPointer { numeric in
        table.codes.withUnsafeBufferPointer { codes in
          var o = 0
          for r in 0..<table.rows where keep[r] {
            (out.baseAddress! + o).initialize(repeating: 0, count: width)
            var j = 0
            for plan in plans {
              switch plan {
              case .numeric(let s, let fill):
                var v = numeric[r * nw + s]
                if v.isNaN, let fill { v = fill }
                if let means, let scales { v = (v - means[j]) / scales[j] }
                out[o + j] = S(v)
                j += 1
              case .categorical(let s, let codeToIndex, let groupWidth):
                let c = codes[r * cw + s]
                if c >= 0 {
                  let k = codeToIndex[Int(c)]
                  if k >= 0 { out[o + j + Int(k)] = 1 }
                }
                j += groupWidth
              }
            }
            o += width
          }
        }
      }
      initialized = kept * width
    }
  }
}

/// How one pipeline column is written into the output row.
enum OutputPlan {
  /// Numeric table slot, with the value that replaces a missing one.
  case numeric(slot: Int, fill: Double?)
  /// Categorical table slot, the table code → vocabulary position map (−1: unseen), and the
  /// vocabulary size.
  case categorical(slot: Int, codeToIndex: [Int32], width: Int)
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
