import TaskGraphLinalg

/// The file formats `DataPipeline` reads, chosen by extension (after removing `.gz`).
public enum InputFormat: String, Sendable, Codable {
  /// Comma-separated values with a header row: `.csv`.
  case csv
  /// LIBSVM / SVMlight text: `.svm`, `.libsvm`, `.svmlight`, `.txt`. Features are named
  /// `f1`, `f2`, … by their 1-based index; the label is the first token.
  case libsvm
  /// NumPy `.npy`, 2-D float32/float64: column 0 is the label, columns 1… are features
  /// named `f1`, `f2`, …. At predict time a file with one column fewer has no label.
  case npy

  /// The format of `path`.
  /// - Throws: `DataError` with code `unsupportedFormat` for an unknown extension.
  public init(path: String) throws {
    var name = path.lowercased()
    if name.hasSuffix(".gz") { name.removeLast(3) }
    if name.hasSuffix(".csv") {
      self = .csv
    } else if name.hasSuffix(".npy") {
      self = .npy
    } else if [".svm", ".libsvm", ".svmlight", ".txt"].contains(where: { name.hasSuffix($0) }) {
      self = .libsvm
    } else {
      throw DataError(
        .unsupportedFormat,
        "unknown data format (expected .csv, .svm, .libsvm, .txt or .npy, optionally .gz)",
        file: path)
    }
  }
}

/// The high-level entry points: read a file, fit the transforms, and materialise the rows as a
/// matrix.
///
/// Every entry point parses the file once into a compact column store (`Double` per numeric
/// value, `Float` when the matrix is `Float`, a small integer code per categorical value),
/// fits or replays the transforms on it, and writes the output matrix in place. A CSV file
/// is parsed in windows of a few MiB, never held whole (only a sharded gzip file is
/// decompressed into memory first), and on two cores: a gzip file is decompressed on one
/// while the other parses, a large plain file is parsed in two halves at once. The store
/// gives its memory back block by block while the matrix is written, so peak memory is about
/// the larger of the matrix and the store (8 bytes per needed numeric field, 4 for a Float
/// matrix, 4 per categorical one), not their sum.
///
/// A file is either read correctly or refused with a `DataError` naming it (and the line and
/// column where there is one): numbers must be finite decimals, text valid UTF-8, the path a
/// regular file, and every size the file implies within `DataLimits` (`PipelineOptions.limits`,
/// or the `limits` argument) before it is allocated.
public enum DataPipeline {
  /// Reads `path` (format from the extension, see `InputFormat`; `.gz` is decompressed), fits
  /// the transforms on the rows read, and materialises them.
  ///
  /// With a `shard`, only that shard's rows are read and the transforms are fitted on them
  /// alone: for several workers, use `fitPipeline(path:options:)` once and `apply` per shard
  /// so that all share one encoding. Rows with a missing label are always dropped.
  public static func fit<T: BLASScalar>(
    path: String, options: PipelineOptions, shard: Shard? = nil, as: T.Type
  ) throws -> PreparedData<T> {
    try fitTimed(path: path, options: options, shard: shard, as: T.self).data
  }

  /// Fits the pipeline's statistics (vocabularies, imputation values, standardisation) on all
  /// rows of `path`, for workers that then `apply` it to their shards.
  public static func fitPipeline(path: String, options: PipelineOptions) throws
    -> FittedPipeline
  {
    let table = try read(path: path, shard: nil, limits: options.limits) { names, _ in
      try ReadSpec(fitting: options, names: names, path: path)
    }
    return try fitTransforms(table, options: options, path: path)
  }

  /// Replays a fitted pipeline on new data (for predict, evaluate, validation).
  ///
  /// Columns are matched by name, so their order may differ from the training file; a
  /// feature column the pipeline needs and the file lacks is an error naming both.
  /// With `requireLabel` false a missing label column is fine (`y` is nil) and a row whose
  /// label is empty is kept with a NaN label; with it true such rows are dropped.
  public static func apply<T: BLASScalar>(
    _ pipeline: FittedPipeline, path: String, requireLabel: Bool, shard: Shard? = nil,
    as: T.Type, limits: DataLimits = .defaults
  ) throws -> PreparedData<T> {
    let table = try read(
      path: path, shard: shard, narrow: T.self == Float.self, limits: limits
    ) { names, sparse in
      try ReadSpec(
        replaying: pipeline, names: names, requireLabel: requireLabel, sparse: sparse,
        path: path)
    }
    return try materialise(
      table, pipeline, requireLabel: requireLabel, limits: limits, path: path)
  }

