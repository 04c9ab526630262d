import Foundation
import Logging
import TaskGraph
import TaskGraphData
import TaskGraphLinalg
import TaskGraphML

/// How a parameter-server job splits its data between the workers.
public enum Partition: String, Sendable, Codable, CaseIterable {
  /// Worker *i* of *N* holds a contiguous *N*-th of the rows and every column (the
  /// default). It needs all the parameters and sends a whole gradient every evaluation:
  /// the master sends and receives *N·d* values per evaluation.
  case rows
  /// Worker *i* of *N* holds every row and a contiguous *N*-th of the columns. It gets only
  /// its columns' weights and sends only their gradient, so the master sends and receives
  /// *d* values per evaluation whatever *N*; in exchange an evaluation takes two round
  /// trips: each worker's part of the margins (one value per row) up, their sum down. For
  /// wide data, many more features than rows. Every worker reads every row of the source.
  /// Iterative solvers with BSP only: the exact solver's statistics would need products
  /// across the workers' columns, and a step from sums of several rounds would mix margins
  /// of different parameters.
  case columns

  /// The columns worker `index` (from 0) of `count` holds, of `total`.
  public static func columns(of index: Int, count: Int, total: Int) -> Range<Int> {
    (total * index / count)..<(total * (index + 1) / count)
  }
}

/// Settings of a parameter-server run beyond the single-machine `TrainingJob`.
public struct DistributedOptions: Sendable {
  /// Number of worker tasks.
  public var workers: Int
  /// Where checkpoints go (nil: none).
  public var checkpointDirectory: String?
  /// Checkpoint every this many optimizer steps.
  public var checkpointEvery: Int = 10
  /// Continue from the newest checkpoint in `checkpointDirectory` if there is one.
  public var resume: Bool = false
  /// Lease TTL of every node.
  public var leaseTTL: Duration = .seconds(2)
  /// Faults to inject (embedded runs); each kill is answered by a standby node.
  public var chaos = ChaosPlan()
  /// Where the master records its per-epoch metrics; nil for none.
  public var metrics: TrainingMetrics?
  /// Bounded staleness in rounds (0: BSP; `.max`: asynchronous); see `MasterSettings`.
  public var staleness: UInt64 = 0
  /// How the data is split between the workers.
  public var partition: Partition = .rows
  /// Testing: extra delay of each listed worker's evaluations (a straggler).
  var workerDelays: [Int: Duration] = [:]
  /// Testing: the workers' gradient blocks (see `ParameterServerWorker.gradientBlockColumns`).
  var gradientBlockColumns: Int? = ParameterServerWorker.defaultGradientBlockColumns
  /// Testing: the listed workers' own block sizes instead (workers of separate processes
  /// may be started with different ones).
  var workerGradientBlockColumns: [Int: Int] = [:]

  public init(workers: Int) {
    precondition(workers >= 1, "at least one worker")
    self.workers = workers
  }
}

/// Parameter-server training on the runtime: a master task (task 0) steps the optimizer,
/// worker tasks 1…N hold shards of the rows and compute loss and gradient sums.
public enum DistributedTraining {
  /// What the master and every worker agree on, fitted once by whoever starts the job.
  public struct Plan: Sendable {
    let description: JobDescription
    /// The fitted preprocessing shared by all workers.
    public var pipeline: FittedPipeline { description.pipeline }
    /// The job's configuration with its bounds resolved for the pipeline's features.
    public var configuration: TrainingConfiguration
    /// Seconds spent fitting the pipeline.
    public var preprocessSeconds: Double
  }

  /// Fits the preprocessing on the whole file (one pass) and computes the fingerprints.
  public static func plan(_ job: TrainingJob, partition: Partition = .rows) throws -> Plan {
    guard job.validationSplit >= 0, job.validationSplit < 1 else {
      throw TrainingError(
        code: .invalidConfiguration, message: "validation split must be in [0, 1)")
    }
    let start = Date()
    let pipeline = try DataPipeline.fitPipeline(
      path: job.dataPath, options: job.preparedPipelineOptions)
    let configuration = try job.resolvedConfiguration(for: pipeline)
    let fingerprintInput = ConfigFingerprintInput(
      configuration: configuration, pipeline: pipeline, precision: job.precision,
      validationSplit: job.validationSplit, seed: job.seed,
      partition: partition == .rows ? nil : partition)
    let description = JobDescription(
      dataPath: job.dataPath, pipeline: pipeline, precision: job.precision,
      loss: job.configuration.kind.loss, threads: job.configuration.threads,
      dataFingerprint: try Fingerprint.ofFile(job.dataPath),
      configFingerprint: Fingerprint.of(fingerprintInput), validationSplit: job.validationSplit,
      seed: job.seed, partition: partition)
    return Plan(
      description: description, configuration: configuration,
      preprocessSeconds: Date().timeIntervalSince(start))
  }

