import Foundation
import Logging
import Synchronization
import TaskGraph
import TaskGraphData
import TaskGraphLinalg
import TaskGraphML

/// What the parameter-server master needs besides the runtime.
public struct MasterSettings: Sendable {
  /// The training configuration (model, penalty, solver, stop criteria).
  public var configuration: TrainingConfiguration
  /// Where checkpoints go; nil for none.
  public var checkpoints: (any CheckpointStore)?
  /// Checkpoint every this many optimizer steps.
  public var checkpointEvery: Int = 10
  /// Whether to resume from the newest valid checkpoint, if there is one.
  public var resume: Bool = true
  /// Called with the solver's progress.
  public var progress: @Sendable (OptimizationProgress) -> Void = { _ in }
  /// Called with every epoch's figures (epoch, slowest worker ms, epoch ms).
  public var epochReport: @Sendable (EpochReport) -> Void = { _ in }
  /// Where the epoch figures are also recorded as metrics; nil for none.
  public var metrics: TrainingMetrics?
  /// Bounded staleness (SSP): a step may use a worker's sums from up to this many rounds
  /// back, so the master waits only for workers further behind. 0 is BSP; `.max` is fully
  /// asynchronous (a step on every answer, with each worker's latest sums).
  public var staleness: UInt64 = 0
  /// Publish each round's number under the job's records (`round`) in the coordinator, in
  /// the background, at most one write in flight (for a supervisor that acts on rounds).
  public var publishRounds = false
  /// Fault injection: kills the master as it enters an epoch.
  var chaos: ChaosState?

  public init(configuration: TrainingConfiguration) {
    self.configuration = configuration
  }
}

/// One epoch as the master saw it.
public struct EpochReport: Sendable, Equatable {
  /// The runtime's epoch.
  public var epoch: UInt64
  /// The optimizer's iteration.
  public var iteration: Int
  /// The objective of the last completed step, if any.
  public var objective: Double?
  /// The gradient norm after the last completed step, if any.
  public var gradientNorm: Double?
  /// Milliseconds from entering the epoch until every worker had answered.
  public var epochMilliseconds: Double
  /// The slowest worker's compute time in the epoch, milliseconds (measured by the master as
  /// the gap from the broadcast to that worker's answer).
  public var slowestWorkerMilliseconds: Double
  /// The largest compute time a worker reported for the epoch, milliseconds: the rest of
  /// the epoch is the framework's overhead.
  public var slowestComputeMilliseconds: Double
  /// Recoveries seen by this master process: its resume from a checkpoint and every worker
  /// replaced since.
  public var recoveries: Int
  /// The optimizer's time before this round: from the last round's sums to this round's
  /// request (the master's own compute, part of neither a worker's nor the framework's).
  public var stepMilliseconds = 0.0
  /// With bounded staleness: contributions from an earlier round used in steps so far.
  public var staleContributions = 0
  /// When every worker had answered (monotonic seconds), to time whole epochs.
  public var answeredAt: Double = Double(DispatchTime.now().uptimeNanoseconds) / 1e9

  /// One line for a progress log: epoch, iteration, objective, gradient norm, slowest
  /// worker's compute, epoch time and recoveries.
  public var line: String {
    let o = objective.map { String(format: "%.12g", $0) } ?? "-"
    let g = gradientNorm.map { String(format: "%.3e", $0) } ?? "-"
    return String(
      format:
        "epoch %4llu  iteration %4d  objective %@  gradient norm %@  slowest worker %.2f ms  epoch %.2f ms  recoveries %d",
      epoch, iteration, o, g, slowestComputeMilliseconds, epochMilliseconds, recoveries)
  }
}

/// The outcome of a distributed run, as the master produced it.
public struct DistributedResult: Sendable {
  /// The trained model (in the pipeline's output units).
  public var model: LinearModel
  /// Objectives, iterations, stop reason.
  public var objectives: [Double]
  public var iterations: Int
  public var stopReason: StopReason
  public var fitSeconds: Double
  /// Rows over all shards.
  public var rows: Int
  /// The training metrics: from the workers' predictions of their training rows, the
  /// same as one process computes (before that round, from the final sums: MSE/RMSE/R² or
  /// log-loss).
  public var metrics: [String: Double]
  /// Whether `metrics` come from the training rows' predictions.
  var trainingScored = false
  /// The epoch the job ended in.
  public var epochs: UInt64
  /// Whether this master resumed from a checkpoint.
  public var resumed: Bool
  /// Slowest worker load time, seconds.
  public var loadSeconds: Double
  /// With bounded staleness: contributions from an earlier round that steps used.
  public var staleContributions = 0
  /// Checkpoints this master wrote, and those superseded by a newer one before their turn
  /// (writes run in the background, one at a time).
  public var checkpointsWritten = 0
  public var checkpointsSuperseded = 0
  /// Milliseconds each written checkpoint took (encode, checksum, write, sync), in order.
  public var checkpointMilliseconds: [Double] = []
  /// Rows held out for validation over all shards, and the metrics on them.
  public var validationRows = 0
  public var validationMetrics: [String: Double] = [:]
  /// Rows dropped for missing values over all shards.
  public var dropped = 0
  /// Columns the exact solver found aliased (coefficient 0).
  public var aliased: [Int] = []
}

/// The master's checkpoint: everything needed to continue bit-identically.
struct MasterCheckpoint: Codable, Sendable {
  var epoch: UInt64
  /// The round the checkpoint was taken in (rounds continue from it after a restore).
  var round: UInt64?
  var optimizer: Optimizer
  var objectives: [Double]
  var rows: Int
  var labelSum: Double
  var labelSquares: Double
  var dropped: Int?
  var validationRows: Int?
  var dataFingerprint: String
  var configFingerprint: String
  /// Training rows of each worker's shard, in task-id order (SGD's batches are drawn from
  /// their concatenation). Nil in checkpoints written before it existed.
  var shardRows: [Int]?
}

