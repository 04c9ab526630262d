import ArgumentParser
import Foundation
import Logging
import TaskGraph
import TaskGraphEtcd
import TaskGraphTestSupport
import TaskGraphTraining

struct LaunchCommand: AsyncParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "launch",
    abstract: "Train with a master process and N worker processes on this machine.",
    discussion: """
      Starts a private etcd on a free loopback port (unless --etcd is given), a master \
      process and N worker processes talking gRPC, restarts any process that dies from a \
      signal, and ends when the master has written the model. --chaos kills processes with \
      SIGKILL at seeded epochs, for testing and demonstration.
      """
  )

  @OptionGroup var flags: TrainingFlags
  @Option(help: "Number of worker processes.") var workers: Int
  @Option(help: "An etcd endpoint to use instead of a private one.") var etcd: String?
  @Option(help: "Checkpoint directory (default: a temporary one).") var checkpointDir: String?
  @Option(help: "Checkpoint every this many optimizer steps.") var checkpointEvery = 10
  @OptionGroup var gradientBlocks: GradientBlockFlags
  @Flag(help: "Continue from the newest checkpoint in --checkpoint-dir.") var resume = false
  @Option(help: "Kill processes at seeded epochs: kill-workers=K,kill-master=M.")
  var chaos: String?
  @Option(help: "The last epoch a --chaos kill may land in.") var chaosLastEpoch: UInt64 = 40
  @Option(help: "Seconds a silent process keeps its task slot.") var leaseTtl: Double = 2
  @Option(help: "The master serves Prometheus metrics at http://HOST:PORT/metrics.")
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
    guard workers >= 1 else { throw ValidationError("--workers must be at least 1") }
  }

  func run() async throws {
    Log.setup(verbose: flags.verbose)
    let logger = Logger(label: "taskgraph.launch")
    try await CLIErrors.guarding {
      // Refused here rather than by every master process the supervisor would restart.
      _ = try flags.job(
        .distributed(workers: workers, staleness: staleness.rounds, partition: partition))
      try flags.checkPaths(checkpointDirectory: checkpointDir)
      let plan = try ChaosPlan.parse(
        chaos ?? "", workers: workers, seed: flags.seed, epochs: 2...max(2, chaosLastEpoch))
      var server: EtcdTestServer?
      if etcd == nil { server = try await EtcdTestServer.start() }
      defer { if let server { Task { await server.shutdown() } } }
      let endpoint = etcd ?? server!.endpoint
      let job = "train-\(getpid())-\(Int(Date().timeIntervalSince1970))"
      let dir =
        checkpointDir
        ?? FileManager.default.temporaryDirectory.appendingPathComponent(job).path
      let common = ["--etcd", endpoint, "--job", job, "--lease-ttl", "\(leaseTtl)"]
      var masterArgs = ["master"] + common + ["--workers", "\(workers)"]
      masterArgs += ["--checkpoint-dir", dir, "--checkpoint-every", "\(checkpointEvery)"]
      if resume { masterArgs.append("--resume") }
      if let metricsPort { masterArgs += ["--metrics-port", "\(metricsPort)"] }
      if !plan.kills.isEmpty { masterArgs.append("--publish-rounds") }
      masterArgs += ["--staleness", staleness.argument, "--partition", partition.rawValue]
      masterArgs += flags.arguments
      var workerArgs = ["worker"] + common + ["--checkpoint-dir", dir]
      workerArgs += gradientBlocks.arguments
      if flags.verbose { workerArgs.append("--verbose") }
      if !plan.kills.isEmpty && !flags.quiet {
        FileHandle.standardError.write(Data("chaos: \(plan)\n".utf8))
      }
      // Lay the job out before any process starts, so workers find it.
      let topology = StarTopology(taskCount: workers + 1)
      let coordinator = try await EtcdCoordinator.connect(EtcdConfiguration(endpoint: endpoint))
      try await Controller(
        coordinator: coordinator, job: job,
        spec: JobSpec(taskCount: topology.taskCount, topology: topology.description)
      ).create()
      await coordinator.close()
      let supervisor = Supervisor(executable: selfExecutable(), logger: logger)
      await supervisor.start("master", masterArgs)
      for w in 1...workers { await supervisor.start("worker \(w)", workerArgs) }
      let chaosTask = Task {
        try await runChaos(plan, endpoint: endpoint, job: job, supervisor: supervisor)
      }
      let outcome = await supervisor.waitForMaster()
      chaosTask.cancel()
      await supervisor.stopAll()
      if let server { await server.shutdown() }
      server = nil
      if case .failed(let why) = outcome {
        throw TrainingError(code: .solverFailed, message: why)
      }
      let restarts = await supervisor.restarts
      if !flags.quiet {
        print("processes restarted: \(restarts)")
      }
    }
  }

  /// Kills the planned process with SIGKILL as the master starts each planned round (its
  /// epoch in the chaos plan), which the master publishes in etcd, and reports how long the
  /// job took to move on: from the kill to the start of a later round.
  func runChaos(_ plan: ChaosPlan, endpoint: String, job: String, supervisor: Supervisor)
    async throws
  {
    guard !plan.kills.isEmpty else { return }
    let coordinator = try await EtcdCoordinator.connect(EtcdConfiguration(endpoint: endpoint))
    defer { Task { await coordinator.close() } }
    let layout = JobLayout(job: job)
    var pending = plan.kills
    var awaiting: [(name: String, round: UInt64, at: ContinuousClock.Instant)] = []
    var from: Int64 = 0
    while !pending.isEmpty || !awaiting.isEmpty {
      let (entries, revision) = try await coordinator.getPrefix(layout.record("round"))
      var current = entries.first.flatMap { UInt64($0.string) } ?? 0
      from = revision + 1
      for try await event in coordinator.watch(
        prefix: layout.record("round"), fromRevision: from)
      {
        guard case .put(let kv) = event, let e = UInt64(kv.string) else { continue }
        current = e
        let now = ContinuousClock.now
        for a in awaiting where current > a.round {
          let s = (now - a.at).seconds
          if !flags.quiet {
            FileHandle.standardError.write(
              Data(
                String(
                  format: "recovery: %@ killed at round %llu; round %llu began %.2f s later\n",
                  a.name, a.round, current, s
                ).utf8))
          }
        }
        awaiting.removeAll { current > $0.round }
        // One kill per process per round seen: when the rounds seen jump past two kills of
        // one process (the watch starts after the job, or round records coalesce), the
        // second would find that process already dead and be lost; it waits for a later
        // round, by which the restarted process has answered.
        var killed = Set<String>()
        for kill in pending where kill.epoch <= current {
          let name = kill.task == 0 ? "master" : "worker \((kill.task - 1) % workers + 1)"
          guard killed.insert(name).inserted else { continue }
          pending.remove(at: pending.firstIndex(of: kill)!)  // One of equal kills.
          await supervisor.kill(name, reason: "chaos at round \(current)")
          awaiting.append((name, current, ContinuousClock.now))
        }
        if pending.isEmpty && awaiting.isEmpty { break }
      }
    }
  }
}

