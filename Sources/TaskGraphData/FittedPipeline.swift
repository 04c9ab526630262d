/// Every transform fitted on training data, as a plain `Codable` value: stored in model files
/// and replayed at predict time so that new data gets exactly the training encoding.
public struct FittedPipeline: Codable, Sendable, Equatable {
  /// One source feature column and how it becomes output features.
  public struct Column: Codable, Sendable, Equatable {
    /// How the column is encoded.
    public enum Kind: Codable, Sendable, Equatable {
      /// One output feature, the number.
      case numeric
      /// One output feature per vocabulary entry (the column's levels, sorted; see
      /// `Column.dropFirst`); an unseen value gives all zeros.
      ///
      /// The order is Swift's `String` ordering, by the Unicode scalars of the values'
      /// canonical (NFC) form, so for ASCII byte order: digits, then upper case, then lower
      /// case. That is the order of Python's `sorted` and of R's `factor` in the C locale, and
      /// it does not depend on the order of the rows.
      case categorical(vocabulary: [String])
    }
    /// The column's name in the source file.
    public var name: String
    /// Its encoding.
    public var kind: Kind
    /// For numeric columns under mean/median imputation, the value that replaces a missing one.
    public var fill: Double?
    /// For categorical columns, whether the first vocabulary entry (the reference level) has
    /// no output feature: treatment coding, as R's `lm` uses, which keeps a design with an
    /// intercept from being rank-deficient. A row at the reference level gets all zeros, as
    /// does an unseen value. False (every level encoded) in a model file without the field.
    public var dropFirst: Bool

    /// A column description.
    public init(name: String, kind: Kind, fill: Double? = nil, dropFirst: Bool = false) {
      self.name = name
      self.kind = kind
      self.fill = fill
      self.dropFirst = dropFirst
    }

    /// The number of output features of this column: 1 for a numeric column, one per
    /// encoded level (`levels`) for a categorical one; 0 for a single level without its
    /// first.
    public var width: Int {
      switch kind {
      case .numeric: return 1
      case .categorical: return levels.count
      }
    }

    /// The levels that have an output feature, in output order (empty for a numeric column).
    public var levels: ArraySlice<String> {
      switch kind {
      case .numeric: return []
      case .categorical(let vocabulary): return vocabulary.dropFirst(dropFirst ? 1 : 0)
      }
    }

    private enum CodingKeys: String, CodingKey { case name, kind, fill, dropFirst }

    /// Decodes a column; a missing `drop_first` means every level is encoded (model files
    /// written before the field existed).
    public init(from decoder: any Decoder) throws {
      let c = try decoder.container(keyedBy: CodingKeys.self)
      name = try c.decode(String.self, forKey: .name)
      kind = try c.decode(Kind.self, forKey: .kind)
      fill = try c.decodeIfPresent(Double.self, forKey: .fill)
      dropFirst = try c.decodeIfPresent(Bool.self, forKey: .dropFirst) ?? false
    }

    /// Encodes a column; `drop_first` only when true, so that a pipeline that encodes every
    /// level has the JSON (and so the configuration fingerprint of its checkpoints and
    /// shard caches) it had before the field existed.
    public func encode(to encoder: any Encoder) throws {
      var c = encoder.container(keyedBy: CodingKeys.self)
      try c.encode(name, forKey: .name)
      try c.encode(kind, forKey: .kind)
      try c.encodeIfPresent(fill, forKey: .fill)
      if dropFirst { try c.encode(true, forKey: .dropFirst) }
    }
  }

  /// The label column's name.
  public var label: String
  /// The source feature columns, in output order.
  public var columns: [Column]
  /// The missing-value policy.
  public var missing: MissingPolicy
  /// Per output feature, the mean subtracted (nil: no standardisation). One-hot features are
  /// not standardised: their mean is 0 and scale 1.
  public var means: [Double]?
  /// Per output feature, the standard deviation divided by (a zero deviation is stored as 1).
  public var scales: [Double]?
  /// Output feature names after one-hot encoding, e.g. `carrier=UA` (none for a dropped first
  /// level).
  public var featureNames: [String]

