import Foundation
import TaskGraphData
import TaskGraphML

/// How a job is to be run, for `TrainingJob.validate`.
public struct ExecutionMode: Sendable, Hashable {
  /// Worker tasks (nil: one process, no parameter server).
  public var workers: Int?
  /// Bounded staleness in rounds (0: BSP; `.max`: asynchronous).
  public var staleness: UInt64
  /// How the data is split between workers.
  public var partition: Partition

  /// One process, no parameter server.
  public static let local = ExecutionMode(workers: nil, staleness: 0, partition: .rows)

  /// A parameter-server run.
  public static func distributed(
    workers: Int, staleness: UInt64 = 0, partition: Partition = .rows
  ) -> ExecutionMode {
    ExecutionMode(workers: workers, staleness: staleness, partition: partition)
  }

  /// The mode of `options`.
  public init(_ options: DistributedOptions) {
    self.init(workers: options.workers, staleness: options.staleness, partition: options.partition)
  }

  /// A mode from its parts.
  public init(workers: Int?, staleness: UInt64, partition: Partition) {
    self.workers = workers
    self.staleness = staleness
    self.partition = partition
  }
}

extension TrainingJob {
  /// The most worker tasks a job may have.
  public static let maximumWorkers = 256

  /// The one check of a training run, made by `train`, `train --workers`, `launch`,
  /// `master` and the library's entry points (`LocalTraining.run`,
  /// `DistributedTraining.runInProcess`, `DistributedTraining.plan`) before any work:
  /// model × solver × penalty × bounds × SGD settings × precision × partition × staleness ×
  /// workers. Bounds given by name are checked once the features are known.
  ///
  /// - Throws: `TrainingError` with code `.invalidConfiguration` and a one-line message
  ///   naming the flag.
  public func validate(_ mode: ExecutionMode) throws {
    func refuse(_ message: String) -> TrainingError {
      TrainingError(code: .invalidConfiguration, message: message)
    }
    if let bounds = boundsSpecification, let problem = bounds.firstProblem() {
      throw refuse(problem)
    }
    var checked = configuration
    if checked.bounds == nil, let bounds = boundsSpecification {
      checked.bounds = bounds.representative
    }
    if let problem = checked.firstProblem() { throw refuse(problem) }
    guard validationSplit.isFinite, validationSplit >= 0, validationSplit < 1 else {
      throw refuse("--validation-split must be in [0, 1), is \(validationSplit)")
    }
    if let initial {
      guard initial.weights.allSatisfy(\.isFinite), initial.intercept.isFinite else {
        throw refuse("--warm-start: the model's coefficients are not all finite")
      }
    }
    let solver = checked.resolvedSolver
    guard let workers = mode.workers else {
      if mode.staleness > 0 { throw refuse("--staleness needs --workers") }
      if mode.partition != .rows { throw refuse("--partition needs --workers") }
      return
    }
    guard workers >= 1, workers <= Self.maximumWorkers else {
      throw refuse("--workers must be in 1…\(Self.maximumWorkers), is \(workers)")
    }
    if initial != nil {
      throw refuse("--warm-start is not supported with --workers; train in one process")
    }
    if mode.staleness > 0 && solver != .sgd {
      throw refuse(
        "--staleness needs --solver sgd (a learning-rate schedule): line searches need sums of one round"
      )
    }
    if mode.partition == .columns {
      if solver == .exact || solver == .qr {
        throw refuse(
          "--partition columns needs an iterative solver (--solver lbfgs, gd, owlqn or sgd): the exact solver needs the products of every pair of columns"
        )
      }
      if solver == .sgd {
        throw refuse(
          "--partition columns does not run --solver sgd (its mini-batches need every worker's margins of the same rows); use lbfgs, owlqn or gd"
        )
      }
      if mode.staleness > 0 {
        throw refuse(
          "--partition columns needs BSP (--staleness 0): margins of one round only add up")
      }
    }
  }
}

extension TrainingJob {
  /// The preprocessing the data is prepared with: always standardised. Without
  /// `pipeline.standardize` the solvers still see standardised columns, which keeps
  /// badly scaled data well conditioned for every solver, while the penalty stays on the
  /// coefficients of the original columns (`resolvedConfiguration(for:)`), so the problem
  /// solved, its objective and the model in original units are the unstandardised ones.
  public var preparedPipelineOptions: PipelineOptions {
    var p = pipeline
    p.standardize = true
    return p
  }

  /// The units the job's penalty applies to.
  public var penaltyUnits: PenaltyUnits { pipeline.standardize ? .standardized : .original }

  /// This job's configuration for `pipeline` (fitted with `preparedPipelineOptions`): its
  /// bounds resolved for the features, and, for a penalty on the original units, the
  /// penalty scaled to the standardised ones.
  public func resolvedConfiguration(for pipeline: FittedPipeline) throws -> TrainingConfiguration {
    var c = configuration
    if penaltyUnits == .original, let scales = pipeline.scales {
      c.regularization = c.regularization.scaled(by: scales)
    }
    if let spec = boundsSpecification {
      c.bounds = try spec.resolve(featureNames: pipeline.featureNames, scales: pipeline.scales)
    }
    return c
  }

  /// The model file of a finished run of this job: `model` (in the units of `pipeline`'s
  /// output) in original units, each coefficient clamped into its bounds (converting a
  /// coefficient on its bound back to original units, `vⱼ/sⱼ`, can land one rounding step
  /// outside it), and checked usable (`ModelFile.checkUsable()`).
  public func modelFile(
    _ model: LinearModel, pipeline: FittedPipeline, training: TrainingReport
  ) throws -> ModelFile {
    var file = ModelFile(
      model: model, regularization: configuration.regularization, pipeline: pipeline,
      training: training, penaltyUnits: penaltyUnits)
    if let spec = boundsSpecification {
      let bounds = try spec.resolve(featureNames: pipeline.featureNames, scales: nil)
      for j in file.coefficients.indices {
        file.coefficients[j] = bounds.clamp(file.coefficients[j], at: j)
      }
    }
    try file.checkUsable()
    return file
  }

  /// The warm start (`initial`, in original units) in the units of `pipeline`'s output:
  /// `vⱼ = wⱼ·sⱼ` and `b' = b + Σ wⱼ·μⱼ`.
  public func resolvedInitial(for pipeline: FittedPipeline) -> Parameters? {
    guard let initial, let means = pipeline.means, let scales = pipeline.scales,
      means.count == initial.weights.count
    else { return initial }
    var b = initial.intercept
    var v = initial.weights
    for j in v.indices {
      v[j] = initial.weights[j] * scales[j]
      b += initial.weights[j] * means[j]
    }
    return Parameters(weights: v, intercept: b)
  }

  /// Checks a warm start's width against the features.
  func checkWarmStart(featureCount: Int) throws {
    guard let initial, initial.weights.count != featureCount else { return }
    throw TrainingError(
      code: .mismatch,
      message:
        "--warm-start: the model has \(initial.weights.count) coefficients, the data has \(featureCount) features"
    )
  }
}
