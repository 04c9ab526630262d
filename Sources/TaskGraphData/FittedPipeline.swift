/// Every transform fitted on training data, as a plain `Codable` value: stored in model files
/// and replayed at predict time so that new data gets exactly the training encoding.
public struct FittedPipeline: Codable, Sendable, Equatable {
  /// One source feature column and how it becomes output features.
  public struct Column: Codable, Sendable, Equatable {
    /// How the column is encoded.
    public enum Kind: Codable, Sendable, Equatable {
      /// One output feature, the number.
      case numeric
      /// One output feature per vocabulary entry (sorted); an unseen value gives all zeros.
      case categorical(vocabulary: [String])
    }
    /// The column's name in the source file.
    public var name: String
    /// Its encoding.
    public var kind: Kind
    /// For numeric columns under mean/median imputation, the value that replaces a missing one.
    public var fill: Double?

    /// A column description.
    public init(name: String, kind: Kind, fill: Double? = nil) {
      self.name = name
      self.kind = kind
      self.fill = fill
    }

    /// The number of output features of this column.
    public var width: Int {
      switch kind {
      case .numeric: return 1
      case .categorical(let vocabulary): return vocabulary.count
      }
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
  /// Output feature names after one-hot encoding, e.g. `carrier=UA`.
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
      case .categorical(let vocabulary): return vocabulary.map { "\(column.name)=\($0)" }
      }
    }
  }
}
