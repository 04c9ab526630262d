import ArgumentParser
import Foundation
import Logging
import TaskGraphData
import TaskGraphML
import TaskGraphTraining

/// Options shared by every command that reads a data file.
struct DataOptions: ParsableArguments {
  @Option(help: "Input file: .csv, .csv.gz, LIBSVM (.svm, .libsvm) or .npy.")
  var data: String
}

struct TrainCommand: AsyncParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "train",
    abstract: "Train a regression model on one machine and write it as JSON.",
    discussion: """
      Objective: (1/n) Σ loss(x·w + b, y) + l1·‖w‖₁ + (l2/2)·‖w‖², intercept unpenalised; \
      squared loss ½(z−y)², logistic loss for labels 0/1.

      scikit-learn equivalents:
      Ridge(alpha) = --l2 alpha/n
      Lasso(alpha) = --l1 alpha
      ElasticNet(alpha, l1_ratio) = --l1 alpha·l1_ratio --l2 alpha·(1−l1_ratio)
      LogisticRegression(C) = --l2 1/(C·n)
      """
  )

  @OptionGroup var flags: TrainingFlags
  @OptionGroup var distributed: DistributedFlags

  func run() async throws {
    Log.setup(verbose: flags.verbose)
    try await CLIErrors.guarding {
      // Staleness and partition go in without workers too, so that validation refuses them.
      let mode = ExecutionMode(
        workers: distributed.workers, staleness: distributed.staleness.rounds,
        partition: distributed.partition)
      let job = try flags.job(mode)
      try flags.checkPaths(checkpointDirectory: distributed.checkpointDir)
      let display = ProgressDisplay(quiet: flags.quiet)
      let file: ModelFile
      if let workers = distributed.workers {
        var options = try distributed.options(
          workers: workers, seed: flags.seed, quiet: flags.quiet)
        let endpoint = try await startMetrics(port: distributed.metricsPort)
        options.metrics = endpoint?.1
        let quiet = flags.quiet
        do {
          file = try await DistributedTraining.runEmbedded(
            job, options: options,
            epochReport: { r in
              if !quiet { FileHandle.standardError.write(Data((r.line + "\n").utf8)) }
            })
        } catch {
          await endpoint?.0.close()
          throw error
        }
        await endpoint?.0.close()
      } else {
        file = try LocalTraining.run(job) { display.update($0) }
      }
      display.finish()
      try flags.finish(file)
    }
  }
}

/// The data, model and solver flags shared by `train`, `master` and `launch`.
struct TrainingFlags: ParsableArguments {
  @OptionGroup var input: DataOptions
  @Option(
    help: ArgumentHelp(
      "The label column (CSV: required).",
      discussion:
        "LIBSVM and .npy files hold the label first, in a column named 'label': --label may be "
        + "omitted for them, and any other name is an error."))
  var label: String = PipelineOptions.unnamedLabel
  @Option(help: "Model: linear, ridge, lasso, elastic-net or logistic.") var model: ModelKind =
    .linear
  @Option(parsing: .unconditional, help: "L1 weight (lasso, elastic net).") var l1: Double = 0
  @Option(parsing: .unconditional, help: "L2 weight (ridge, elastic net, logistic).")
  var l2: Double = 0
  @Option(help: "Solver: auto, exact, qr, gd, sgd, lbfgs, owlqn, projected.")
  var solver: SolverName = .auto
  @Option(help: "Maximum iterations of an iterative solver.") var maxIterations = 1000
  @Option(
    parsing: .unconditional,
    help: ArgumentHelp(
      "Stop when the decrease still expected (relative) or the gradient norm falls below this.",
      discussion: """
        Default 1e-12 (float32: 1e-9). The decrease still expected is estimated from the decreases of the last \
        iterations, so a slowly converging solver (gd) does not stop merely because its \
        steps became small. For sgd the default is 1e-6: the run stops when the objective over \
        all rows has not improved by this fraction for 5 passes in a row (scikit-learn's tol \
        and n_iter_no_change).
        """))
  var tolerance: Double?
  @Option(parsing: .unconditional, help: "Stop after this many seconds of fitting.")
  var timeLimit: Double?
  @Option(
    parsing: .unconditional,
    help:
      "Lower bounds of the coefficients (original units): a number for all, and/or name=number, comma-separated. Picks --solver projected."
  )
  var lower: String?
  @Option(
    parsing: .unconditional,
    help: "Upper bounds of the coefficients, as --lower. Picks --solver projected.")
  var upper: String?
  @Flag(help: "Every coefficient ≥ 0 (non-negative least squares). Picks --solver projected.")
  var nonnegative = false
  @Option(help: "Comma-separated categorical columns (one-hot encoded).") var categorical: String?
  @Option(
    help:
      "Drop each categorical column's first level (in sorted order; R's treatment coding). auto: drop it without --l1/--l2, keep every level under a penalty."
  )
  var dropFirst: DropFirstPolicy = .auto
  @Option(help: "Comma-separated feature columns to use (default: all but the label).")
  var features: String?
  @Option(help: "Comma-separated columns to leave out.") var exclude: String?
  @Option(help: "Missing values: drop (the row), mean or median.") var missing: MissingPolicy =
    .drop
  @Flag(help: "Standardise features to mean 0, variance 1.") var standardize = false
  @Option(help: "Matrix element type: float64 or float32.") var precision: Precision = .float64
  @Option(
    help:
      "Threads for the kernels (default: the cores available; with --workers N, each worker's share of them)."
  )
  var threads: Int?
  @Option(parsing: .unconditional, help: "Fraction of rows held out for validation.")
  var validationSplit: Double = 0
  @Option(help: "Seed for the validation split and SGD.") var seed: UInt64 = 42
  @Option(parsing: .unconditional, help: "SGD mini-batch size.") var batchSize = 256
  @Option(
    parsing: .unconditional,
    help: ArgumentHelp(
      "SGD's first learning rate (default 0.1).",
      discussion: """
        The rate is constant within a pass over the rows and halved after every pass that \
        did not lower the objective over all rows (that pass is undone).
        """))
  var learningRate: Double?
  @Option(help: "Start from this model file's coefficients.") var warmStart: String?
  @Option(help: "Where to write the model (JSON).") var output: String
  @Option(help: "Also write the run's summary as JSON here.") var summaryJson: String?
  @Flag(help: "No progress output (the summary table is still printed).") var quiet = false
  @Flag(help: "Log the runtime's events.") var verbose = false

