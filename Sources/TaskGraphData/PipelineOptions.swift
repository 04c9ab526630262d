import TaskGraphLinalg

/// What to do with a row that has a missing value (an empty field, `NA` or `NaN`).
public enum MissingPolicy: String, Codable, Sendable {
  /// Drop the row (the default); the count is reported in `PreparedData.droppedRows`.
  case drop
  /// Replace a missing numeric value by the column's mean over the training rows.
  case mean
  /// Replace a missing numeric value by the column's median over the training rows.
  case median
}

/// When to drop the first level of each categorical column (the CLI's `--drop-first`).
///
/// With an intercept, one-hot columns for every level of a categorical column sum to the
/// intercept's column, so an unpenalised design is rank-deficient. Dropping the first level
/// (in the vocabulary's sorted order, see `FittedPipeline.Column.Kind.categorical`) makes it
/// the reference level, R's treatment coding; under a penalty the design is not singular, and
/// dropping a level would make the fit depend on which level is first, so every level is kept,
/// as glmnet does.
public enum DropFirstPolicy: String, Sendable, CaseIterable {
  /// Drop the first level for an unpenalised model, keep every level under a penalty.
  case auto
  /// Always drop the first level.
  case always
  /// Keep every level.
  case never

  /// Whether to drop the first level (`PipelineOptions.dropFirst`) for a model that is
  /// `penalized` (an L1 or L2 weight above 0).
  public func dropsFirstLevel(penalized: Bool) -> Bool {
    switch self {
    case .auto: return !penalized
    case .always: return true
    case .never: return false
    }
  }
}

/// How to turn a file into features and a label.
///
/// Features are all columns but the label, or only `include` when it is given, minus
/// `exclude`, in the file's column order. Columns in `categorical` are one-hot encoded (one
/// feature per level, in sorted order, less the first with `dropFirst`); every other feature
/// column must be numeric.
public struct PipelineOptions: Sendable {
  /// The label column's name. LIBSVM and `.npy` input hold the label first, named
  /// `unnamedLabel`; any other name is an error for them.
  public var label: String
  /// Columns holding strings to one-hot encode.
  public var categorical: [String] = []
  /// If set, the only feature columns to use.
  public var include: [String]? = nil
  /// Columns not to use as features.
  public var exclude: [String] = []
  /// What to do with missing values.
  public var missing: MissingPolicy = .drop
  /// Whether to standardise numeric features to mean 0 and standard deviation 1.
  public var standardize: Bool = false
  /// Whether each categorical column's first level (in sorted order) gets no feature: treatment
  /// coding (see `DropFirstPolicy`). False keeps every level. A column with a single level
  /// then gives no feature; fitting fails if no feature is left at all.
  public var dropFirst: Bool = false
  /// What reading the file may allocate (see `DataLimits`).
  public var limits: DataLimits = .defaults

  /// Options with `label` as the label column and defaults for the rest.
  public init(label: String) { self.label = label }

  /// The name of the label of LIBSVM and `.npy` input (the first field or column).
  public static let unnamedLabel = "label"
}

/// Shard `index` of `count`: a deterministic part of a file's rows. The shards `0..<count`
/// partition the rows, and concatenating them in index order gives the rows of the file in
/// order.
public struct Shard: Sendable, Equatable, Codable {
  /// This shard's index, `0..<count`.
  public var index: Int
  /// The number of shards, at least 1.
  public var count: Int

  /// Shard `index` of `count`.
  public init(index: Int, count: Int) {
    self.index = index
    self.count = count
  }

  /// Checks `0 <= index < count`.
  func validate() throws {
    guard count >= 1, index >= 0, index < count else {
      throw DataError(
        .invalidShard, "invalid shard \(index) of \(count): need 0 <= index < count")
    }
  }

  /// The contiguous row range `[lo, hi)` this shard owns out of `rows` rows.
  func rowRange(of rows: Int) -> Range<Int> {
    (rows * index / count)..<(rows * (index + 1) / count)
  }
}

/// Rows materialised as a dense matrix, with their labels and the pipeline that made them.
public struct PreparedData<T: BLASScalar>: Sendable {
  /// Features, one row per kept row, `featureNames.count` columns.
  public var x: Matrix<T>
  /// Labels, one per row of `x`; nil when the label column is absent and was not required.
  /// A missing label is NaN when the label was not required.
  public var y: [Double]?
  /// Names of the columns of `x` (one-hot columns as `column=value`).
  public var featureNames: [String]
  /// Rows dropped for missing values.
  public var droppedRows: Int
  /// Rows read from the input (before dropping).
  public var rowsRead: Int
  /// The fitted pipeline that produced `x`.
  public var pipeline: FittedPipeline

  /// Prepared data from its parts.
  public init(
    x: Matrix<T>, y: [Double]?, featureNames: [String], droppedRows: Int, rowsRead: Int,
    pipeline: FittedPipeline
  ) {
    self.x = x
    self.y = y
    self.featureNames = featureNames
    self.droppedRows = droppedRows
    self.rowsRead = rowsRead
    self.pipeline = pipeline
  }
}