/// The parameter server: holds the model and optimizer state, broadcasts parameters, sums
/// the workers' contributions in task-id order and steps the optimizer once per epoch.
public actor ParameterServerMaster: MasterTask {
  enum Phase {
    case starting
    case loading
    case evaluating(EvaluationRequest)
    /// The exact solver's round: every worker sends its shard's statistics.
    case gram
    /// After a stale-synchronous run: one BSP evaluation of the final parameters.
    case finalEvaluation(DistributedResult)
    /// Every worker scores its training rows with the final model (the training metrics).
    case scoringTraining(DistributedResult)
    /// Every worker scores its held-out rows with the final model.
    case validating(DistributedResult)
    case done
  }

  let job: JobDescription
  let settings: MasterSettings
  let logger: Logger
  let onResult: @Sendable (Result<DistributedResult, TrainingError>) -> Void
  var phase: Phase = .starting
  var driver: OptimizerDriver?
  var events: AsyncStream<OptimizerDriver.Event>.Iterator?
  var answers: [Int: WorkerMessage] = [:]
  /// Gradients arriving in blocks, per worker: the newest round's, kept until the next
  /// round's first block (the round's sum may need them joined).
  var assemblies: [Int: GradientAssembly] = [:]
  /// The current round's blocks summed over the workers as they arrive (BSP).
  var blockTotal: BlockTotal?
  /// Columns partitioned: the current evaluation's margins without the intercept (the
  /// workers' parts summed) once its first half is in; nil before, and between evaluations.
  var margins: [Double]?
  /// Columns partitioned: each worker's time on the current evaluation's first half.
  var marginsMilliseconds: [Int: Double] = [:]
  /// Columns partitioned: the current round's gradient, each block written to its columns
  /// as it arrives.
  var columnGradient: (tag: RoundTag, values: [Double])?
  var byColumns: Bool { job.partition == .columns }
  var answerTimes: [Int: Double] = [:]
  var epochStart = Date()
  var epoch: UInt64 = 0
  /// This master's identity in its requests' tags (answers to another master are ignored).
  let incarnation = UInt64.random(in: 1...UInt64.max)
  /// The current round: 0 loads, then one per evaluation (or the exact solver's one).
  var round: UInt64 = 0
  /// Whether the next round starts in a new runtime epoch (after a checkpoint).
  var epochDue = false
  var publishing = false
  /// SSP: each worker's newest sums (their round, the sums, compute ms).
  var latest: [Int: (round: UInt64, sums: GradientSums, ms: Double)] = [:]
  /// SSP: workers with a request outstanding, and the last round sent to each.
  var busy: Set<Int> = []
  var sentRound: [Int: UInt64] = [:]
  /// SSP: contributions from an earlier round used in a step, so far.
  var staleUsed = 0
  var steppedRound: UInt64 = 0
  var stepping = false
  var staleness: UInt64 { settings.staleness }
  var rows = 0
  /// Training rows of each worker's shard, in task-id order.
  var shardRows: [Int] = []
  var labelSum = 0.0
  var labelSquares = 0.0
  var loadSeconds = 0.0
  var dropped = 0
  var validationRows = 0
  var stepsSinceCheckpoint = 0
  /// Writes checkpoints in the background (nil without a store).
  let writer: CheckpointWriter?
  var recoveries = 0
  /// Workers replaced while this master ran.
  var workersReplaced = 0
  var lastObjective: Double?
  var lastGradientNorm: Double?
  var iteration = 0
  var computeMilliseconds = 0.0
  /// When the last round's answers were all in, and the optimizer's time after it.
  var answeredAt: Date?
  var stepMilliseconds = 0.0

  init(
    job: JobDescription, settings: MasterSettings, logger: Logger,
    onResult: @escaping @Sendable (Result<DistributedResult, TrainingError>) -> Void
  ) {
    self.job = job
    self.settings = settings
    self.logger = logger
    self.onResult = onResult
    writer = settings.checkpoints.map { CheckpointWriter(store: $0, logger: logger) }
  }

  /// Rounds run inside a runtime epoch: the master advances the epoch (a coordinator
  /// compare-and-swap) only after loading and after each checkpoint, so a round costs two
  /// messages per worker and no coordinator round trip. Entering an epoch (re)sends the
  /// current round's request; a replacement master first restores from a checkpoint.
  public func enterEpoch(_ epoch: UInt64, context: MasterContext) async {
    self.epoch = epoch
    // A new epoch cancels the old one's outstanding requests: every worker gets the next.
    busy.removeAll()
    if case .starting = phase {
      if await !restore() { phase = .loading }
      // A restored driver's first event is the evaluation it needs next.
      if driver != nil {
        await advance(context: context, increment: false)
        return
      }
    }
    await broadcast(context: context)
  }

  /// Sends the current round's request to every worker.
  private func broadcast(context: MasterContext) async {
    if settings.chaos?.shouldKill(task: 0, epoch: round) == true {
      logger.warning("chaos: killing the master at round \(round)")
      driver?.cancel()
      await writer?.discard()
      await context.kill()
      return
    }
    answers = [:]
    answerTimes = [:]
    // An earlier round's total is of no more use (it holds received messages' bytes).
    // (Assemblies stay: with bounded staleness an earlier round's answer still counts.)
    if let total = blockTotal, total.tag.round < round { blockTotal = nil }
    if let total = columnGradient, total.tag.round < round { columnGradient = nil }
    // An evaluation of columns partitioned is timed from its first half's request.
    if margins == nil { epochStart = Date() }
    let tag = RoundTag(incarnation: incarnation, round: round)
    let n = context.workers.count
    guard currentMessage(for: 1, of: n) != nil else { return }
    var ssp = false
    if staleness > 0, case .evaluating = phase { ssp = true }
    // Outside SSP rounds every worker gets the request (answers to older ones are ignored).
    if !ssp { busy.removeAll() }
    for w in context.workers where !busy.contains(w) {
      if ssp {
        // SSP: a worker still busy with an earlier round gets this one when it answers.
        busy.insert(w)
        sentRound[w] = round
      }
      // The same message for every worker, but with columns partitioned: each then gets
      // its own columns' weights (a view of the parameters, not a copy).
      guard let message = currentMessage(for: w, of: n) else { return }
      await context.notifyWorker(w, message: message.encoded(tag, light: true))
    }
    if settings.publishRounds && !publishing {
      publishing = true
      let value = Array("\(round)".utf8)
      Task {
        try? await context.record("round", value: value)
        self.published()
      }
    }
  }

  private func published() { publishing = false }

  /// The request of the current round to worker `worker` of `count`, if the phase has one.
  private func currentMessage(for worker: Int, of count: Int) -> MasterMessage? {
    switch phase {
    case .loading: .load(job)
    case .evaluating(let request) where byColumns:
      if let margins {
        .gradientAt(
          job, margins: SharedDoubles(margins), intercept: request.parameters.intercept)
      } else {
        .margins(job, columns(of: request.parameters, worker: worker, of: count))
      }
    case .evaluating(let request):
      switch request.batch {
      case .all: .evaluate(job, SentParameters(request.parameters))
      case .rows(let r): batchMessage(request.parameters, Array(r), worker: worker)
      case .indices(let i): batchMessage(request.parameters, i, worker: worker)
      }
    case .gram: .gram(job)
    case .finalEvaluation(let r): .evaluate(job, SentParameters(r.model.parameters))
    case .validating(let r) where byColumns:
      .validate(job, columns(of: r.model.parameters, worker: worker, of: count))
    case .validating(let r): .validate(job, SentParameters(r.model.parameters))
    case .scoringTraining(let r) where byColumns:
      .scoreTraining(job, columns(of: r.model.parameters, worker: worker, of: count))
    case .scoringTraining(let r): .scoreTraining(job, SentParameters(r.model.parameters))
    case .starting, .done: nil
    }
  }

  /// Worker `worker`'s part of a mini-batch `rows` (sorted indices into the workers' shards
  /// laid end to end in task-id order), as indices into its own shard.
  private func batchMessage(_ p: Parameters, _ rows: [Int], worker: Int) -> MasterMessage {
    let start = shardRows.prefix(worker - 1).reduce(0, +)
    let end = start + (worker - 1 < shardRows.count ? shardRows[worker - 1] : 0)
    func firstIndex(atLeast v: Int) -> Int {
      var (lo, hi) = (0, rows.count)
      while lo < hi {
        let mid = (lo + hi) / 2
        if rows[mid] < v { lo = mid + 1 } else { hi = mid }
      }
      return lo
    }
    let lo = firstIndex(atLeast: start)
    let hi = firstIndex(atLeast: end)
    return .evaluateRows(job, SentParameters(p), rows: rows[lo..<hi].map { $0 - start })
  }

  /// Worker `worker`'s columns of `p`'s weights, without a copy (the master adds the
  /// intercept to the margins).
  private func columns(of p: Parameters, worker: Int, of count: Int) -> SentParameters {
    let range = Partition.columns(of: worker - 1, count: count, total: p.weights.count)
    return SentParameters(weights: SharedDoubles(p.weights).slice(range), intercept: 0)
  }

  /// Columns partitioned: writes a block of worker `worker`'s gradient (at `offset` of its
  /// columns) to its place in the current round's gradient.
  private func place(
    _ values: SharedDoubles, at offset: Int, of worker: Int, workers: Int, tag: RoundTag
  ) {
    guard case .evaluating(let request) = phase else { return }
    let d = request.parameters.weights.count
    let range = Partition.columns(of: worker - 1, count: workers, total: d)
    guard offset >= 0, values.count > 0, offset + values.count <= range.count else { return }
    if columnGradient?.tag != tag {
      columnGradient = (tag, [Double](repeating: 0, count: d))
    }
    columnGradient!.values.withUnsafeMutableBytes { g in
      values.copyBytes(to: g.baseAddress! + 8 * (range.lowerBound + offset))
    }
  }

  /// Adds a block (or the closing sums) of a worker's gradient in blocks; returns the
  /// worker's answer once it is complete: its closing sums, the blocks kept (BSP), or the
  /// sums with the blocks joined (bounded staleness). Only this master's rounds count, and
  /// only a worker's newest one; a block that arrives twice (from a replacement that
  /// computed it again, the same values) counts once.
  private func assemble(
    _ part: WorkerMessage, from worker: Int, tag: RoundTag, workers: [Int]
  ) -> WorkerMessage? {
    guard tag.incarnation == incarnation, tag.round <= round else { return nil }
    if let held = assemblies[worker], held.tag.round > tag.round { return nil }
    // Taken out of the dictionary while it changes: a copy left there would share the
    // gradient's storage, and adding a block would then copy all of it (8 MB at a million
    // features, 0.4 ms per block).
    var assembly = assemblies.removeValue(forKey: worker) ?? GradientAssembly(tag: tag)
    if assembly.tag.round < tag.round { assembly = GradientAssembly(tag: tag) }
    switch part {
    case .gradientBlock(let columns, let offset, let values):
      if !assembly.add(columns: columns, offset: offset, values: values) {
        logger.error(
          "worker \(worker): a gradient block at \(offset) of \(columns) columns does not fit")
      } else if byColumns {
        if tag == RoundTag(incarnation: incarnation, round: round) {
          place(values, at: offset, of: worker, workers: workers.count, tag: tag)
        }
      } else if staleness == 0, workers.count > 1,
        tag == RoundTag(incarnation: incarnation, round: round)
      {
        // Summed over the workers now, block by block, rather than all at once after the
        // last block: only the last block's sum is left when the round completes.
        if blockTotal?.tag != tag || blockTotal?.columns != columns {
          blockTotal = BlockTotal(tag: tag, workers: workers.sorted(), columns: columns)
        }
        blockTotal?.add(worker: worker, offset: offset, values: values)
      }
    case .blockedSums(let sums, let columns, let ms):
      if !assembly.close(sums, columns: columns, ms: ms) {
        logger.error("worker \(worker): gradient sums of \(columns) columns do not fit its blocks")
      }
    default:
      break
    }
    guard let (closing, columns, ms) = assembly.closed else {
      assemblies[worker] = assembly
      return nil
    }
    if staleness > 0 {
      var whole = closing
      whole.gradient = assembly.gradient()
      return .sums(whole, computeMilliseconds: ms)
    }
    // The blocks are kept, not joined: the master sums them over the workers as they come
    // (`BlockTotal`) and joins a worker's only if that total cannot be used.
    assemblies[worker] = assembly
    return .blockedSums(closing, columns: columns, computeMilliseconds: ms)
  }

  /// The current round's total of the workers' blocks, taken, if it can stand for the sum of
  /// their gradients: every worker answered in blocks that lined up and every column is in.
  private func takeBlockTotal(_ workers: [Int]) -> BlockTotal? {
    let tag = RoundTag(incarnation: incarnation, round: round)
    guard let total = blockTotal, total.tag == tag, total.workers == workers, total.isComplete,
      workers.allSatisfy({ w in
        if case .blockedSums(_, total.columns, _) = answers[w] { true } else { false }
      })
    else { return nil }
    // Let go of it, so the gradient handed on is not shared (the optimizer may write to it,
    // which would copy it first).
    blockTotal = nil
    return total
  }

  /// Replaces each answer in blocks by the whole gradient, its blocks joined.
  private func joinBlocks(of workers: [Int]) {
    for w in workers {
      guard case .blockedSums(var sums, _, let ms) = answers[w], let assembly = assemblies[w]
      else { continue }
      sums.gradient = assembly.gradient()
      answers[w] = .sums(sums, computeMilliseconds: ms)
    }
  }

  /// Sends the current round's request in full to a worker that did not hold the job (a
  /// replacement): it asked with `needJob` in answer to the light one.
  private func sendFull(to worker: Int, tag: RoundTag, context: MasterContext) async {
    guard tag.incarnation == incarnation,
      let message = currentMessage(for: worker, of: context.workers.count)
    else { return }
    if staleness > 0, case .evaluating = phase {
      busy.insert(worker)
      sentRound[worker] = round
    } else if tag.round != round {
      return
    }
    logger.info("worker \(worker) does not hold the job yet: sending it in full")
    await context.notifyWorker(
      worker, message: message.encoded(RoundTag(incarnation: incarnation, round: round)))
  }

  /// A worker's slot has a new node: if the old one owed an answer to the current round
  /// (it may have died after acknowledging the request, before its answer got out), the
  /// new node gets the request. A duplicate is harmless: answers to a round count once.
  public func workerReplaced(_ worker: Int, context: MasterContext) async {
    workersReplaced += 1
    settings.metrics?.recovered()
    guard let message = currentMessage(for: worker, of: context.workers.count) else { return }
    if staleness > 0, case .evaluating = phase {
      guard busy.contains(worker) else { return }
    } else if answers[worker] != nil {
      return
    }
    logger.info("worker \(worker) was replaced before answering round \(round): asking it again")
    await context.notifyWorker(
      worker,
      message: message.encoded(RoundTag(incarnation: incarnation, round: round), light: true))
  }

  /// Starts the next round: in a new epoch when one is due, else in this one.
  private func nextRound(context: MasterContext, newEpoch: Bool) async {
    round += 1
    guard newEpoch else {
      await broadcast(context: context)
      return
    }
    do {
      try await context.incrementEpoch()
    } catch is CancellationError {
      // The epoch moved on (this call's own increment cancels its old context).
    } catch {
      logger.warning("could not advance the epoch: \(error)")
    }
  }

  public func notified(by worker: Int, message: Payload, context: MasterContext) async throws {
    var (tag, answer) = try WorkerMessage.decodeTagged(message)
    switch answer {
    case .gradientBlock, .blockedSums:
      // A gradient in blocks counts as one answer once every block and the sums are in.
      guard let whole = assemble(answer, from: worker, tag: tag, workers: context.workers)
      else { return }
      answer = whole
    default: break
    }
    if case .refused(let why) = answer {
      logger.error("worker \(worker) refused the job: \(why)")
      return
    }
    if case .needJob = answer {
      await sendFull(to: worker, tag: tag, context: context)
      return
    }
    if staleness > 0, case .evaluating(let request) = phase {
      try await stale(worker, tag: tag, answer: answer, request: request, context: context)
      return
    }
    // Only answers to this master's current round count; others are late duplicates. So
    // does only a worker's first answer: a second (from a replacement asked again, or a
    // duplicate notification) must not complete the round twice while the step runs.
    guard tag == RoundTag(incarnation: incarnation, round: round), answers[worker] == nil else {
      return
    }
    answers[worker] = answer
    answerTimes[worker] = Date().timeIntervalSince(epochStart) * 1000
    guard answers.count == context.workers.count else { return }
    let workers = context.workers.sorted()
    if case .evaluating = phase, byColumns, margins == nil {
      return await sumMargins(workers, context: context)
    }
    answeredAt = Date()
    switch phase {
    case .loading:
      let shards = workers.compactMap { w -> ShardInfo? in
        guard case .loaded(let info) = answers[w] else { return nil }
        return info
      }
      let cols: Int?
      if let problem = byColumns ? addColumns(shards) : addRows(shards) {
        return fail(context: context, problem)
      }
      if byColumns {
        cols = shards.isEmpty ? nil : shards.reduce(0) { $0 + $1.cols }
        for (i, info) in shards.enumerated()
        where info.cols != Partition.columns(of: i, count: shards.count, total: cols!).count {
          return fail(
            context: context,
            "worker \(i + 1) holds \(info.cols) columns, not its share of the \(cols!) columns")
        }
      } else {
        cols = shards.first?.cols
      }
      guard rows > 0, let d = cols else {
        fail(context: context, "the shards hold no rows")
        return
      }
      if settings.configuration.resolvedSolver == .exact {
        if byColumns {
          return fail(context: context, "columns partitioned need an iterative solver")
        }
        phase = .gram
        report()
        await nextRound(context: context, newEpoch: true)
        return
      }
      let optimizer = Optimizer(
        configuration: DistributedTraining.iterative(settings.configuration)
          .optimizerConfiguration(defaultSlack: 1e-12),
        initial: .zeros(features: d), rowCount: rows)
      startDriver(optimizer, history: [])
      report()
      await advance(context: context, increment: true)
    case .evaluating(let request) where byColumns:
      // Every worker summed the loss over the same margins and labels: the first's sums
      // stand for all. The gradient is the workers' columns side by side.
      let d = request.parameters.weights.count
      var total: GradientSums
      var perWorker: [Int: Double]
      do {
        (total, perWorker) = try combine(workers, what: "an evaluation's second half") {
          answer in
          switch answer {
          case .sums(let s, let ms): (s, ms)
          case .blockedSums(let s, _, let ms): (s, ms)
          default: nil
          }
        } sum: {
          $0[0]
        }
        total.gradient = try joinColumns(of: workers, total: d)
      } catch {
        return fail(context: context, error.message)
      }
      // The slowest worker of each half: the second starts when the first has ended.
      computeMilliseconds += marginsMilliseconds.values.max() ?? 0
      for (w, ms) in marginsMilliseconds { perWorker[w, default: 0] += ms }
      margins = nil
      report(workerMilliseconds: perWorker)
      driver?.deliver(total)
      await advance(context: context, increment: true)
    case .evaluating:
      // Sum in task-id order, whatever order the answers came in: the result does not
      // depend on timing or failures.
      let total: GradientSums
      let perWorker: [Int: Double]
      do {
        // The blocks' total when every column was summed as the blocks came (the same adds
        // in the same order as `sum`'s); else the sum of the whole gradients, a worker's
        // blocks joined first.
        let blocks = takeBlockTotal(workers)
        if blocks == nil { joinBlocks(of: workers) }
        (total, perWorker) = try combine(workers, what: "an evaluation") { answer in
          switch answer {
          case .sums(let s, let ms): (s, ms)
          case .blockedSums(let s, _, let ms) where blocks != nil: (s, ms)
          default: nil
          }
        } sum: { parts in
          guard var blocks else { return GradientSums.sum(parts) }
          var sums = GradientSums.sum(parts)
          sums.gradient = blocks.takeGradient()
          return sums
        }
      } catch {
        return fail(context: context, error.message)
      }
      report(workerMilliseconds: perWorker)
      driver?.deliver(total)
      await advance(context: context, increment: true)
    case .gram:
      let start = Date()
      let total: GramStatistics
      let perWorker: [Int: Double]
      do {
        (total, perWorker) = try combine(workers, what: "the exact round") { answer in
          guard case .gram(let g, let ms) = answer else { return nil }
          return (g, ms)
        } sum: { parts in
          parts.dropFirst().reduce(into: parts[0]) { $0.merge($1) }
        }
      } catch {
        return fail(context: context, error.message)
      }
      report(workerMilliseconds: perWorker)
      guard
        let result = finishExact(total, computeSeconds: computeMilliseconds / 1000, start: start)
      else {
        try? await context.shutdownJob()
        return
      }
      await finish(result, context: context)
    case .finalEvaluation(var result):
      let total = GradientSums.sum(
        workers.compactMap { w in
          // Only the loss and the row count are used: a gradient in blocks needs no joining.
          switch answers[w] {
          case .sums(let s, _), .blockedSums(let s, _, _): return s
          default: return nil
          }
        })
      let objective =
        total.loss / Double(max(1, total.rows))
        + settings.configuration.regularization.penalty(result.model.coefficients)
      result.objectives.append(objective)
      result.metrics = finalMetrics(objective, model: result.model)
      result.epochs = round
      await finish(result, context: context)
    case .scoringTraining(var result):
      let scored: (predictions: [Double], labels: [Double])
      do {
        scored = try score(workers, model: result.model, expected: rows, what: "the training")
      } catch {
        return fail(context: context, error.message)
      }
      if scored.labels.count == rows {
        result.metrics = LocalTraining.metrics(
          kind: settings.configuration.kind, predictions: scored.predictions,
          labels: scored.labels)
      }
      result.trainingScored = true
      await finish(result, context: context)
    case .validating(var result):
      let scored: (predictions: [Double], labels: [Double])
      do {
        scored = try score(
          workers, model: result.model, expected: validationRows, what: "the validation")
      } catch {
        return fail(context: context, error.message)
      }
      result.validationRows = scored.labels.count
      if !scored.labels.isEmpty {
        result.validationMetrics = LocalTraining.metrics(
          kind: settings.configuration.kind, predictions: scored.predictions,
          labels: scored.labels)
      }
      result.epochs = round
      phase = .done
      await addCheckpointFigures(to: &result)
      onResult(.success(result))
      try? await context.shutdownJob()
    case .starting, .done:
      return
    }
  }

  /// The held-out (or training) rows' predictions and labels from the workers' `scored`
  /// answers (`expected` rows in all). Rows
  /// partitioned, each worker scored its own rows: they are concatenated in task-id order,
  /// as one machine orders them. Columns partitioned, every worker scored the same rows
  /// with its columns: their parts of the margins are added in task-id order, then the
  /// intercept, and turned into predictions.
  private func score(_ workers: [Int], model: LinearModel, expected: Int, what: String)
    throws(TrainingError) -> (predictions: [Double], labels: [Double])
  {
    let byColumns = byColumns
    return try combine(workers, what: what) { answer in
      guard case .scored(let p, let y) = answer, !byColumns || y.count == expected else {
        return nil
      }
      return ((p, y), 0)
    } sum: { parts in
      guard byColumns else {
        return parts.dropFirst().reduce(into: parts[0]) {
          $0.predictions += $1.predictions
          $0.labels += $1.labels
        }
      }
      var z = parts[0].predictions
      for part in parts.dropFirst() {
        for i in z.indices { z[i] += part.predictions[i] }
      }
      for i in z.indices { z[i] += model.intercept }
      return (model.response(margins: z), parts[0].labels)
    }.0
  }

  /// Rows partitioned: the shards' rows and label statistics add up. A problem's description
  /// if the workers disagree on the number of features.
  private func addRows(_ shards: [ShardInfo]) -> String? {
    for info in shards {
      if let c = shards.first?.cols, c != info.cols {
        return "workers disagree on the number of features (\(c) vs \(info.cols))"
      }
      rows += info.rows
      shardRows.append(info.rows)
      labelSum += info.labelSum
      labelSquares += info.labelSquares
      dropped += info.dropped
      validationRows += info.validationRows
      loadSeconds = max(loadSeconds, info.loadSeconds)
    }
    return nil
  }

  /// Columns partitioned: every shard holds the same rows, so any one's row count and label
  /// statistics are the job's. A problem's description if the workers disagree on them.
  private func addColumns(_ shards: [ShardInfo]) -> String? {
    guard let first = shards.first else { return nil }
    for info in shards {
      if info.rows != first.rows || info.validationRows != first.validationRows
        || info.dropped != first.dropped
      {
        return
          "workers disagree on the rows (\(first.rows) vs \(info.rows) for training, \(first.validationRows) vs \(info.validationRows) held out)"
      }
      loadSeconds = max(loadSeconds, info.loadSeconds)
    }
    rows = first.rows
    labelSum = first.labelSum
    labelSquares = first.labelSquares
    dropped = first.dropped
    validationRows = first.validationRows
    return nil
  }

  /// Columns partitioned, an evaluation's first half in: adds the workers' parts of the
  /// margins in task-id order, `(z₁ + z₂) + …`, and sends the sum to every worker for the
  /// second half (each adds the intercept, as one machine's kernel does).
  private func sumMargins(_ workers: [Int], context: MasterContext) async {
    let expected = rows
    for w in workers {
      if case .margins(let z, _) = answers[w], z.count != expected {
        return fail(context: context, "worker \(w) sent \(z.count) margins for \(expected) rows")
      }
    }
    let total: [Double]
    do {
      (total, marginsMilliseconds) = try combine(workers, what: "the margins") { answer in
        guard case .margins(let z, let ms) = answer else { return nil }
        return (z.array, ms)
      } sum: { parts in
        var z = parts[0]
        z.withUnsafeMutableBufferPointer { z in
          for part in parts.dropFirst() {
            part.withUnsafeBufferPointer { p in
              for i in 0..<z.count { z[i] += p[i] }
            }
          }
        }
        return z
      }
    } catch {
      return fail(context: context, error.message)
    }
    margins = total
    await nextRound(context: context, newEpoch: false)
  }

  /// Columns partitioned: the gradient of `total` columns, each worker's columns in their
  /// place (written as its blocks arrived, or from its whole answer now).
  private func joinColumns(of workers: [Int], total d: Int) throws(TrainingError) -> [Double] {
    let tag = RoundTag(incarnation: incarnation, round: round)
    var gradient =
      columnGradient?.tag == tag
      ? columnGradient!.values : [Double](repeating: 0, count: d)
    columnGradient = nil
    for w in workers {
      let range = Partition.columns(of: w - 1, count: workers.count, total: d)
      let width: Int
      switch answers[w] {
      case .sums(let s, _):
        width = s.gradient.count
        if width == range.count {
          gradient.replaceSubrange(range, with: s.gradient)
        }
      case .blockedSums(_, let columns, _):
        width = columns
      default:
        width = -1
      }
      guard width == range.count else {
        throw TrainingError(
          code: .mismatch,
          message: "worker \(w) sent a gradient of \(width) columns, its share is \(range.count)")
      }
    }
    return gradient
  }

  /// Adds up the workers' answers in task-id order (`sum` gets them in that order), whatever
  /// order they came in (so the result does not depend on timing or failures), noting each
  /// worker's compute time and the slowest in `computeMilliseconds`. Throws if a worker
  /// answered `what` with another kind of message.
  private func combine<T>(
    _ workers: [Int], what: String, _ part: (WorkerMessage?) -> (T, Double)?,
    sum: ([T]) -> T
  ) throws(TrainingError) -> (T, [Int: Double]) {
    var parts: [T] = []
    var perWorker: [Int: Double] = [:]
    computeMilliseconds = 0
    for w in workers {
      guard let (value, ms) = part(answers[w]) else {
        throw TrainingError(
          code: .mismatch, message: "worker \(w) answered \(what) with another message")
      }
      perWorker[w] = ms
      computeMilliseconds = max(computeMilliseconds, ms)
      parts.append(value)
    }
    return (sum(parts), perWorker)
  }

  /// SSP: records a worker's answer if it is within the staleness bound, sends that worker
  /// the current round if it has not had it, and steps once every worker's newest sums are
  /// at most `staleness` rounds old.
  private func stale(
    _ worker: Int, tag: RoundTag, answer: WorkerMessage, request: EvaluationRequest,
    context: MasterContext
  ) async throws {
    guard tag.incarnation == incarnation, tag.round <= round else { return }
    busy.remove(worker)
    if case .sums(let s, let ms) = answer, tag.round > latest[worker]?.round ?? 0 {
      latest[worker] = (tag.round, s, ms)
    }
    if sentRound[worker] ?? 0 < round {
      busy.insert(worker)
      sentRound[worker] = round
      let bytes = MasterMessage.evaluate(job, SentParameters(request.parameters)).encoded(
        RoundTag(incarnation: incarnation, round: round), light: true)
      await context.notifyWorker(worker, message: bytes)
    }
    // One step at a time: answers that arrive while a step runs are recorded, and the loop
    // checks again when it ends.
    guard !stepping else { return }
    let workers = context.workers.sorted()
    // A step needs an answer to the current round (steps are paced by the fastest worker)
    // and every worker's newest sums at most `staleness` rounds old.
    func fresh() -> Bool {
      workers.contains { latest[$0]?.round == round }
        && workers.allSatisfy { w in latest[w].map { round - $0.round <= staleness } ?? false }
    }
    while case .evaluating = phase, steppedRound < round, fresh() {
      stepping = true
      steppedRound = round
      // Sum the newest contributions in task-id order.
      var parts: [GradientSums] = []
      var perWorker: [Int: Double] = [:]
      computeMilliseconds = 0
      for w in workers {
        let l = latest[w]!
        if l.round < round { staleUsed += 1 }
        perWorker[w] = l.ms
        computeMilliseconds = max(computeMilliseconds, l.ms)
        parts.append(l.sums)
      }
      report(workerMilliseconds: perWorker)
      driver?.deliver(GradientSums.sum(parts))
      await advance(context: context, increment: true)
      stepping = false
    }
  }

  /// Reports the result, after a validation round when rows are held out, and ends the job.
  private func finish(_ result: DistributedResult, context: MasterContext) async {
    var result = result
    result.dropped = dropped
    result.validationRows = validationRows
    if !result.trainingScored {
      phase = .scoringTraining(result)
      await nextRound(context: context, newEpoch: false)
      return
    }
    if job.validationSplit > 0 && validationRows > 0 {
      phase = .validating(result)
      await nextRound(context: context, newEpoch: false)
      return
    }
    phase = .done
    await addCheckpointFigures(to: &result)
    onResult(.success(result))
    try? await context.shutdownJob()
  }

  /// Waits for the checkpoints still being written, and adds their figures to `result`.
  private func addCheckpointFigures(to result: inout DistributedResult) async {
    guard let writer else { return }
    await writer.flush()
    result.checkpointsWritten = await writer.written
    result.checkpointsSuperseded = await writer.superseded
    result.checkpointMilliseconds = await writer.milliseconds
  }

  /// Solves the merged statistics into the result (nil after reporting a failure).
  private func finishExact(_ stats: GramStatistics, computeSeconds: Double, start: Date)
    -> DistributedResult?
  {
    let configuration = settings.configuration
    do {
      let (p, aliased) = try stats.solveReportingAliased(
        l2: configuration.regularization.l2, scales: configuration.regularization.scales)
      let objective =
        stats.meanHalfSquaredResidual(p) + configuration.regularization.penalty(p.weights)
      iteration = 0
      lastObjective = objective
      let model = LinearModel(kind: configuration.kind, parameters: p)
      return DistributedResult(
        model: model, objectives: [objective], iterations: 0, stopReason: .exactSolution,
        fitSeconds: computeSeconds + Date().timeIntervalSince(start), rows: rows,
        metrics: finalMetrics(objective, model: model), epochs: round, resumed: false,
        loadSeconds: loadSeconds, aliased: aliased)
    } catch {
      fail(context: nil, "\(error)")
      return nil
    }
  }

  public func exit() async {
    driver?.cancel()
    await writer?.flush()
  }

  private func report(workerMilliseconds: [Int: Double] = [:]) {
    let r = EpochReport(
      epoch: round, iteration: iteration, objective: lastObjective,
      gradientNorm: lastGradientNorm,
      epochMilliseconds: Date().timeIntervalSince(epochStart) * 1000,
      slowestWorkerMilliseconds: answerTimes.values.max() ?? 0,
      slowestComputeMilliseconds: computeMilliseconds, recoveries: recoveries + workersReplaced,
      stepMilliseconds: stepMilliseconds, staleContributions: staleUsed)
    settings.epochReport(r)
    settings.metrics?.record(r, workerMilliseconds: workerMilliseconds)
  }

  private func startDriver(_ optimizer: Optimizer, history: [Double]) {
    let d = OptimizerDriver()
    driver = d
    events = d.events.makeAsyncIterator()
    d.start(
      optimizer: optimizer, stop: settings.configuration.stop, history: history,
      progress: settings.progress)
  }

  /// Consumes driver events until the next evaluation (then advances the epoch) or the end.
  private func advance(context: MasterContext, increment: Bool) async {
    guard var iterator = events else { return }
    defer { events = iterator }
    while let event = await iterator.next(isolation: self) {
      switch event {
      case .stepped(let optimizer, let objectives, let gradientNorm):
        iteration = optimizer.iteration
        lastObjective = objectives.last
        lastGradientNorm = gradientNorm
        settings.metrics?.stepped(
          iteration: iteration, objective: lastObjective, gradientNorm: gradientNorm)
        stepsSinceCheckpoint += 1
        if stepsSinceCheckpoint >= settings.checkpointEvery {
          stepsSinceCheckpoint = 0
          if settings.checkpoints != nil {
            await checkpoint(optimizer, objectives)
            epochDue = true
          }
        }
      case .evaluate(let request):
        stepMilliseconds = answeredAt.map { Date().timeIntervalSince($0) * 1000 } ?? 0
        phase = .evaluating(request)
        margins = nil
        // The first evaluation after loading, and the first after a checkpoint, start a
        // new epoch; a restored master goes on in the epoch it entered.
        let newEpoch = increment && (epochDue || round == 0)
        epochDue = false
        await nextRound(context: context, newEpoch: newEpoch)
        return
      case .finished(let optimizer, let objectives, let reason, let seconds):
        let model = LinearModel(kind: settings.configuration.kind, parameters: optimizer.parameters)
        let result = DistributedResult(
          model: model, objectives: objectives, iterations: optimizer.iteration,
          stopReason: reason, fitSeconds: seconds, rows: rows,
          metrics: finalMetrics(objectives.last ?? .nan, model: model), epochs: round,
          resumed: recoveries > 0, loadSeconds: loadSeconds, staleContributions: staleUsed)
        if staleness > 0 {
          // The last objective was summed from several rounds' sums: evaluate the final
          // parameters once more with every worker (a BSP round) for the true objective.
          phase = .finalEvaluation(result)
          await nextRound(context: context, newEpoch: false)
          return
        }
        await finish(result, context: context)
        return
      case .failed(let message):
        fail(context: context, "the optimizer failed: \(message)")
        try? await context.shutdownJob()
        return
      }
    }
  }

  /// Metrics that follow from the final objective: its data term is the mean loss (MSE/2
  /// for squared loss); R² uses the label statistics the workers reported.
  private func finalMetrics(_ objective: Double, model: LinearModel) -> [String: Double] {
    let meanLoss = objective - settings.configuration.regularization.penalty(model.coefficients)
    if settings.configuration.kind == .logistic { return ["log_loss": meanLoss] }
    let n = Double(rows)
    let mse = 2 * meanLoss
    let variance = labelSquares / n - (labelSum / n) * (labelSum / n)
    return ["mse": mse, "rmse": mse.squareRoot(), "r2": 1 - mse / variance]
  }

  private func fail(context: MasterContext?, _ message: String) {
    phase = .done
    logger.error("\(message)")
    onResult(.failure(TrainingError(code: .solverFailed, message: message)))
  }

  /// Hands the state after this step to the background writer.
  private func checkpoint(_ optimizer: Optimizer, _ objectives: [Double]) async {
    guard let writer else { return }
    let c = MasterCheckpoint(
      epoch: epoch, round: round, optimizer: optimizer, objectives: objectives, rows: rows,
      labelSum: labelSum,
      labelSquares: labelSquares, dropped: dropped, validationRows: validationRows,
      dataFingerprint: job.dataFingerprint,
      configFingerprint: job.configFingerprint, shardRows: shardRows)
    await writer.submit(c)
  }

  /// Loads the newest valid checkpoint if one matches this job and either resuming was
  /// asked for or this master replaces one that died (it enters an epoch past the first).
  /// A replacement only takes a checkpoint of this job's run (epoch not past the current
  /// one); otherwise it starts over, which gives the same model (BSP is deterministic),
  /// only later.
  private func restore() async -> Bool {
    let replacement = epoch > 0
    guard settings.resume || replacement, let store = settings.checkpoints else { return false }
    do {
      guard let (checkpoint, warnings) = try await store.latest(name: "master") else {
        return false
      }
      for w in warnings { logger.warning("\(w)") }
      let c = try VectorSink.decode(MasterCheckpoint.self, from: checkpoint.data)
      guard c.dataFingerprint == job.dataFingerprint, c.configFingerprint == job.configFingerprint
      else {
        logger.warning(
          "ignoring checkpoint of epoch \(c.epoch): it is of other data or another configuration")
        return false
      }
      if !settings.resume && c.epoch > epoch {
        logger.warning(
          "ignoring checkpoint of epoch \(c.epoch): newer than this job's epoch \(epoch)")
        return false
      }
      rows = c.rows
      shardRows = c.shardRows ?? []
      round = c.round ?? 0
      labelSum = c.labelSum
      labelSquares = c.labelSquares
      dropped = c.dropped ?? 0
      validationRows = c.validationRows ?? 0
      iteration = c.optimizer.iteration
      lastObjective = c.objectives.last
      recoveries += 1
      settings.metrics?.recovered()
      logger.notice(
        "resuming from the checkpoint of epoch \(c.epoch), iteration \(c.optimizer.iteration)")
      startDriver(c.optimizer, history: c.objectives)
      return true
    } catch {
      logger.warning("cannot resume from a checkpoint: \(error)")
      return false
    }
  }
}