  struct ConfigFingerprintInput: Encodable {
    var configuration: TrainingConfiguration
    var pipeline: FittedPipeline
    var precision: Precision
    var validationSplit: Double
    var seed: UInt64
    /// Nil for rows (the fingerprints of jobs before partitions existed stay the same).
    var partition: Partition?
  }

  /// The master task of `plan`.
  public static func master(
    plan: Plan, settings: MasterSettings, logger: Logger,
    onResult: @escaping @Sendable (Result<DistributedResult, TrainingError>) -> Void
  ) -> ParameterServerMaster {
    ParameterServerMaster(
      job: plan.description, settings: settings, logger: logger, onResult: onResult)
  }

  /// A worker task for slot `taskID` of a job with `workers` workers.
  /// `checkpointDirectory`, when given, holds the worker's shard cache (in `shards/`); a
  /// gradient of at least 4 blocks of `gradientBlockColumns` columns is sent block by block
  /// (nil: whole).
  public static func worker(
    taskID: Int, workers: Int, localDataPath: String?, checkpointDirectory: String? = nil,
    gradientBlockColumns: Int? = ParameterServerWorker.defaultGradientBlockColumns,
    logger: Logger, onRefuse: @escaping @Sendable (String) -> Void = { _ in }
  ) -> ParameterServerWorker {
    ParameterServerWorker(
      taskID: taskID, workerCount: workers, localDataPath: localDataPath,
      shardCacheDirectory: checkpointDirectory.map(shardDirectory), logger: logger,
      onRefuse: onRefuse, gradientBlockColumns: gradientBlockColumns)
  }

  /// The shard cache's directory under a checkpoint directory.
  public static func shardDirectory(_ checkpointDirectory: String) -> String {
    "\(checkpointDirectory)/shards"
  }

  /// The solver the parameter server runs for `configuration`: the exact solver (one
  /// round: workers send their shards' least-squares statistics, the master merges and
  /// solves) for `exact` and `qr`; otherwise the iterative solver, stepped once per epoch.
  public static func iterative(_ configuration: TrainingConfiguration) -> TrainingConfiguration {
    var c = configuration
    if c.resolvedSolver == .qr { c.solver = .exact }
    return c
  }

  /// Runs the whole job in this process: a master and `options.workers` workers on the
  /// embedded coordinator and in-process transport.
  public static func runEmbedded(
    _ job: TrainingJob, options: DistributedOptions,
    progress: @escaping @Sendable (OptimizationProgress) -> Void = { _ in },
    epochReport: @escaping @Sendable (EpochReport) -> Void = { _ in },
    logger: Logger = Logger(label: "taskgraph.training")
  ) async throws -> ModelFile {
    try await runInProcess(
      job, options: options, coordinator: InMemoryCoordinator(), transport: InProcessTransport(),
      jobName: "train", progress: progress, epochReport: epochReport, logger: logger)
  }