/// The path of the running executable, to start more processes of it.
func selfExecutable() -> String {
  (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe"))
    ?? CommandLine.arguments[0]
}

/// Starts child processes, restarts those that die from a signal, and reports how the
/// master ended.
actor Supervisor {
  enum Outcome: Sendable {
    case finished
    case failed(String)
  }

  let executable: String
  let logger: Logger
  private var processes: [String: Process] = [:]
  private var arguments: [String: [String]] = [:]
  private var stopping = false
  private var outcome: Outcome?
  private var waiters: [CheckedContinuation<Outcome, Never>] = []
  private(set) var restarts = 0

  init(executable: String, logger: Logger) {
    self.executable = executable
    self.logger = logger
  }

  func start(_ name: String, _ args: [String]) {
    arguments[name] = args
    let p = Process()
    p.executableURL = URL(fileURLWithPath: executable)
    p.arguments = args
    p.terminationHandler = { [weak self] proc in
      let signalled = proc.terminationReason == .uncaughtSignal
      let status = proc.terminationStatus
      Task { await self?.ended(name, signalled: signalled, status: status) }
    }
    do {
      try p.run()
      processes[name] = p
    } catch {
      finish(.failed("cannot start \(name): \(error)"))
    }
  }

  private func ended(_ name: String, signalled: Bool, status: Int32) {
    processes[name] = nil
    guard !stopping else { return }
    if signalled {
      restarts += 1
      logger.warning("\(name) died from signal \(status); restarting it")
      start(name, arguments[name] ?? [])
    } else if name == "master" {
      finish(status == 0 ? .finished : .failed("the master exited with status \(status)"))
    } else if status != 0 {
      finish(.failed("\(name) exited with status \(status)"))
    }
  }

  private func finish(_ o: Outcome) {
    guard outcome == nil else { return }
    outcome = o
    for w in waiters { w.resume(returning: o) }
    waiters = []
  }

  func waitForMaster() async -> Outcome {
    if let outcome { return outcome }
    return await withCheckedContinuation { waiters.append($0) }
  }

  func kill(_ name: String, reason: String) {
    guard let p = processes[name] else { return }
    logger.warning("killing \(name) (pid \(p.processIdentifier)) with SIGKILL: \(reason)")
    Foundation.kill(p.processIdentifier, SIGKILL)
  }

  /// Lets the workers leave on their own (the job has ended), then kills any left over.
  func stopAll() async {
    stopping = true
    for (_, p) in processes where p.isRunning {
      Foundation.kill(p.processIdentifier, SIGKILL)
    }
  }
}