/// A worker of the parameter server: loads its shard once and answers the master's
/// evaluations with the fused kernel.
public actor ParameterServerWorker: WorkerTask {
  enum Loaded {
    case double(Matrix<Double>)
    case float(Matrix<Float>)
  }

  let taskID: Int
  let workerCount: Int
  /// The data file as this worker sees it (its own path on its own machine); nil to use the
  /// master's path.
  let localDataPath: String?
  /// Where the parsed shard is kept for a restarted worker; nil for no cache.
  let shardCache: ShardCache?
  let logger: Logger
  let onRefuse: @Sendable (String) -> Void
  var chaos: ChaosState?
  var x: Loaded?
  var y: [Double] = []
  /// The shard's rows held out for validation, if any.
  var validation: (x: Loaded, y: [Double])?
  var info: ShardInfo?
  var checkedFingerprint: String?
  /// The job of the last full message, which light ones name by its fingerprints.
  var job: JobDescription?
  var loading: Task<LoadedShard, any Error>?
  /// Testing: an extra delay before each evaluation (a straggler).
  let delay: Duration?
  /// A gradient that makes at least ``minimumGradientBlocks`` blocks of this many columns
  /// is computed and sent block by block, each sent while the next is computed (nil:
  /// always whole).
  let gradientBlockColumns: Int?

  /// Blocks of 128 Ki columns (1 MiB of doubles): a gradient of a million features goes in
  /// 8 messages, the last of which is all the sending left after the computation.
  public static let defaultGradientBlockColumns = 1 << 17

  /// Narrower gradients are computed whole, by the fused kernel: up to about 400,000
  /// columns it is faster than the pass by blocks (28 against 37 ms at 600 × 150,000, 32
  /// against 37 ms at 300 × 300,000; 48 against 41 ms at 200 × 500,000: `bench gradient`),
  /// and a smaller gradient has less sending to hide.
  public static let minimumGradientBlocks = 4

  init(
    taskID: Int, workerCount: Int, localDataPath: String?, shardCacheDirectory: String? = nil,
    logger: Logger, onRefuse: @escaping @Sendable (String) -> Void = { _ in },
    chaos: ChaosState? = nil, delay: Duration? = nil,
    gradientBlockColumns: Int? = ParameterServerWorker.defaultGradientBlockColumns
  ) {
    precondition(gradientBlockColumns.map { $0 >= 1 } ?? true, "blocks of at least one column")
    self.delay = delay
    self.gradientBlockColumns = gradientBlockColumns
    self.shardCache = shardCacheDirectory.map { ShardCache(directory: $0) }
    self.chaos = chaos
    self.taskID = taskID
    self.workerCount = workerCount
    self.localDataPath = localDataPath
    self.logger = logger
    self.onRefuse = onRefuse
  }

  public func enterEpoch(_ epoch: UInt64, context: WorkerContext) async {}

  public func notified(message: Payload, context: WorkerContext) async throws {
    var r = WireReader(message)
    let tag = try RoundTag.read(from: &r)
    if chaos?.shouldKill(task: taskID, epoch: tag.round) == true {
      logger.warning("chaos: killing worker \(taskID) at round \(tag.round)")
      await context.kill()
      return
    }
    if chaos?.shouldKill(task: taskID, epoch: tag.round, afterAcknowledging: true) == true {
      // Acknowledge (return), then die before answering. The delay only lets the
      // acknowledgement leave first, as it does when a process is killed at that point.
      logger.warning("chaos: worker \(taskID) acknowledges round \(tag.round) and dies unanswered")
      Task {
        try? await Task.sleep(for: .milliseconds(100))
        await context.kill()
      }
      return
    }
    try await handle(message) { await context.notifyMaster($0) }
  }

  /// Messages carrying the job at least this large are decoded off the pool (see `handle`).
  static let offloadBytes = 1 << 20

  /// Answers one master message through `notifyMaster` (the runtime-free core of
  /// `notified`).
  func handle(
    _ message: Payload, notifyMaster: @escaping @Sendable (Payload) async -> Void
  ) async throws {
    let tag: RoundTag
    let request: MasterMessage
    let known = job
    do {
      // A large message with the job in full (its fitted pipeline, JSON) is decoded off the
      // cooperative pool: decoding the job of a million features takes seconds, and with
      // every pool thread decoding at once no lease keep-alive could run, so every node lost
      // its slot and the job started over forever. A light one (parameters, a memory copy)
      // is decoded here: a thread hop for 8 MB of parameters cost more than the copy.
      (tag, request) =
        message.count >= Self.offloadBytes && MasterMessage.carriesJob(message)
        ? try await Offload.run { try MasterMessage.decodeTagged(message, known: known) }
        : try MasterMessage.decodeTagged(message, known: known)
    } catch is MasterMessage.JobUnknown {
      var r = WireReader(message)
      await notifyMaster(WorkerMessage.needJob.encoded(try RoundTag.read(from: &r)))
      return
    }
    let job = request.job
    let path = localDataPath ?? job.dataPath
    if checkedFingerprint != job.dataFingerprint {
      let mine = try await Offload.run { try Fingerprint.ofFile(path) }
      guard mine == job.dataFingerprint else {
        let why =
          "\(path): data fingerprint \(mine) differs from the job's \(job.dataFingerprint) (another file, or a changed one)"
        await notifyMaster(WorkerMessage.refused(why).encoded(tag))
        onRefuse(why)
        return
      }
      checkedFingerprint = mine
    }
    self.job = job
    if x == nil {
      // Parse off the cooperative pool (a long parse must not starve lease keep-alives);
      // a message that arrives meanwhile waits for the same load.
      let task =
        loading
        ?? Task { try await Offload.run { try self.loadShard(job, path: path) } }
      loading = task
      do {
        let loaded = try await task.value
        if x == nil {
          x = loaded.x
          y = loaded.y
          validation = loaded.validation
          info = loaded.info
        }
      } catch {
        loading = nil
        throw error
      }
    }
    switch request {
    case .load:
      await notifyMaster(WorkerMessage.loaded(info!).encoded(tag))
    case .evaluate(let job, let p):
      try checkWidth(p.weights.count, partition: .rows)
      if let delay { try await Task.sleep(for: delay) }
      let (x, y) = (self.x!, self.y)
      if let block = gradientBlockColumns,
        p.weights.count > (Self.minimumGradientBlocks - 1) * block
      {
        try await evaluateInBlocks(
          job: job, parameters: p, x: x, y: y, blockColumns: block, tag: tag,
          notifyMaster: notifyMaster)
        return
      }
      let (sums, ms) = try await Offload.run(priority: .compute) {
        let start = DispatchTime.now().uptimeNanoseconds
        let sums: GradientSums
        // The whole-gradient kernels take an array: a received vector is copied (this
        // path serves narrow problems; wide ones go by blocks, which read it in place).
        let weights = p.weights.array
        switch x {
        case .double(let m):
          sums = FusedGradient.compute(
            x: m, y: y, weights: weights, intercept: p.intercept, loss: job.loss,
            threads: job.threads)
        case .float(let m):
          sums = FusedGradient.compute(
            x: m, y: y, weights: weights, intercept: p.intercept, loss: job.loss,
            threads: job.threads)
        }
        return (sums, Double(DispatchTime.now().uptimeNanoseconds - start) / 1e6)
      }
      await notifyMaster(WorkerMessage.sums(sums, computeMilliseconds: ms).encoded(tag))
    case .evaluateRows(let job, let p, let rows):
      try checkWidth(p.weights.count, partition: .rows)
      if let delay { try await Task.sleep(for: delay) }
      let (x, y) = (self.x!, self.y)
      guard rows.allSatisfy({ (0..<y.count).contains($0) }) else {
        throw TrainingError(
          code: .mismatch, message: "a batch names rows beyond this shard's \(y.count)")
      }
      let (sums, ms) = try await Offload.run(priority: .compute) {
        let start = DispatchTime.now().uptimeNanoseconds
        let request = EvaluationRequest(parameters: p.parameters, batch: .indices(rows))
        let sums: GradientSums
        if rows.isEmpty {
          sums = GradientSums(cols: p.weights.count)
        } else {
          switch x {
          case .double(let m):
            sums = LocalGradientSource(x: m, labels: y, loss: job.loss, threads: 1)
              .gradientSums(request)
          case .float(let m):
            sums = LocalGradientSource(x: m, labels: y, loss: job.loss, threads: 1)
              .gradientSums(request)
          }
        }
        return (sums, Double(DispatchTime.now().uptimeNanoseconds - start) / 1e6)
      }
      await notifyMaster(WorkerMessage.sums(sums, computeMilliseconds: ms).encoded(tag))
    case .gram(let job):
      let (x, y) = (self.x!, self.y)
      let (stats, ms) = try await Offload.run(priority: .compute) {
        let start = DispatchTime.now().uptimeNanoseconds
        let stats: GramStatistics
        switch x {
        case .double(let m): stats = GramStatistics(x: m, y: y, threads: job.threads)
        case .float(let m): stats = GramStatistics(x: m, y: y, threads: job.threads)
        }
        return (stats, Double(DispatchTime.now().uptimeNanoseconds - start) / 1e6)
      }
      await notifyMaster(WorkerMessage.gram(stats, computeMilliseconds: ms).encoded(tag))
    case .margins(let job, let p):
      try checkWidth(p.weights.count, partition: .columns)
      let x = self.x!
      let (z, ms) = try await Offload.run(priority: .compute) {
        let start = DispatchTime.now().uptimeNanoseconds
        let z = Self.margins(of: x, at: p.weights, threads: job.threads)
        return (z, Double(DispatchTime.now().uptimeNanoseconds - start) / 1e6)
      }
      await notifyMaster(
        WorkerMessage.margins(SharedDoubles(z), computeMilliseconds: ms).encoded(tag))
    case .gradientAt(let job, let z, let b):
      let (x, y) = (self.x!, self.y)
      guard job.partition == .columns, z.count == y.count else {
        throw TrainingError(
          code: .mismatch, message: "\(z.count) margins for a shard of \(y.count) rows")
      }
      if let delay { try await Task.sleep(for: delay) }
      let columns = info!.cols
      // Any gradient of more than one block goes in blocks: unlike rows partitioned, where
      // narrow shards have the faster fused kernel, this pass is the block kernel anyway.
      if let block = gradientBlockColumns, columns > block {
        try await sendInBlocks(columns: columns, tag: tag, notifyMaster: notifyMaster) { onBlock in
          let (sums, r) = Self.residuals(margins: z, intercept: b, labels: y, loss: job.loss)
          Self.gradient(of: x, residuals: r, blockColumns: block, threads: job.threads, onBlock)
          return sums
        }
        return
      }
      let (sums, ms) = try await Offload.run(priority: .compute) {
        let start = DispatchTime.now().uptimeNanoseconds
        var (sums, r) = Self.residuals(margins: z, intercept: b, labels: y, loss: job.loss)
        let gradient = Mutex([Double](repeating: 0, count: columns))
        let threads = max(1, min(job.threads, columns))
        Self.gradient(
          of: x, residuals: r, blockColumns: max(1, (columns + threads - 1) / threads),
          threads: threads
        ) { range, values in
          gradient.withLock { $0.replaceSubrange(range, with: values) }
        }
        sums.gradient = gradient.withLock { $0 }
        return (sums, Double(DispatchTime.now().uptimeNanoseconds - start) / 1e6)
      }
      await notifyMaster(WorkerMessage.sums(sums, computeMilliseconds: ms).encoded(tag))
    case .scoreTraining(let job, let p):
      // The training rows, for the training metrics.
      try checkWidth(p.weights.count, partition: job.partition)
      let scores = try await Self.scores(of: x, job: job, parameters: p)
      await notifyMaster(WorkerMessage.scored(predictions: scores, labels: y).encoded(tag))
    case .validate(let job, let p):
      if job.partition == .columns { try checkWidth(p.weights.count, partition: .columns) }
      let validation = self.validation
      let scores = try await Self.scores(of: validation?.x, job: job, parameters: p)
      await notifyMaster(
        WorkerMessage.scored(predictions: scores, labels: validation?.y ?? []).encoded(tag))
    }
  }

  /// Rows `x` scored at `p` for the master (none without rows): their predictions, or with
  /// columns partitioned this worker's part of their margins, which the master adds up.
  private static func scores(of x: Loaded?, job: JobDescription, parameters p: SentParameters)
    async throws -> [Double]
  {
    guard let x else { return [] }
    if job.partition == .columns {
      return try await Offload.run(priority: .compute) {
        margins(of: x, at: p.weights, threads: job.threads)
      }
    }
    let model = LinearModel(
      kind: job.loss == .logistic ? .logistic : .linear, parameters: p.parameters)
    return try await Offload.run(priority: .compute) {
      switch x {
      case .double(let m): model.predict(m)
      case .float(let m): model.predict(m)
      }
    }
  }

  /// Computes the gradient in blocks of columns and sends each block as soon as it is done,
  /// then the other sums: the sending overlaps the computing, and all that is left after it
  /// is the last block's.
  private func evaluateInBlocks(
    job: JobDescription, parameters p: SentParameters, x: Loaded, y: [Double], blockColumns: Int,
    tag: RoundTag, notifyMaster: @escaping @Sendable (Payload) async -> Void
  ) async throws {
    try await sendInBlocks(columns: p.weights.count, tag: tag, notifyMaster: notifyMaster) {
      onBlock in
      // The weights are read where they arrived (a received message's bytes), not copied.
      p.weights.withUnsafeBytes { raw in
        let weights = UnalignedDoubles(raw)
        return switch x {
        case .double(let m):
          FusedGradient.computeInColumnBlocks(
            x: m, y: y, weights: weights, intercept: p.intercept, loss: job.loss,
            blockColumns: blockColumns, threads: job.threads, onBlock: onBlock)
        case .float(let m):
          FusedGradient.computeInColumnBlocks(
            x: m, y: y, weights: weights, intercept: p.intercept, loss: job.loss,
            blockColumns: blockColumns, threads: job.threads, onBlock: onBlock)
        }
      }
    }
  }

  /// Runs `compute` off the pool, sending each gradient block it hands to its `onBlock` as
  /// a `gradientBlock` of a gradient of `columns` entries, then the sums it returns and its
  /// time as `blockedSums`.
  private func sendInBlocks(
    columns: Int, tag: RoundTag, notifyMaster: @escaping @Sendable (Payload) async -> Void,
    compute:
      @escaping @Sendable (_ onBlock: @Sendable (Range<Int>, [Double]) -> Void) ->
      GradientSums
  ) async throws {
    let sends = BlockSends()
    // `notifyMaster` only starts a request, so the computing thread hands each block to a
    // task of its own and goes on.
    let send: @Sendable (Payload) -> Void = { payload in
      sends.add(Task { await notifyMaster(payload) })
    }
    let (sums, ms) = try await Offload.run(priority: .compute) {
      let start = DispatchTime.now().uptimeNanoseconds
      let sums = compute { range, values in
        send(
          WorkerMessage.gradientBlock(
            columns: columns, offset: range.lowerBound, values: SharedDoubles(values)
          )
          .encoded(tag))
      }
      return (sums, Double(DispatchTime.now().uptimeNanoseconds - start) / 1e6)
    }
    for task in sends.all { await task.value }
    await notifyMaster(
      WorkerMessage.blockedSums(sums, columns: columns, computeMilliseconds: ms).encoded(tag))
  }

  /// Throws unless the job's partition is `partition` and `count` weights fit the shard.
  private func checkWidth(_ count: Int, partition: Partition) throws {
    guard job?.partition == partition, count == info?.cols else {
      throw TrainingError(
        code: .mismatch,
        message:
          "a request for \(partition) partitioned data with \(count) weights, for a shard of \(info?.cols ?? 0) columns"
      )
    }
  }

  /// `x w` over the shard's columns (no intercept), the weights read in place.
  static func margins(of x: Loaded, at weights: SharedDoubles, threads: Int) -> [Double] {
    weights.withUnsafeBytes { raw in
      switch x {
      case .double(let m):
        FusedGradient.margins(x: m, weights: UnalignedDoubles(raw), threads: threads)
      case .float(let m):
        FusedGradient.margins(x: m, weights: UnalignedDoubles(raw), threads: threads)
      }
    }
  }

  /// The loss, intercept and row sums at margins `z + b`, and each row's derivative
  /// (``FusedGradient/residuals(margins:intercept:labels:loss:)``, the margins read in
  /// place): what every worker of a column partition computes alike.
  static func residuals(
    margins z: SharedDoubles, intercept b: Double, labels y: [Double], loss: RowLoss
  ) -> (sums: GradientSums, residuals: [Double]) {
    z.withUnsafeBytes { raw in
      FusedGradient.residuals(margins: UnalignedDoubles(raw), intercept: b, labels: y, loss: loss)
    }
  }

  /// `xᵀ r` in blocks of `blockColumns` columns, each handed to `onBlock`.
  static func gradient(
    of x: Loaded, residuals r: [Double], blockColumns: Int, threads: Int,
    _ onBlock: @Sendable (Range<Int>, [Double]) -> Void
  ) {
    switch x {
    case .double(let m):
      FusedGradient.gradientInColumnBlocks(
        x: m, residuals: r, blockColumns: blockColumns, threads: threads, onBlock: onBlock)
    case .float(let m):
      FusedGradient.gradientInColumnBlocks(
        x: m, residuals: r, blockColumns: blockColumns, threads: threads, onBlock: onBlock)
    }
  }

  /// A shard as loaded: the matrix, the labels and what the master is told.
  struct LoadedShard: Sendable {
    var x: Loaded
    var y: [Double]
    var validation: (x: Loaded, y: [Double])?
    var info: ShardInfo
  }

  private nonisolated func loadShard(_ job: JobDescription, path: String) throws -> LoadedShard {
    let shard = Shard(index: taskID - 1, count: workerCount)
    switch job.precision {
    case .float64: return try load(job, path: path, shard: shard, as: Double.self) { .double($0) }
    case .float32: return try load(job, path: path, shard: shard, as: Float.self) { .float($0) }
    }
  }

  /// Loads the shard from the shard cache if it holds a valid copy, else parses its byte
  /// range of the source (and caches the result).
  private nonisolated func load<T: BLASScalar>(
    _ job: JobDescription, path: String, shard: Shard, as: T.Type, wrap: (Matrix<T>) -> Loaded
  ) throws -> LoadedShard {
    var x: Matrix<T>?
    var y: [Double] = []
    var dropped = 0
    let start = DispatchTime.now().uptimeNanoseconds
    func elapsed() -> Double { Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9 }
    let key = shardCache.map { _ in ShardCache.key(job: job, path: path, shard: shard) }
    // Columns partitioned: every worker parses every row and keeps its own columns.
    let byColumns = job.partition == .columns
    let rowShard = byColumns ? Shard(index: 0, count: 1) : shard
    var parseSeconds: Double?
    if let cache = shardCache, let key {
      switch cache.load(shard: shard, key: key, as: T.self) {
      case .hit(let entry):
        x = entry.x
        y = entry.y
        dropped = entry.dropped
        parseSeconds = entry.parseSeconds
      case .missing:
        break
      case .invalid(let why):
        logger.warning("shard cache: \(why); parsing the shard again")
        cache.remove(shard: shard, key: key)
      }
    }
    let fromCache = parseSeconds != nil
    if !fromCache {
      let d = try DataPipeline.apply(
        job.pipeline, path: path, requireLabel: true, shard: rowShard, as: T.self)
      x =
        byColumns
        ? d.x.columns(Partition.columns(of: shard.index, count: shard.count, total: d.x.cols))
        : d.x
      y = d.y ?? []
      dropped = d.droppedRows
      parseSeconds = elapsed()
      if let cache = shardCache, let key {
        do {
          try cache.store(
            ShardCache.Entry(x: x!, y: y, parseSeconds: parseSeconds!, dropped: dropped),
            shard: shard, key: key)
        } catch {
          logger.warning("shard cache: cannot store shard \(shard.index + 1): \(error)")
        }
      }
    }
    let seconds = elapsed()
    let cols = x!.cols
    // Hold out the shard's validation rows: a seeded shuffle per shard, as one machine
    // shuffles its rows (the held-out rows depend on the seed and the number of workers).
    // With columns partitioned every worker holds out the rows one machine would.
    let (train, held) = LocalTraining.split(
      x: x.take()!, y: y, fraction: job.validationSplit,
      seed: byColumns ? job.seed : Self.validationSeed(job.seed, shard))
    let info = ShardInfo(
      rows: train.y.count, cols: cols, labelSum: train.y.reduce(0, +),
      labelSquares: train.y.reduce(0) { $0 + $1 * $1 }, loadSeconds: seconds,
      fromCache: fromCache, dropped: dropped, validationRows: held?.y.count ?? 0)
    let what =
      "worker \(taskID): shard \(shard.index + 1)/\(shard.count)\(byColumns ? " of the columns (\(cols))" : ""), \(y.count) rows (\(info.validationRows) held out)"
    if fromCache {
      logger.notice(
        "\(what), reloaded from the shard cache in \(String(format: "%.3f", seconds)) s (parsing took \(String(format: "%.3f", parseSeconds!)) s)"
      )
    } else {
      logger.info("\(what), parsed in \(String(format: "%.3f", parseSeconds!)) s")
    }
    return LoadedShard(
      x: wrap(train.x), y: train.y, validation: held.map { (wrap($0.x), $0.y) }, info: info)
  }

  /// The seed of a shard's validation shuffle: the job's seed mixed with the shard index.
  static func validationSeed(_ seed: UInt64, _ shard: Shard) -> UInt64 {
    seed ^ (UInt64(shard.index + 1) &* 0x9E37_79B9_7F4A_7C15)
  }
}

