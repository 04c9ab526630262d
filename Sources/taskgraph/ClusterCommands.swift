import ArgumentParser
import Foundation
import Logging
import TaskGraph
import TaskGraphEtcd
import TaskGraphGRPC
import TaskGraphML
import TaskGraphTestSupport
import TaskGraphTraining

/// Where a process finds its job: an etcd endpoint and a job name.
struct ClusterOptions: ParsableArguments {
  @Option(help: "The etcd endpoint, e.g. http://10.0.0.5:2379.") var etcd: String
  @Option(help: "The job's name (the same for the master and every worker).") var job = "train"
  @Option(help: "Seconds a silent process keeps its task slot.") var leaseTtl: Double = 2
  @Option(help: "The address other processes reach this one at.") var host = "127.0.0.1"

  func node(slot: NodeConfiguration.Slot, standby: Bool) -> NodeConfiguration {
    NodeConfiguration(
      job: job, host: host, leaseTTL: .milliseconds(Int(leaseTtl * 1000)), slot: slot,
      standby: standby)
  }
}

/// Runs `body` with a coordinator on the etcd at `endpoint` and a gRPC transport, closing
/// both afterwards, however `body` ends.
func withCluster<R: Sendable>(
  etcd endpoint: String,
  _ body: (EtcdCoordinator, GRPCTransport) async throws -> R
) async throws -> R {
  let coordinator = try await EtcdCoordinator.connect(EtcdConfiguration(endpoint: endpoint))
  let transport = GRPCTransport()
  return try await withCleanup {
    try await body(coordinator, transport)
  } cleanup: {
    await transport.close()
    await coordinator.close()
  }
}

/// Runs `body`, then `cleanup` however `body` ended (returned or threw): a `defer` that
/// can await.
func withCleanup<R>(_ body: () async throws -> R, cleanup: () async -> Void) async throws -> R {
  let result: Result<R, any Error>
  do {
    result = .success(try await body())
  } catch {
    result = .failure(error)
  }
  await cleanup()
  return try result.get()
}

struct MasterCommand: AsyncParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "master",
    abstract: "Run the parameter-server master of a cluster job (task 0).",
    discussion: """
      Creates the job in etcd if it does not exist, claims task 0 (or waits as a hot \
      standby while another master holds it), steps the optimizer once per epoch, writes \
      checkpoints, and writes the model file when the job ends. A master that replaces a \
      dead one resumes from the newest valid checkpoint.
      """
  )

  @OptionGroup var cluster: ClusterOptions
  @OptionGroup var flags: TrainingFlags
  @Option(help: "Number of worker tasks.") var workers: Int
  @Option(help: "Checkpoint directory (a shared filesystem on a cluster).") var checkpointDir:
    String?
  @Option(help: "Checkpoint every this many optimizer steps.") var checkpointEvery = 10
  @Flag(help: "Continue from the newest checkpoint in --checkpoint-dir.") var resume = false
  @Option(help: "Serve Prometheus metrics at http://HOST:PORT/metrics (0: a free port).")
  var metricsPort: Int?
  @Flag(help: .hidden) var publishRounds = false
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

  func run() async throws {
    Log.setup(verbose: flags.verbose)
    let logger = Logger(label: "taskgraph.master")
    try await CLIErrors.guarding {
      var job = try flags.job(
        .distributed(workers: workers, staleness: staleness.rounds, partition: partition))
      try flags.checkPaths(checkpointDirectory: checkpointDir)
      job.configuration = DistributedTraining.iterative(job.configuration)
      let plan = try DistributedTraining.plan(job, partition: partition)
      var settings = MasterSettings(configuration: plan.configuration)
      settings.checkpointEvery = checkpointEvery
      settings.resume = resume
      if let dir = checkpointDir {
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        settings.checkpoints = try DirectoryCheckpointStore(directory: dir)
      }
      let quiet = flags.quiet
      settings.epochReport = { r in
        if !quiet { FileHandle.standardError.write(Data((r.line + "\n").utf8)) }
      }
      let endpoint = try await startMetrics(port: metricsPort)
      settings.metrics = endpoint?.1
      settings.publishRounds = publishRounds
      settings.staleness = staleness.rounds
      defer { if let e = endpoint?.0 { Task { await e.close() } } }
      let box = ResultBox()
      let topology = StarTopology(taskCount: workers + 1)
      let frozen = settings
      try await withCluster(etcd: cluster.etcd) { coordinator, transport in
        let controller = Controller(
          coordinator: coordinator, job: cluster.job,
          spec: JobSpec(taskCount: topology.taskCount, topology: topology.description))
        do {
          try await controller.create()
        } catch let e as CoordinatorError where e.code == .jobExists {
          logger.info("job \(cluster.job) exists; joining it")
        }
        let node = Node(
          configuration: cluster.node(slot: .exactly(0), standby: true),
          coordinator: coordinator, transport: transport, topology: topology, logger: logger,
          builder: MasterWorker.builder(
            master: {
              DistributedTraining.master(plan: plan, settings: frozen, logger: logger) {
                box.set($0)
              }
            },
            worker: { id in
              throw TrainingError(
                code: .invalidConfiguration, message: "the master process serves only task 0")
            }))
        _ = try await node.run()
      }
      guard let result = box.result else {
        logger.notice("the job ended without this process producing the model")
        return
      }
      let file = try DistributedTraining.modelFile(
        try result.get(), plan: plan, job: job, workers: workers)
      try flags.finish(file)
    }
  }
}