  func validate() throws {
    if let threads, threads < 1 || threads > 4096 {
      throw ValidationError("--threads must be in 1…4096")
    }
    guard maxIterations >= 0 else { throw ValidationError("--max-iterations must be ≥ 0") }
    for (flag, v) in [("--l1", l1), ("--l2", l2)] where !(v.isFinite && v >= 0) {
      throw ValidationError("\(flag) must be a finite number ≥ 0, is \(v)")
    }
    if let tolerance, !(tolerance.isFinite && tolerance >= 0) {
      throw ValidationError("--tolerance must be a finite number ≥ 0")
    }
    if let timeLimit, !(timeLimit.isFinite && timeLimit > 0) {
      throw ValidationError("--time-limit must be a finite number of seconds > 0")
    }
    guard validationSplit.isFinite, (0..<1).contains(validationSplit) else {
      throw ValidationError("--validation-split must be in [0, 1)")
    }
    guard batchSize >= 1 else { throw ValidationError("--batch-size must be at least 1") }
    if let learningRate, !(learningRate.isFinite && learningRate > 0) {
      throw ValidationError("--learning-rate must be a finite number > 0")
    }
  }

  /// The kernel threads: `--threads`, or the cores available shared by `workers` tasks.
  func kernelThreads(workers: Int?) -> Int {
    if let threads { return threads }
    return max(1, ProcessInfo.processInfo.activeProcessorCount / max(1, workers ?? 1))
  }

  /// The job these flags describe, validated for `mode` (one process by default).
  func job(_ mode: ExecutionMode = .local) throws -> TrainingJob {
    var pipeline = PipelineOptions(label: label)
    pipeline.categorical = list(categorical)
    pipeline.dropFirst = dropFirst.dropsFirstLevel(penalized: l1 > 0 || l2 > 0)
    if let features { pipeline.include = list(features) }
    pipeline.exclude = list(exclude)
    pipeline.missing = missing
    pipeline.standardize = standardize
    let tol = tolerance ?? (solver == .sgd ? 1e-6 : precision == .float32 ? 1e-9 : 1e-12)
    var stop: [StopCriterion] = [
      .maxIterations(maxIterations), .gradientNorm(below: tol),
      .relativeObjectiveChange(below: tol),
    ]
    if let timeLimit { stop.append(.timeLimit(seconds: timeLimit)) }
    var sgd = SGDConfiguration.defaults
    sgd.batchSize = batchSize
    sgd.schedule = .halvingOnStall(eta0: learningRate ?? 0.1)
    sgd.tolerance = tol
    // Variance reduction needs both gradients of a batch from one round: BSP only.
    sgd.varianceReduced = mode.staleness == 0
    sgd.seed = seed
    let configuration = TrainingConfiguration(
      kind: model.kind, regularization: Regularization(l1: l1, l2: l2), solver: solver.solver,
      stop: StopCriteria(stop), sgd: sgd,
      bounds: nil, threads: kernelThreads(workers: mode.workers))
    var job = TrainingJob(dataPath: input.data, pipeline: pipeline, configuration: configuration)
    job.precision = precision
    job.validationSplit = validationSplit
    job.seed = seed
    job.boundsSpecification = try BoundsSpecification.parse(
      lower: lower, upper: upper, nonnegative: nonnegative)
    if let warmStart {
      let m = try ModelFile.read(from: warmStart)
      job.initial = Parameters(
        weights: m.coefficients, intercept: m.intercept)
    }
    try job.validate(mode)
    return job
  }