/// A worker's gradient arriving in blocks (`WorkerMessage.gradientBlock`) and its closing
/// sums (`blockedSums`), in any order. The blocks are kept as they arrived (read in place
/// from the received messages) and joined into one gradient only when asked.
struct GradientAssembly {
  let tag: RoundTag
  /// The gradient's length, once a block or the sums said it.
  var columns: Int?
  /// The blocks in, by offset.
  var blocks: [Int: SharedDoubles] = [:]
  var covered = 0
  var sums: (sums: GradientSums, columns: Int, ms: Double)?

  init(tag: RoundTag) { self.tag = tag }

  /// Takes a block; false if it does not fit: its columns differ from the other blocks'
  /// (or the sums'), it reaches past them, or it overlaps another block without being it.
  mutating func add(columns: Int, offset: Int, values: SharedDoubles) -> Bool {
    let range = offset..<(offset + values.count)
    guard columns == self.columns ?? columns, columns == sums?.columns ?? columns, offset >= 0,
      range.upperBound <= columns
    else { return false }
    self.columns = columns
    if let held = blocks[offset], held.count == values.count { return true }
    guard
      !blocks.contains(where: { (start, block) in
        (start..<(start + block.count)).overlaps(range)
      })
    else { return false }
    blocks[offset] = values
    covered += values.count
    return true
  }