  /// The column names of `path`: the CSV header, or `f1…` for LIBSVM and `.npy` files
  /// (where the label is not a named column).
  public static func columns(path: String, limits: DataLimits = .defaults) throws -> [String] {
    switch try InputFormat(path: path) {
    case .csv:
      return try CSVReader.header(
        CSVReader.source(path, streaming: true, limits: limits), path: path, limits: limits
      ).names
    case .libsvm:
      let sparse = try LIBSVMReader.read(path: path, shard: nil, limits: limits)
      return (0..<sparse.width).map { LIBSVMReader.name($0 + 1) }
    case .npy:
      let (h, fileBytes, _) = try NPY.open(path, limits: limits)
      try NPY.checkSize(h, fileBytes: fileBytes, path: path, limits: limits, valueBytes: 8)
      return (1..<max(1, h.cols)).map { LIBSVMReader.name($0) }
    }
  }

  // MARK: - Reading

  /// Reads the rows of `shard` into a column store, with the columns `plan` chooses from the
  /// file's column names (its second argument says whether the columns are sparse, so that a
  /// feature absent from this part of a LIBSVM file is all zeros rather than missing).
  /// A `narrow` table stores numeric values as `Float`: for a Float matrix it halves the
  /// table, the larger part of the peak memory of reading.
  static func read(
    path: String, shard: Shard?, narrow: Bool = false, limits: DataLimits = .defaults,
    plan: ([String], Bool) throws -> ReadSpec
  ) throws -> RawTable {
    try shard?.validate()
    let valueBytes = narrow ? 4 : 8
    switch try InputFormat(path: path) {
    case .csv:
      // A whole-file read streams a gzip file; shards need it in memory for byte ranges.
      let whole = (shard?.count ?? 1) == 1
      let source = try CSVReader.source(path, streaming: whole, limits: limits)
      let header = try CSVReader.header(source, path: path, limits: limits)
      guard try CSVReader.hasData(source, from: header.dataStart) else {
        throw DataError(.noDataRows, "the file has a header but no data rows", file: path)
      }
      let spec = try plan(header.names, false)
      let table = spec.makeTable(narrow: narrow)
      let range = try CSVReader.range(shard, dataStart: header.dataStart, source)
      try CSVReader.load(
        source, path: path, range: range, header: header, roles: spec.roles, into: table,
        limits: limits)
      return table
    case .libsvm:
      let sparse = try LIBSVMReader.read(
        path: path, shard: shard, limits: limits, valueBytes: valueBytes)
      if shard == nil && sparse.labels.isEmpty {
        throw DataError(.emptyFile, "the file has no data rows", file: path)
      }
      let names = [""] + (0..<sparse.width).map { LIBSVMReader.name($0 + 1) }
      let spec = try plan(names, true)
      if !spec.categoricalNames.isEmpty {
        throw DataError(
          .unsupportedFormat, "categorical columns need CSV input (LIBSVM is numeric)", file: path)
      }
      // Features the pipeline needs beyond the widest row are all-zero columns, not missing.
      // Only names spelled exactly `f<index>` are features (not `f+3` or `f03`).
      let indexOf = { (name: String) -> Int? in
        guard let k = Int(name.dropFirst()), k >= 1, LIBSVMReader.name(k) == name else {
          return nil
        }
        return k
      }
      let width = max(sparse.width, spec.numericNames.compactMap(indexOf).max() ?? 0)
      try LIBSVMReader.checkDense(
        rows: sparse.labels.count, width: width, limits, valueBytes: valueBytes, path: path)
      var slotOf = [Int?](repeating: nil, count: width)
      for (slot, name) in spec.numericNames.enumerated() {
        if let k = indexOf(name) { slotOf[k - 1] = slot }
      }
      return try LIBSVMReader.table(
        sparse, width: width, slotOf: slotOf, names: spec.numericNames, narrow: narrow,
        path: path)
    case .npy:
      let (h, fileBytes, whole) = try NPY.open(path, limits: limits)
      try NPY.checkSize(
        h, fileBytes: fileBytes, path: path, limits: limits, valueBytes: valueBytes)
      if h.rows == 0 { throw DataError(.noDataRows, "the array has no rows", file: path) }
      // Column 0 is the label, unless (at predict time) the file has exactly the features the
      // pipeline needs and no label column.
      let features = (1..<max(1, h.cols)).map { LIBSVMReader.name($0) }
      var spec: ReadSpec
      var labelColumn: Int? = 0
      do {
        spec = try plan([""] + features, false)
      } catch let error {
        guard
          let fallback = try? plan((1...max(1, h.cols)).map { LIBSVMReader.name($0) }, false),
          !fallback.requireLabel
        else { throw error }
        spec = fallback
        labelColumn = nil
      }
      if !spec.categoricalNames.isEmpty {
        throw DataError(
          .unsupportedFormat, "categorical columns need CSV input (.npy is numeric)", file: path)
      }
      let range = shard?.rowRange(of: h.rows) ?? 0..<h.rows
      let roles = labelColumn == nil ? spec.roles : Array(spec.roles.dropFirst())
      // The source column of every numeric slot.
      var columnOf = [Int](repeating: 0, count: spec.numericNames.count)
      for (k, role) in roles.enumerated() {
        if case .numeric(let slot) = role { columnOf[slot] = k + (labelColumn ?? -1) + 1 }
      }
      // Every element read must be finite, and within Float's range in a narrow table.
      func failure(_ bad: Int, _ data: UnsafeRawPointer, first: Int) -> DataError {
        let isLabel = labelColumn != nil && bad % h.cols == labelColumn
        let value = NPY.element(data, bad, elementSize: h.elementSize)
        return NPY.elementError(
          value, bad + first * h.cols, h, path: path, narrow: narrow && !isLabel)
      }
      if let whole {
        let table = spec.makeTable(hasLabel: labelColumn != nil, narrow: narrow)
        table.numericMayBeMissing = false
        try whole.withUnsafeBytes { raw in
          let data = raw.baseAddress! + h.dataOffset
          if let bad = table.appendRows(
            from: data, elementSize: h.elementSize, cols: h.cols, rows: range,
            labelColumn: labelColumn, columnOf: columnOf)
          {
            throw failure(bad, data, first: 0)
          }
        }
        return table
      }
      // A plain file: only this shard's rows, mapped from their byte range. Doubles read as
      // doubles, features in consecutive columns (the usual case), are read in place.
      let file = try NPY.mapRows(path, h, rows: range)
      let first = columnOf.first ?? 1
      if h.elementSize == 8, !narrow, columnOf.indices.allSatisfy({ columnOf[$0] == first + $0 }) {
        switch RawTable.view(
          of: file, rows: range.count, cols: h.cols, labelColumn: labelColumn, first: first,
          numericNames: spec.numericNames)
        {
        case .success(let table):
          table.order = spec.featureOrder
          return table
        case .failure(let bad):
          throw failure(bad.index, file.bytes, first: range.lowerBound)
        }
      }
      let table = spec.makeTable(hasLabel: labelColumn != nil, narrow: narrow)
      table.numericMayBeMissing = false
      if let bad = table.appendRows(
        from: file.bytes, elementSize: h.elementSize, cols: h.cols, rows: 0..<range.count,
        labelColumn: labelColumn, columnOf: columnOf)
      {
        throw failure(bad, file.bytes, first: range.lowerBound)
      }
      return table
    }
  }
}

