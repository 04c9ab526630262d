import Foundation
import Logging
import TaskGraph
import TaskGraphData
import TaskGraphLinalg
import TaskGraphML

/// Epoch times of parameter-server training on a generated dense problem, split into the
/// slowest worker's compute and the rest (the framework's overhead).
public enum TrainingBenchmark {
  /// Figures of one configuration.
  public struct Row: Sendable, Codable {
    public var mode: String
    public var workers: Int
    public var rows: Int
    public var cols: Int
    public var epochs: Int
    /// Median milliseconds per epoch (from one epoch's answers to the next's).
    public var epoch_ms: Double
    /// Mean milliseconds per epoch: what a checkpoint's cost, spread over several epochs
    /// while it is written in the background, shows in.
    public var epoch_mean_ms: Double = 0
    /// Median of the slowest worker's compute per epoch.
    public var compute_ms: Double
    /// Median of the master's optimizer step per epoch.
    public var step_ms: Double
    /// epoch − compute − step: the framework's own time.
    public var overhead_ms: Double
    /// The checkpoints' cost per epoch, in percent of the median epoch and in milliseconds
    /// (0 without checkpoints): by how much more the mean epoch exceeds the median one with
    /// checkpoints than without. Each run is set against its own median, so a change in
    /// the machine's speed between the two runs cancels; a background write's cost lands
    /// in the few epochs it overlaps, which the mean sees and the median does not.
    public var checkpoint_cost_percent: Double = 0
    public var checkpoint_ms: Double

    /// Median milliseconds of one checkpoint's write in the background (encode, checksum,
    /// write, sync), and how many were written and superseded (0 without checkpoints).
    public var checkpoint_write_ms: Double = 0
    public var checkpoints_written = 0
    public var checkpoints_superseded = 0
    /// Slowest worker's shard load, seconds (parsing the source).
    public var load_s: Double

    /// The checkpoint cost of `withCheckpoints` against this run without.
    public mutating func setCheckpointCost(from withCheckpoints: Row) {
      let excess = withCheckpoints.epoch_mean_ms / withCheckpoints.epoch_ms
      let baseline = epoch_mean_ms / epoch_ms
      checkpoint_cost_percent = 100 * (excess - baseline)
      checkpoint_ms = checkpoint_cost_percent / 100 * epoch_ms
      checkpoint_write_ms = withCheckpoints.checkpoint_write_ms
      checkpoints_written = withCheckpoints.checkpoints_written
      checkpoints_superseded = withCheckpoints.checkpoints_superseded
    }
  }

  /// Writes a generated `rows × cols` problem (label first) as `.npy` at `path`.
  public static func generate(rows: Int, cols: Int, seed: UInt64, path: String) throws {
    var m = Matrix<Double>(rows: rows, cols: cols + 1)
    var rng = SplitMix64(seed: seed)
    let w = (0..<cols).map { _ in Double.random(in: -1...1, using: &rng) }
    m.withUnsafeMutableBufferPointer { p in
      for i in 0..<rows {
        var z = 0.0
        for j in 0..<cols {
          let v = Double.random(in: -1...1, using: &rng)
          p[i * (cols + 1) + j + 1] = v
          z += v * w[j]
        }
        p[i * (cols + 1)] = z + Double.random(in: -0.1...0.1, using: &rng)
      }
    }
    try NPY.write(m, to: path)
  }

  /// Runs `epochs` epochs of L-BFGS ridge with `workers` embedded workers over `path`.
  public static func embedded(
    path: String, rows: Int, cols: Int, workers: Int, epochs: Int, checkpointDirectory: String?,
    checkpointEvery: Int = 1,
    gradientBlockColumns: Int? = ParameterServerWorker.defaultGradientBlockColumns,
    partition: Partition = .rows
  ) async throws -> Row {
    try await run(
      mode: "embedded", path: path, rows: rows, cols: cols, workers: workers, epochs: epochs,
      checkpointDirectory: checkpointDirectory, checkpointEvery: checkpointEvery,
      gradientBlockColumns: gradientBlockColumns, partition: partition,
      coordinator: InMemoryCoordinator(),
      transport: InProcessTransport(), jobName: "bench")
  }

  /// Runs `epochs` epochs of L-BFGS ridge with `workers` workers over `path`, every task in
  /// this process on `coordinator` and `transport` (e.g. etcd and loopback gRPC).
  public static func run(
    mode: String, path: String, rows: Int, cols: Int, workers: Int, epochs: Int,
    checkpointDirectory: String?, checkpointEvery: Int = 1,
    gradientBlockColumns: Int? = ParameterServerWorker.defaultGradientBlockColumns,
    partition: Partition = .rows,
    coordinator: any Coordinator, transport: any Transport, jobName: String
  ) async throws -> Row {
    var options = PipelineOptions(label: PipelineOptions.unnamedLabel)
    options.missing = .drop
    let stop = StopCriteria([.maxIterations(epochs)])
    let config = TrainingConfiguration(
      kind: .ridge, regularization: Regularization(l2: 1e-6), solver: .lbfgs, stop: stop)
    var job = TrainingJob(dataPath: path, pipeline: options, configuration: config)
    job.precision = .float64
    var dist = DistributedOptions(workers: workers)
    dist.checkpointDirectory = checkpointDirectory
    dist.checkpointEvery = checkpointEvery
    dist.gradientBlockColumns = gradientBlockColumns
    dist.partition = partition
    let reports = ReportLog()
    let model = try await DistributedTraining.runInProcess(
      job, options: dist, coordinator: coordinator, transport: transport, jobName: jobName,
      epochReport: { reports.add($0) },
      logger: Logger(label: "bench", factory: { _ in SwiftLogNoOpLogHandler() }))
    let all = reports.all
    // Skip the loading epoch and the first evaluation; epoch time is the gap between
    // consecutive "all answered" moments.
    var epochMs: [Double] = []
    var computeMs: [Double] = []
    var restMs: [Double] = []
    var stepMs: [Double] = []
    for k in 2..<max(2, all.count) {
      let epoch = (all[k].answeredAt - all[k - 1].answeredAt) * 1000
      epochMs.append(epoch)
      computeMs.append(all[k].slowestComputeMilliseconds)
      stepMs.append(all[k].stepMilliseconds)
      restMs.append(epoch - all[k].slowestComputeMilliseconds - all[k].stepMilliseconds)
    }
    let e = median(epochMs)
    let c = median(computeMs)
    return Row(
      mode: mode, workers: workers, rows: rows, cols: cols, epochs: epochMs.count,
      epoch_ms: e, epoch_mean_ms: epochMs.reduce(0, +) / Double(max(1, epochMs.count)),
      compute_ms: c, step_ms: median(stepMs), overhead_ms: median(restMs),
      checkpoint_ms: 0,
      checkpoint_write_ms: model.training.checkpointWriteMilliseconds ?? 0,
      checkpoints_written: model.training.checkpointsWritten ?? 0,
      checkpoints_superseded: model.training.checkpointsSuperseded ?? 0,
      load_s: model.training.loadSeconds)
  }

  static func median(_ v: [Double]) -> Double {
    guard !v.isEmpty else { return .nan }
    let s = v.sorted()
    return s[s.count / 2]
  }
}

final class ReportLog: @unchecked Sendable {
  // Unchecked Sendable: `items` is only touched under `lock`.
  private let lock = NSLock()
  private var items: [EpochReport] = []
  func add(_ r: EpochReport) {
    lock.lock()
    items.append(r)
    lock.unlock()
  }
  var all: [EpochReport] {
    lock.lock()
    defer { lock.unlock() }
    return items
  }
}