  /// A pipeline from its parts; `featureNames` is derived from `columns`.
  public init(
    label: String, columns: [Column], missing: MissingPolicy, means: [Double]? = nil,
    scales: [Double]? = nil
  ) {
    self.label = label
    self.columns = columns
    self.missing = missing
    self.means = means
    self.scales = scales
    self.featureNames = columns.flatMap { column -> [String] in
      switch column.kind {
      case .numeric: return [column.name]
      case .categorical: return column.levels.map { "\(column.name)=\($0)" }
      }
    }
  }
}

extension FittedPipeline {
  /// The first inconsistency of a pipeline that was not made by fitting (one decoded from a
  /// model file), or nil if there is none.
  ///
  /// Replaying an inconsistent pipeline would trap or silently give wrong features, so a model
  /// file is checked whole when it is read: columns with distinct names, non-empty one-hot
  /// vocabularies without repeats, `drop_first` only on categorical columns, finite fills, at
  /// least one output feature, `featureNames` derived from `columns`, and
  /// standardisation (`means` and `scales` both or neither) with one finite mean and one
  /// finite, positive scale per feature. The answer names the place as the model file's JSON
  /// spells it, relative to the pipeline, e.g. `scales[3] is 0: expected a positive number`.
  /// O(features).
  package func problem() -> String? {
    if columns.isEmpty { return "columns is empty: expected at least one feature column" }
    var seen: [String: Int] = [:]
    for (k, column) in columns.enumerated() {
      if let first = seen[column.name] {
        return "columns[\(k)].name '\(column.name)' repeats columns[\(first)].name"
      }
      seen[column.name] = k
      if let fill = column.fill, !fill.isFinite {
        return "columns[\(k)].fill is \(fill): expected a finite number"
      }
      if column.dropFirst, case .numeric = column.kind {
        return "columns[\(k)].drop_first is true but column '\(column.name)' is numeric: only "
          + "a categorical column has a first level to drop"
      }
      if case .categorical(let vocabulary) = column.kind {
        if vocabulary.isEmpty {
          return "columns[\(k)].kind.categorical.vocabulary is empty: expected the values of "
            + "column '\(column.name)'"
        }
        var values: [String: Int] = [:]
        for (v, value) in vocabulary.enumerated() {
          if let first = values[value] {
            return "columns[\(k)].kind.categorical.vocabulary[\(v)] '\(value)' repeats "
              + "vocabulary[\(first)]"
          }
          values[value] = v
        }
      }
    }
    let derived = FittedPipeline(label: label, columns: columns, missing: missing).featureNames
    if derived.isEmpty {
      return "the columns give no features: every column is categorical with a single level, "
        + "which drop_first removes"
    }
    if featureNames.count != derived.count {
      return "feature_names has \(featureNames.count) entries but the columns give "
        + "\(derived.count) features"
    }
    if let k = featureNames.indices.first(where: { featureNames[$0] != derived[$0] }) {
      return "feature_names[\(k)] is '\(featureNames[k])' but the columns give '\(derived[k])'"
    }
    switch (means, scales) {
    case (nil, nil):
      break
    case (.some, nil):
      return "means is given without scales"
    case (nil, .some):
      return "scales is given without means"
    case (.some(let means), .some(let scales)):
      for (name, values) in [("means", means), ("scales", scales)]
      where values.count != featureNames.count {
        return "\(name) has \(values.count) entries but there are \(featureNames.count) features"
      }
      if let k = means.firstIndex(where: { !$0.isFinite }) {
        return "means[\(k)] is \(means[k]): expected a finite number"
      }
      if let k = scales.firstIndex(where: { !($0.isFinite && $0 > 0) }) {
        return "scales[\(k)] is \(scales[k]): expected a finite positive number (a standard "
          + "deviation; a zero deviation is stored as 1)"
      }
    }
    return nil
  }
}