/// Which columns to read and how: the roles per source column.
struct ReadSpec {
  /// Per source column.
  var roles: [ColumnRole]
  /// Numeric feature names by slot.
  var numericNames: [String]
  /// Categorical feature names by slot.
  var categoricalNames: [String]
  /// Whether the label column is present in the file.
  var hasLabel: Bool
  /// Whether a missing label column is an error (and a row without a label is dropped).
  var requireLabel: Bool

  var featureCount: Int { numericNames.count + categoricalNames.count }

  /// An empty table for these columns (`hasLabel` overrides whether rows have labels).
  func makeTable(hasLabel: Bool? = nil, narrow: Bool = false) -> RawTable {
    let table = RawTable(
      numericNames: numericNames, categoricalNames: categoricalNames,
      hasLabel: hasLabel ?? self.hasLabel, narrow: narrow)
    table.order = featureOrder
    return table
  }

  /// The feature slots in source-column order (a table's `order`).
  var featureOrder: [ColumnRole] { roles.filter { $0 != .skip && $0 != .label } }

  /// Roles for fitting with `options` on a file with columns `names`.
  init(fitting options: PipelineOptions, names: [String], path: String) throws {
    let isNamed = names.first != ""
    let label = options.label
    let present = Set(names)
    if !isNamed && label != PipelineOptions.unnamedLabel {
      throw DataError(
        .missingLabelColumn,
        "label column '\(label)' is not in the file: LIBSVM and .npy input hold the label "
          + "first, named '\(PipelineOptions.unnamedLabel)'", file: path)
    }
    if isNamed && !present.contains(label) && label == PipelineOptions.unnamedLabel {
      throw DataError(
        .missingLabelColumn,
        "the label column is not named (CSV input needs it: --label; columns: "
          + names.joined(separator: ", ") + ")", file: path)
    }
    if isNamed && !present.contains(label) {
      throw DataError(
        .missingLabelColumn,
        "label column '\(label)' is not in the file (columns: "
          + names.joined(separator: ", ") + ")", file: path)
    }
    for name in (options.include ?? []) + options.exclude + options.categorical
    where !present.contains(name) {
      throw DataError(
        .unknownColumn, "column '\(name)' named in the options is not in the file",
        file: path)
    }
    let included = options.include.map(Set.init)
    let excluded = Set(options.exclude)
    let categorical = Set(options.categorical)
    roles = []
    numericNames = []
    categoricalNames = []
    for (k, name) in names.enumerated() {
      if k == 0 && !isNamed {
        roles.append(.label)
      } else if isNamed && name == label {
        roles.append(.label)
      } else if excluded.contains(name) || !(included?.contains(name) ?? true) {
        roles.append(.skip)
      } else if categorical.contains(name) {
        roles.append(.categorical(categoricalNames.count))
        categoricalNames.append(name)
      } else {
        roles.append(.numeric(numericNames.count))
        numericNames.append(name)
      }
    }
    hasLabel = true
    requireLabel = true
    if numericNames.isEmpty && categoricalNames.isEmpty {
      throw DataError(.noFeatures, "no feature columns are left after the options", file: path)
    }
  }

