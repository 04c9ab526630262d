import Foundation
import TaskGraphData
import TaskGraphLinalg
import TaskGraphML

/// Element type of the training matrix.
public enum Precision: String, Sendable, Codable, CaseIterable {
  /// Double-precision storage and arithmetic.
  case float64
  /// Single-precision storage; sums across blocks, rows and threads in double precision.
  case float32
}

/// Everything a single-machine training run needs.
public struct TrainingJob: Sendable {
  /// The input file (CSV, CSV.gz, LIBSVM, NPY).
  public var dataPath: String
  /// Label, feature selection, categorical columns, missing values, standardisation.
  public var pipeline: PipelineOptions
  /// Model, regularisation, solver and stop criteria.
  public var configuration: TrainingConfiguration
  /// Element type of the matrix.
  public var precision: Precision = .float64
  /// Fraction of rows held out for validation, chosen by a seeded shuffle.
  public var validationSplit: Double = 0
  /// Seed of the validation shuffle (and of SGD, through `configuration`).
  public var seed: UInt64 = 42
  /// Parameters to start from (a warm start), in the features' original units (a model
  /// file's `coefficients` and `intercept`).
  public var initial: Parameters?
  /// Box constraints by feature (resolved into `configuration.bounds` once the features
  /// are known).
  public var boundsSpecification: BoundsSpecification?

  public init(dataPath: String, pipeline: PipelineOptions, configuration: TrainingConfiguration) {
    self.dataPath = dataPath
    self.pipeline = pipeline
    self.configuration = configuration
  }
}

/// Trains a model on one machine: load, preprocess, fit, evaluate, and build the model file.
public enum LocalTraining {
  /// Runs `job`, calling `progress` after each solver iteration.
  public static func run(
    _ job: TrainingJob, progress: @escaping (OptimizationProgress) -> Void = { _ in }
  ) throws -> ModelFile {
    switch job.precision {
    case .float64: return try run(job, scalar: Double.self, progress: progress)
    case .float32: return try run(job, scalar: Float.self, progress: progress)
    }
  }

  static func run<T: BLASScalar>(
    _ job: TrainingJob, scalar: T.Type, progress: @escaping (OptimizationProgress) -> Void
  ) throws -> ModelFile {
    try job.validate(.local)
    var (prepared, timings) = try DataPipeline.fitTimed(
      path: job.dataPath, options: job.preparedPipelineOptions, shard: nil, as: T.self)
    let loaded = Date()
    guard let labels = prepared.y else {
      throw TrainingError(
        code: .invalidConfiguration,
        message: "\(job.dataPath): label column '\(job.pipeline.label)' not found")
    }
    let configuration = try job.resolvedConfiguration(for: prepared.pipeline)
    try job.checkWarmStart(featureCount: prepared.x.cols)
    if job.configuration.kind == .logistic, let bad = labels.first(where: { $0 != 0 && $0 != 1 }) {
      throw TrainingError(
        code: .invalidConfiguration,
        message:
          "\(job.dataPath): logistic regression needs labels 0 or 1 in '\(job.pipeline.label)', found \(bad)"
      )
    }
    // The split takes the matrix over, so that it can reuse its storage.
    let x = prepared.x
    prepared.x = Matrix(rows: 0, cols: x.cols)
    let (train, validation) = split(
      x: consume x, y: labels, fraction: job.validationSplit, seed: job.seed)
    guard train.x.rows > 0 else {
      throw TrainingError(
        code: .invalidConfiguration, message: "\(job.dataPath): no rows to train on")
    }
    let split = Date()
    let result: TrainingResult
    do {
      result = try Trainer.fit(
        x: train.x, y: train.y, configuration: configuration,
        initial: job.resolvedInitial(for: prepared.pipeline),
        progress: progress)
    } catch {
      throw TrainingError(code: .solverFailed, message: "training failed: \(error)", cause: error)
    }
    let trainMetrics = metrics(result.model, train.x, train.y)
    let validationMetrics = validation.map { metrics(result.model, $0.x, $0.y) } ?? [:]
    let fitSeconds = result.summary.seconds
    var report = TrainingReport(
      solver: result.summary.solver.rawValue, iterations: result.summary.iterations,
      stopReason: result.summary.stopReason.rawValue, objectives: result.summary.objectives,
      objective: result.summary.objectives.last ?? .nan,
      loadSeconds: timings.loadSeconds,
      preprocessSeconds: timings.preprocessSeconds
        + split.timeIntervalSince(loaded),
      fitSeconds: fitSeconds,
      msPerIteration: TrainingReport.msPerIteration(
        fitSeconds: fitSeconds, iterations: result.summary.iterations),
      rowsRead: prepared.rowsRead, rowsDropped: prepared.droppedRows, trainRows: train.x.rows,
      validationRows: validation?.x.rows ?? 0, trainMetrics: trainMetrics,
      validationMetrics: validationMetrics, precision: job.precision.rawValue,
      threads: job.configuration.threads, workers: 1)
    report.noteOutcome(
      stopReason: result.summary.stopReason,
      aliased: result.summary.aliased.map { prepared.pipeline.featureNames[$0] })
    return try job.modelFile(result.model, pipeline: prepared.pipeline, training: report)
  }

