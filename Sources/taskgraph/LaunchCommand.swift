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
      signal (with backoff, at most --max-restarts times in all), and ends when the master \
      has written the model. --chaos kills processes with SIGKILL at seeded epochs, for \
      testing and demonstration.
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
  @Option(
    parsing: .unconditional,
    help: ArgumentHelp(
      "Give up after restarting processes this many times in all.",
      discussion: """
        A process that dies from a signal is restarted, the k-th time in a row after \
        min(0.1·2^(k−1), 5) seconds; a process that stayed up for 10 seconds before it died \
        starts a new row (its next restart waits 0.1 s). When a restart would be one more \
        than this, launch stops every process and exits with status 1, naming the process \
        and how it died.
        """))
  var maxRestarts = RestartPolicy.defaults.maxRestarts

  func validate() throws {
    guard workers >= 1 else { throw ValidationError("--workers must be at least 1") }
    guard maxRestarts >= 0 else {
      throw ValidationError("--max-restarts must be ≥ 0, is \(maxRestarts)")
    }
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
      var policy = RestartPolicy.defaults
      policy.maxRestarts = maxRestarts
      let supervisor = Supervisor(executable: selfExecutable(), policy: policy, logger: logger)
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
      switch outcome {
      case .finished: break
      case .failed(let why): throw TrainingError(code: .solverFailed, message: why)
      case .gaveUp(let why): throw SupervisorError(code: .gaveUp, message: why)
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
          // A process waiting out its restart backoff is not running: the kill waits for a
          // later round rather than being lost.
          guard await supervisor.kill(name, reason: "chaos at round \(current)") else { continue }
          pending.remove(at: pending.firstIndex(of: kill)!)  // One of equal kills.
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

/// When a supervised process that died from a signal is started again, and when the job
/// gives up: a pure value driven by the supervisor, which measures how long the process was
/// up, so tests drive it without processes or clocks.
///
/// The k-th restart in a row of one process waits `backoff.delay(attempt: k)` (0.1 s
/// doubling up to 5 s by default); a process that stayed up for `stableAfter` before it died
/// starts a new row. Restarts are counted over the whole job: the death that would make
/// them more than `maxRestarts` gives up instead.
struct RestartPolicy: Sendable, Hashable {
  /// What to do about a death.
  enum Directive: Sendable, Hashable {
    /// Start the process again after `delay`.
    case restart(after: Duration)
    /// Stop the job; `reason` is one line naming the process, how it died and how often.
    case giveUp(reason: String)
  }

  /// Restarts of all processes of the job together, at most.
  var maxRestarts: Int
  /// The delay before the k-th restart in a row of one process.
  var backoff: Backoff
  /// How long a process must have been up for its next restart to wait the least again.
  var stableAfter: Duration

  /// The restarts granted so far, over all processes.
  private(set) var restarts = 0
  /// Per process: restarts in a row (since it last stayed up `stableAfter`), and deaths
  /// from a signal in the whole job.
  private var inARow: [String: Int] = [:]
  private var deaths: [String: Int] = [:]

  /// At most 10 restarts; 0.1 s doubling to 5 s; a new row after 10 s up.
  static var defaults: RestartPolicy {
    RestartPolicy(
      maxRestarts: 10,
      backoff: Backoff(initial: .milliseconds(100), multiplier: 2, maximum: .seconds(5)),
      stableAfter: .seconds(10))
  }

  /// Process `name` died from signal `signal` after being up for `upFor`.
  mutating func died(_ name: String, signal: Int32, upFor: Duration) -> Directive {
    deaths[name, default: 0] += 1
    if upFor >= stableAfter { inARow[name] = 0 }
    guard restarts < maxRestarts else {
      let who = name == "master" ? "the master" : name
      let count = deaths[name]!
      let times = count == 1 ? "once" : count == 2 ? "twice" : "\(count) times"
      let others = restarts - (count - 1)
      let rest = others > 0 ? " (other processes were restarted \(others) times)" : ""
      return .giveUp(
        reason:
          "\(who) died from signal \(signal) \(times)\(rest); giving up after --max-restarts \(maxRestarts)"
      )
    }
    restarts += 1
    let k = inARow[name, default: 0] + 1
    inARow[name] = k
    return .restart(after: backoff.delay(attempt: k))
  }
}

/// Why `launch` stopped its job.
struct SupervisorError: Error, CustomStringConvertible, Sendable {
  struct Code: Hashable, Sendable, CustomStringConvertible {
    private enum Wrapped: Hashable, Sendable { case gaveUp }
    private let wrapped: Wrapped
    private init(_ wrapped: Wrapped) { self.wrapped = wrapped }
    /// Processes died more often than `--max-restarts` allows.
    static let gaveUp = Code(.gaveUp)
    var description: String { String(describing: wrapped) }
  }

  var code: Code
  /// One line: which process died, how and how often.
  var message: String
  var description: String { message }
}

/// Starts child processes, restarts those that die from a signal as its `RestartPolicy`
/// directs, and reports how the master ended (or that the job gave up).
actor Supervisor {
  enum Outcome: Sendable {
    case finished
    case failed(String)
    /// A process died from a signal once more than the policy allows.
    case gaveUp(String)
  }

  let executable: String
  let logger: Logger
  private var policy: RestartPolicy
  private var processes: [String: (process: Process, started: ContinuousClock.Instant)] = [:]
  private var arguments: [String: [String]] = [:]
  /// Restarts waiting out their backoff; cancelled (and never started) once stopping.
  private var pending: [String: Task<Void, Never>] = [:]
  private var stopping = false
  private var outcome: Outcome?
  private var waiters: [CheckedContinuation<Outcome, Never>] = []
  private var restartWaiters: [(count: Int, waiter: CheckedContinuation<Void, Never>)] = []
  /// Processes started so far, restarts included.
  private(set) var started = 0

  init(executable: String, policy: RestartPolicy = .defaults, logger: Logger) {
    self.executable = executable
    self.policy = policy
    self.logger = logger
  }

  /// The restarts granted so far (those still waiting out their backoff included).
  var restarts: Int { policy.restarts }

  func start(_ name: String, _ args: [String]) {
    guard !stopping else { return }
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
      processes[name] = (p, ContinuousClock.now)
      started += 1
    } catch {
      finish(.failed("cannot start \(name): \(error)"))
    }
  }

  private func ended(_ name: String, signalled: Bool, status: Int32) {
    let started = processes.removeValue(forKey: name)?.started
    guard !stopping else { return }
    if signalled {
      let up = started.map { ContinuousClock.now - $0 } ?? .zero
      switch policy.died(name, signal: status, upFor: up) {
      case .restart(let delay):
        logger.warning(
          "\(name) died from signal \(status); restarting it in \(String(format: "%.2f", delay.seconds)) s (restart \(policy.restarts) of at most \(policy.maxRestarts))"
        )
        pending[name] = Task {
          // The backoff itself; cancelled by `stopAll`, after which `restart` starts nothing.
          try? await Task.sleep(for: delay)
          self.restart(name)
        }
        let granted = policy.restarts
        for w in restartWaiters where w.count <= granted { w.waiter.resume() }
        restartWaiters.removeAll { $0.count <= granted }
      case .giveUp(let reason):
        finish(.gaveUp(reason))
      }
    } else if name == "master" {
      finish(status == 0 ? .finished : .failed("the master exited with status \(status)"))
    } else if status != 0 {
      finish(.failed("\(name) exited with status \(status)"))
    }
  }

  private func restart(_ name: String) {
    pending[name] = nil
    start(name, arguments[name] ?? [])
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

  /// Returns once `count` restarts have been granted (the last may still be waiting out
  /// its backoff).
  func waitForRestarts(_ count: Int) async {
    if policy.restarts >= count { return }
    await withCheckedContinuation { restartWaiters.append((count, $0)) }
  }

  /// Kills `name` with SIGKILL, if it is running (not between a death and its restart).
  /// Kills process `name` with SIGKILL; false if it is not running (it died and waits for
  /// its restart).
  @discardableResult
  func kill(_ name: String, reason: String) -> Bool {
    guard let p = processes[name]?.process, p.isRunning else { return false }
    logger.warning("killing \(name) (pid \(p.processIdentifier)) with SIGKILL: \(reason)")
    Foundation.kill(p.processIdentifier, SIGKILL)
    return true
  }

  /// Ends the job's processes: restarts still waiting out their backoff never start, and
  /// every process still running is killed (the job has ended, so nothing of theirs is
  /// lost).
  func stopAll() async {
    stopping = true
    let backoffs = Array(pending.values)
    pending = [:]
    for task in backoffs { task.cancel() }
    // Each ends at once (its sleep is cancelled) without starting anything: once this
    // returns, no process of the job starts again.
    for task in backoffs { await task.value }
    for (_, entry) in processes where entry.process.isRunning {
      Foundation.kill(entry.process.processIdentifier, SIGKILL)
    }
  }
}