  /// Roles for replaying `pipeline` on a file with columns `names`.
  /// With `sparse`, a feature not among `names` is read as zeros (LIBSVM) instead of being an
  /// error.
  init(
    replaying pipeline: FittedPipeline, names: [String], requireLabel: Bool, sparse: Bool,
    path: String
  ) throws {
    let isNamed = names.first != ""
    var index: [String: Int] = [:]
    for (k, name) in names.enumerated() where index[name] == nil { index[name] = k }
    roles = Array(repeating: .skip, count: names.count)
    numericNames = []
    categoricalNames = []
    self.requireLabel = requireLabel
    for column in pipeline.columns {
      if sparse && index[column.name] == nil, case .numeric = column.kind {
        numericNames.append(column.name)
        continue
      }
      guard let k = index[column.name] else {
        throw DataError(
          .missingFeatureColumn,
          "column '\(column.name)' needed by the fitted pipeline is not in the file",
          file: path)
      }
      switch column.kind {
      case .numeric:
        roles[k] = .numeric(numericNames.count)
        numericNames.append(column.name)
      case .categorical:
        roles[k] = .categorical(categoricalNames.count)
        categoricalNames.append(column.name)
      }
    }
    let labelIndex = isNamed ? index[pipeline.label] : 0
    if let labelIndex {
      roles[labelIndex] = .label
      hasLabel = true
    } else {
      if requireLabel {
        throw DataError(
          .missingLabelColumn, "label column '\(pipeline.label)' is not in the file",
          file: path)
      }
      hasLabel = false
    }
  }
}