  /// Prints the run's warnings, writes the model and summary, prints the table.
  func finish(_ file: ModelFile) throws {
    for warning in file.training.warnings ?? [] {
      FileHandle.standardError.write(Data("warning: \(warning)\n".utf8))
    }
    try file.write(to: output)
    if let summaryJson { try SummaryJSON.write(file.training, to: summaryJson) }
    SummaryTable.print(file, output: output)
  }

  /// Refuses a run whose outputs would replace one of its inputs or each other.
  func checkPaths(checkpointDirectory: String? = nil) throws {
    var inputs = [("--data", input.data)]
    if let warmStart { inputs.append(("--warm-start", warmStart)) }
    var outputs = [("--output", output)]
    if let summaryJson { outputs.append(("--summary-json", summaryJson)) }
    try OutputPaths.check(inputs: inputs, outputs: outputs, directories: checkpointDirectory)
  }

  /// These flags as command-line arguments, to start other processes with them.
  var arguments: [String] {
    var a = ["--data", input.data, "--label", label, "--model", model.rawValue]
    a += ["--l1", "\(l1)", "--l2", "\(l2)", "--solver", solver.rawValue]
    a += ["--max-iterations", "\(maxIterations)"]
    if let timeLimit { a += ["--time-limit", "\(timeLimit)"] }
    if let categorical { a += ["--categorical", categorical] }
    a += ["--drop-first", dropFirst.rawValue]
    if let features { a += ["--features", features] }
    if let exclude { a += ["--exclude", exclude] }
    a += ["--missing", missing.rawValue]
    if standardize { a.append("--standardize") }
    a += ["--precision", precision.rawValue]
    if let threads { a += ["--threads", "\(threads)"] }
    if let tolerance { a += ["--tolerance", "\(tolerance)"] }
    if let lower { a += ["--lower", lower] }
    if let upper { a += ["--upper", upper] }
    if nonnegative { a.append("--nonnegative") }
    a += ["--validation-split", "\(validationSplit)", "--seed", "\(seed)"]
    a += ["--batch-size", "\(batchSize)"]
    if let learningRate { a += ["--learning-rate", "\(learningRate)"] }
    if let warmStart { a += ["--warm-start", warmStart] }
    a += ["--output", output]
    if let summaryJson { a += ["--summary-json", summaryJson] }
    if quiet { a.append("--quiet") }
    if verbose { a.append("--verbose") }
    return a
  }
}

/// Parameter-server flags shared by `train --workers` and `launch`.
struct DistributedFlags: ParsableArguments {
  @Option(
    help: "Train with a master and this many worker tasks (parameter server, in this process).")
  var workers: Int?
  @Option(help: "Checkpoint directory for --workers (resumable with --resume).")
  var checkpointDir: String?
  @Option(help: "Checkpoint every this many optimizer steps.") var checkpointEvery = 10
  @Flag(help: "Continue from the newest checkpoint in --checkpoint-dir.") var resume = false
  @Option(
    help: ArgumentHelp(
      "Kill tasks at seeded epochs (with --workers): kill-workers=K,kill-master=M.",
      discussion: "Kills land at distinct epochs in 2…--chaos-last-epoch, drawn from --seed."))
  var chaos: String?
  @Option(help: "The last epoch a --chaos kill may land in.") var chaosLastEpoch: UInt64 = 40
  @Option(
    help: "Serve the master's Prometheus metrics at http://HOST:PORT/metrics (0: a free port).")
  var metricsPort: Int?
  @Option(
    help:
      "Consistency: 0 is BSP (the default; deterministic); S > 0 lets a step use a worker's sums from up to S rounds back (SSP, for stragglers); 'async' steps on every answer. Needs --solver sgd."
  )
  var staleness: Staleness = .bsp
  @Option(
    help:
      "How the data is split between the workers: rows (the default), or columns (every worker reads every row and keeps its share of the columns: for wide data, many more features than rows; iterative solvers, BSP)."
  )
  var partition: Partition = .rows