  /// Runs the whole job's tasks in this process over `coordinator` and `transport`: the
  /// embedded pair, or etcd and gRPC (every task then talks to the others over loopback
  /// gRPC and holds its own etcd lease, as separate processes would).
  public static func runInProcess(
    _ job: TrainingJob, options: DistributedOptions, coordinator: any Coordinator,
    transport: any Transport, jobName: String,
    progress: @escaping @Sendable (OptimizationProgress) -> Void = { _ in },
    epochReport: @escaping @Sendable (EpochReport) -> Void = { _ in },
    logger: Logger = Logger(label: "taskgraph.training")
  ) async throws -> ModelFile {
    try job.validate(ExecutionMode(options))
    var job = job
    job.configuration = iterative(job.configuration)
    let plan = try plan(job, partition: options.partition)
    var settings = MasterSettings(configuration: plan.configuration)
    settings.checkpointEvery = options.checkpointEvery
    settings.resume = options.resume
    settings.progress = progress
    settings.epochReport = epochReport
    settings.metrics = options.metrics
    settings.staleness = options.staleness
    if let dir = options.checkpointDirectory {
      try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
      settings.checkpoints = try DirectoryCheckpointStore(directory: dir)
    }
    let box = ResultBox()
    let chaos = ChaosState(options.chaos)
    settings.chaos = chaos
    let n = options.workers
    let frozen = settings
    let topology = StarTopology(taskCount: n + 1)
    let builder = MasterWorker.builder(
      // A fresh master per node: a standby that takes over restores from the checkpoint.
      master: { master(plan: plan, settings: frozen, logger: logger) { box.set($0) } },
      worker: { id in
        ParameterServerWorker(
          taskID: id, workerCount: n, localDataPath: nil,
          shardCacheDirectory: options.checkpointDirectory.map(shardDirectory), logger: logger,
          chaos: chaos, delay: options.workerDelays[id],
          gradientBlockColumns: options.workerGradientBlockColumns[id]
            ?? options.gradientBlockColumns)
      })
    // Every node may wait as a hot standby: the nodes of a slot start together, and
    // whichever claims it first serves it while the others wait for it to free up. (A node
    // that could not wait would fail with `jobFull` when a standby got there first, and
    // leave the slot one successor short: a hang at the next kill.)
    func node(_ id: Int) -> Node {
      Node(
        configuration: NodeConfiguration(
          job: jobName, leaseTTL: options.leaseTTL, slot: .exactly(id), standby: true),
        coordinator: coordinator, transport: transport, topology: topology, logger: logger,
        builder: builder)
    }
    try await Controller(
      coordinator: coordinator, job: jobName,
      spec: JobSpec(taskCount: topology.taskCount, topology: topology.description)
    ).create()
    try await withThrowingTaskGroup(of: Void.self) { group in
      // A node whose lease lapsed (stalled past the TTL on a loaded machine) stops acting;
      // a new one takes its place, as a supervisor restarts a process. That holds for hot
      // standbys too: one that lost its lease while waiting would leave a killed task's
      // slot without a successor.
      func supervised(_ id: Int) {
        group.addTask {
          var outcome = try await node(id).run()
          while case .leaseLost = outcome {
            outcome = try await node(id).run()
          }
        }
      }
      // One extra node per planned kill, to take the task's slot over when it frees up.
      // They start first, so they often claim a slot before its first node does (every
      // chaos run exercises that race).
      for kill in options.chaos.kills { supervised(kill.task) }
      for id in 0...n { supervised(id) }
      // A node that fails ends the run at once (the others are cancelled) rather than
      // after the job, which may not end without it.
      while try await group.next() != nil {}
    }
    let result = try box.get()
    return try modelFile(result, plan: plan, job: job, workers: n)
  }

  /// The model file for a finished distributed run.
  ///
  /// - Throws: `TrainingError` if the result is not usable (see `ModelFile.checkUsable()`).
  public static func modelFile(
    _ result: DistributedResult, plan: Plan, job: TrainingJob, workers: Int
  ) throws -> ModelFile {
    var report = TrainingReport(
      solver: iterative(try job.resolvedConfiguration(for: plan.pipeline)).resolvedSolver
        .rawValue, iterations: result.iterations,
      stopReason: result.stopReason.rawValue, objectives: result.objectives,
      objective: result.objectives.last ?? .nan, loadSeconds: result.loadSeconds,
      preprocessSeconds: plan.preprocessSeconds, fitSeconds: result.fitSeconds,
      msPerIteration: TrainingReport.msPerIteration(
        fitSeconds: result.fitSeconds, iterations: result.iterations),
      rowsRead: result.rows + result.validationRows + result.dropped,
      rowsDropped: result.dropped, trainRows: result.rows, validationRows: result.validationRows,
      trainMetrics: result.metrics, validationMetrics: result.validationMetrics,
      precision: job.precision.rawValue,
      threads: job.configuration.threads, workers: workers)
    report.noteOutcome(
      stopReason: result.stopReason, aliased: result.aliased.map { plan.pipeline.featureNames[$0] })
    if result.checkpointsWritten + result.checkpointsSuperseded > 0 {
      report.checkpointsWritten = result.checkpointsWritten
      report.checkpointsSuperseded = result.checkpointsSuperseded
      if !result.checkpointMilliseconds.isEmpty {
        report.checkpointWriteMilliseconds = TrainingBenchmark.median(
          result.checkpointMilliseconds)
      }
    }
    return try job.modelFile(result.model, pipeline: plan.pipeline, training: report)
  }
}

/// Holds the master's result for whoever waits on the job; the first value set wins.
public final class ResultBox: @unchecked Sendable {
  // Unchecked Sendable: every access to `value` is under `lock`.
  private let lock = NSLock()
  private var value: Result<DistributedResult, TrainingError>?

  public init() {}

  /// Records the master's result (later calls are ignored).
  public func set(_ v: Result<DistributedResult, TrainingError>) {
    lock.lock()
    if value == nil { value = v }
    lock.unlock()
  }

  /// The result if the master produced one in this process.
  public var result: Result<DistributedResult, TrainingError>? {
    lock.lock()
    defer { lock.unlock() }
    return value
  }

  /// The result, or an error if the job ended without one.
  public func get() throws -> DistributedResult {
    lock.lock()
    defer { lock.unlock() }
    guard let value else {
      throw TrainingError(code: .solverFailed, message: "the job ended without a result")
    }
    return try value.get()
  }
}