struct WorkerCommand: AsyncParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "worker",
    abstract: "Run a parameter-server worker of a cluster job.",
    discussion: """
      Claims a free worker slot (or waits as a hot standby), loads its shard of the data \
      (byte ranges of the file: it never parses the whole file) and answers the master's \
      evaluations. A worker whose data differs from the master's is refused.
      """
  )

  @OptionGroup var cluster: ClusterOptions
  @Option(help: "The data file on this machine (default: the master's path).") var data: String?
  @Option(
    help: """
      Checkpoint directory: the parsed shard is cached in its shards/ folder, so a restarted \
      worker reloads it instead of parsing the data again.
      """)
  var checkpointDir: String?
  @OptionGroup var gradientBlocks: GradientBlockFlags
  @Flag(help: "Log the runtime's events.") var verbose = false

  func validate() throws {
  }

  func run() async throws {
    Log.setup(verbose: verbose)
    let logger = Logger(label: "taskgraph.worker")
    try await CLIErrors.guarding {
      let refusal = Refusal()
      try await withCluster(etcd: cluster.etcd) { coordinator, transport in
        let layout = JobLayout(job: cluster.job)
        guard let specKV = try await coordinator.get(layout.spec) else {
          throw CoordinatorError(
            code: .jobNotFound, message: "job \(cluster.job) not found in etcd at \(cluster.etcd)")
        }
        let spec = try JobSpec(bytes: specKV.value)
        let workers = spec.taskCount - 1
        let topology = StarTopology(taskCount: spec.taskCount)
        let local = data
        let checkpoints = checkpointDir
        let blocks = gradientBlocks.columns
        let node = Node(
          configuration: cluster.node(slot: .among(Array(1...max(1, workers))), standby: true),
          coordinator: coordinator,
          transport: transport, topology: topology, logger: logger,
          builder: MasterWorker.builder(
            master: {
              throw TrainingError(
                code: .invalidConfiguration, message: "a worker process does not serve task 0")
            },
            worker: { id in
              DistributedTraining.worker(
                taskID: id, workers: workers, localDataPath: local,
                checkpointDirectory: checkpoints, gradientBlockColumns: blocks, logger: logger,
                onRefuse: { refusal.set($0) })
            }))
        let run = Task { try await node.run() }
        // A refused worker leaves: its slot frees for a worker with the right data.
        let stop = Task {
          await refusal.wait()
          run.cancel()
        }
        do {
          _ = try await run.value
        } catch is CancellationError {
        } catch {
          stop.cancel()
          if refusal.reason == nil { throw error }
        }
        stop.cancel()
      }
      if let why = refusal.reason {
        throw TrainingError(code: .mismatch, message: "refused: \(why)")
      }
    }
  }
}

/// A worker's refusal, signalled once.
final class Refusal: @unchecked Sendable {
  // Unchecked Sendable: `why` and `waiters` are only touched under `lock`.
  private let lock = NSLock()
  private var why: String?
  private var waiters: [CheckedContinuation<Void, Never>] = []

  func set(_ s: String) {
    lock.lock()
    let first = why == nil
    if first { why = s }
    let w = waiters
    waiters = []
    lock.unlock()
    if first { for c in w { c.resume() } }
  }

  var reason: String? {
    lock.lock()
    defer { lock.unlock() }
    return why
  }

  func wait() async {
    await withCheckedContinuation { c in
      lock.lock()
      if why != nil {
        lock.unlock()
        c.resume()
      } else {
        waiters.append(c)
        lock.unlock()
      }
    }
  }
}

/// Starts the Prometheus endpoint when a port is given, and says where it listens.
func startMetrics(port: Int?) async throws -> (MetricsEndpoint, TrainingMetrics)? {
  guard let port else { return nil }
  let (endpoint, metrics) = try await MetricsEndpoint.forTraining(port: port)
  FileHandle.standardError.write(
    Data("metrics at http://0.0.0.0:\(endpoint.port)/metrics\n".utf8))
  return (endpoint, metrics)
}