  /// Records the closing sums; false if their columns differ from the blocks'.
  mutating func close(_ closing: GradientSums, columns: Int, ms: Double) -> Bool {
    guard blocks.isEmpty || columns == self.columns else { return false }
    sums = (closing, columns, ms)
    return true
  }

  /// The closing sums (their gradient empty) once they and every column are in.
  var closed: (sums: GradientSums, columns: Int, ms: Double)? {
    guard let sums, covered == sums.columns else { return nil }
    return sums
  }

  /// The gradient, its blocks joined (zeros where none has arrived).
  func gradient() -> [Double] {
    let n = sums?.columns ?? columns ?? 0
    var gradient = [Double](repeating: 0, count: n)
    gradient.withUnsafeMutableBytes { g in
      for (offset, block) in blocks where block.count > 0 {
        block.copyBytes(to: g.baseAddress! + 8 * offset)
      }
    }
    return gradient
  }

}

/// The workers' gradient blocks of one round summed over the workers as they arrive: once
/// every worker has sent the block at the same columns, those columns of the total are
/// `((g₁ + g₂) + g₃) + …` in task-id order, the adds ``GradientSums/sum(_:)`` makes, so the
/// total is bit for bit the sum of the whole gradients. Blocks that do not line up across
/// workers (workers splitting the columns differently) are left out, and the total stays
/// incomplete: the master then sums the whole gradients.
struct BlockTotal {
  let tag: RoundTag
  /// The workers, in task-id order.
  let workers: [Int]
  let columns: Int
  private(set) var gradient: [Double] = []
  /// Columns summed so far.
  private(set) var covered = 0
  /// Blocks waiting for the other workers' at the same offset: offset → worker → values.
  private var waiting: [Int: [Int: SharedDoubles]] = [:]
  /// Offsets whose block has been summed.
  private var summed: Set<Int> = []