  /// Splits rows into training and validation sets by a seeded shuffle; with `fraction` 0
  /// the matrix is returned as it is (no copy).
  ///
  /// Only the validation rows are copied: the training rows are moved to the front of `x`'s
  /// own storage, in order, so the split needs the matrix plus the validation rows rather than
  /// two matrices. Pass `x` with `consume` so that its storage is not shared (a shared one is
  /// copied first, with the same result).
  static func split<T: BLASScalar>(
    x: consuming Matrix<T>, y: [Double], fraction: Double, seed: UInt64
  ) -> (train: (x: Matrix<T>, y: [Double]), validation: (x: Matrix<T>, y: [Double])?) {
    let nValidation = Int((Double(x.rows) * fraction).rounded(.down))
    if nValidation == 0 { return ((x, y), nil) }
    var rng = SplitMix64(seed: seed)
    var order = Array(0..<x.rows)
    order.shuffle(using: &rng)
    let validationRows = order.suffix(nValidation).sorted()
    let trainRows = order.prefix(x.rows - nValidation).sorted()
    let cols = x.cols
    let validation = x.withUnsafeBufferPointer { all in
      [T](unsafeUninitializedCapacity: nValidation * cols) { out, count in
        for (k, r) in validationRows.enumerated() {
          (out.baseAddress! + k * cols).initialize(from: all.baseAddress! + r * cols, count: cols)
        }
        count = nValidation * cols
      }
    }
    var train = consume x
    train.withUnsafeMutableBufferPointer { all in
      // Row k < r: the destination ends before the source starts, and rows move in order.
      for (k, r) in trainRows.enumerated() where k != r {
        (all.baseAddress! + k * cols).update(from: all.baseAddress! + r * cols, count: cols)
      }
    }
    train.removeLastRows(nValidation)
    return (
      (train, trainRows.map { y[$0] }),
      (
        Matrix(rows: nValidation, cols: cols, storage: validation),
        validationRows.map { y[$0] }
      )
    )
  }

  /// The metrics `evaluate` and the training summary report for a model on `x`, `y`.
  public static func metrics<T: BLASScalar>(_ model: LinearModel, _ x: Matrix<T>, _ y: [Double])
    -> [String: Double]
  {
    metrics(kind: model.kind, predictions: model.predict(x), labels: y)
  }

  /// The metrics of `predictions` (probabilities for logistic regression) against `y`.
  public static func metrics(kind: LinearModel.Kind, predictions p: [Double], labels y: [Double])
    -> [String: Double]
  {
    if kind == .logistic {
      return [
        "log_loss": Metrics.logLoss(probabilities: p, y),
        "accuracy": Metrics.accuracy(probabilities: p, y),
        "roc_auc": Metrics.rocAUC(scores: p, y),
      ]
    }
    return [
      "mse": Metrics.meanSquaredError(p, y),
      "rmse": Metrics.rootMeanSquaredError(p, y),
      "mae": Metrics.meanAbsoluteError(p, y),
      "r2": Metrics.r2(p, y),
    ]
  }
}