  func validate() throws {
    if let workers, workers < 1 { throw ValidationError("--workers must be at least 1") }
    if metricsPort != nil && workers == nil {
      throw ValidationError("--metrics-port needs --workers")
    }
    if chaos != nil && workers == nil { throw ValidationError("--chaos needs --workers") }
    if partition != .rows && workers == nil {
      throw ValidationError("--partition needs --workers")
    }
    guard checkpointEvery >= 1 else { throw ValidationError("--checkpoint-every must be ≥ 1") }
  }

  func chaosPlan(workers: Int, seed: UInt64) throws -> ChaosPlan {
    guard let chaos else { return ChaosPlan() }
    return try ChaosPlan.parse(
      chaos, workers: workers, seed: seed, epochs: 2...max(2, chaosLastEpoch))
  }

  func options(workers: Int, seed: UInt64, quiet: Bool) throws -> DistributedOptions {
    var options = DistributedOptions(workers: workers)
    options.checkpointDirectory = checkpointDir
    options.checkpointEvery = checkpointEvery
    options.resume = resume
    options.chaos = try chaosPlan(workers: workers, seed: seed)
    options.staleness = staleness.rounds
    options.partition = partition
    if chaos != nil {
      if options.checkpointDirectory == nil {
        options.checkpointDirectory =
          FileManager.default.temporaryDirectory
          .appendingPathComponent("taskgraph-checkpoints-\(getpid())").path
      }
      if !quiet { FileHandle.standardError.write(Data("chaos: \(options.chaos)\n".utf8)) }
    }
    return options
  }
}

enum ModelKind: String, ExpressibleByArgument, CaseIterable {
  case linear, ridge, lasso, elasticNet = "elastic-net", logistic
  var kind: LinearModel.Kind {
    switch self {
    case .linear: .linear
    case .ridge: .ridge
    case .lasso: .lasso
    case .elasticNet: .elasticNet
    case .logistic: .logistic
    }
  }
}

enum SolverName: String, ExpressibleByArgument, CaseIterable {
  case auto, exact, qr, gd, sgd, lbfgs, owlqn, projected
  var solver: Solver {
    switch self {
    case .auto: .auto
    case .exact: .exact
    case .qr: .qr
    case .gd: .gradientDescent
    case .sgd: .sgd
    case .lbfgs: .lbfgs
    case .owlqn: .owlqn
    case .projected: .projected
    }
  }
}

extension MissingPolicy: ExpressibleByArgument {}
extension DropFirstPolicy: ExpressibleByArgument {}
extension Precision: ExpressibleByArgument {}
extension Partition: ExpressibleByArgument {}

func list(_ s: String?) -> [String] {
  guard let s else { return [] }
  return s.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }.filter {
    !$0.isEmpty
  }
}

/// `--staleness`: a number of rounds, or `async`.
struct Staleness: ExpressibleByArgument {
  var rounds: UInt64

  init(rounds: UInt64) { self.rounds = rounds }

  /// Bulk-synchronous: every step from the sums of one round.
  static let bsp = Staleness(rounds: 0)

  init?(argument: String) {
    if argument == "async" {
      rounds = .max
    } else if let n = UInt64(argument) {
      rounds = n
    } else {
      return nil
    }
  }

  /// The flag's value as it was written.
  var argument: String { rounds == .max ? "async" : "\(rounds)" }

  var defaultValueDescription: String { argument }
}

/// `--gradient-blocks`, shared by `launch`, `worker` and `bench train`.
struct GradientBlockFlags: ParsableArguments {
  @Option(
    name: .customLong("gradient-blocks"),
    help: ArgumentHelp(
      "Send a gradient that makes at least 4 blocks of this many columns block by block (0: whole).",
      discussion: """
        Each block is sent while the worker computes the next, so sending overlaps \
        computing; the model is the same within 1e-12 relative (the sums are taken in \
        another order), and bit-identical from run to run for a given setting.
        """))
  var value = ParameterServerWorker.defaultGradientBlockColumns

  func validate() throws {
    guard value >= 0 else { throw ValidationError("--gradient-blocks must be ≥ 0") }
  }

  /// The worker's block size: nil sends gradients whole.
  var columns: Int? { value > 0 ? value : nil }

  /// The flag as a worker process takes it.
  var arguments: [String] { ["--gradient-blocks", "\(value)"] }
}