  init(tag: RoundTag, workers: [Int], columns: Int) {
    precondition(workers.count > 1, "a total of one worker's blocks is its gradient")
    self.tag = tag
    self.workers = workers
    self.columns = columns
  }

  /// Whether every column has been summed.
  var isComplete: Bool { covered == columns }

  /// The total, left to the caller alone.
  mutating func takeGradient() -> [Double] {
    defer { gradient = [] }
    return gradient
  }

  /// Takes worker `worker`'s block at `offset` (one its assembly accepted: inside the
  /// columns, overlapping none of its other blocks); sums that block's columns once every
  /// worker's is in. A block that arrives again counts once.
  mutating func add(worker: Int, offset: Int, values: SharedDoubles) {
    guard workers.contains(worker), !summed.contains(offset),
      offset >= 0, offset + values.count <= columns
    else { return }
    var group = waiting[offset, default: [:]]
    if group[worker] == nil { group[worker] = values }
    guard group.count == workers.count else {
      waiting[offset] = group
      return
    }
    waiting[offset] = nil
    let blocks = workers.map { group[$0]! }
    let n = values.count
    guard blocks.allSatisfy({ $0.count == n }) else { return }
    if gradient.isEmpty { gradient = [Double](repeating: 0, count: columns) }
    gradient.withUnsafeMutableBufferPointer { g in
      let out = g.baseAddress! + offset
      blocks[0].withUnsafeBytes { first in
        blocks[1].withUnsafeBytes { second in
          for j in 0..<n {
            out[j] =
              first.loadUnaligned(fromByteOffset: 8 * j, as: Double.self)
              + second.loadUnaligned(fromByteOffset: 8 * j, as: Double.self)
          }
        }
      }
      for block in blocks.dropFirst(2) {
        block.withUnsafeBytes { next in
          for j in 0..<n { out[j] += next.loadUnaligned(fromByteOffset: 8 * j, as: Double.self) }
        }
      }
    }
    summed.insert(offset)
    covered += n
  }
}

/// The tasks sending a gradient's blocks, added from the computing thread.
final class BlockSends: Sendable {
  private let tasks = Mutex<[Task<Void, Never>]>([])

  func add(_ task: Task<Void, Never>) { tasks.withLock { $0.append(task) } }

  var all: [Task<Void, Never>] { tasks.withLock { $0 } }
}
