import Foundation
import TaskGraph
import TaskGraphEtcd
import TaskGraphGRPC
import TaskGraphTestSupport

/// Exit statuses of a task process.
enum TaskExit {
  /// The job ended.
  static let finished: Int32 = 0
  /// The node lost its lease (e.g. etcd was unreachable for longer than the TTL).
  static let leaseLost: Int32 = 3
  /// The task killed its node.
  static let killed: Int32 = 4
}

/// The distributed roles: each runs in its own process over etcd and gRPC.
enum ProcessRoles {
  /// The controller: creates the job, waits for it to end (riding out etcd restarts) and
  /// prints the master's aggregates.
  static func controller(etcd: String, job: String, tasks: Int) async throws {
    let coordinator = try await EtcdCoordinator.connect(EtcdConfiguration(endpoint: etcd))
    do {
      let topology = Regression.topology(tasks: tasks)
      let controller = Controller(
        coordinator: coordinator, job: job,
        spec: JobSpec(taskCount: tasks, topology: topology.description))
      try await controller.create()
      try await retrying("waiting for job \(job)") {
        try await controller.waitForCompletion()
      }
      let series = try await retrying("reading the records of job \(job)") {
        try await Regression.aggregates(controller)
      }
      Regression.print(series)
    } catch {
      await coordinator.close()
      throw error
    }
    await coordinator.close()
  }

  /// A task process: claims a slot (or waits as a hot standby) and serves it until the job
  /// ends. Returns the process's exit status.
  static func task(
    etcd: String, job: String, tasks: Int, epochs: UInt64, leaseTTL: Duration, slot: Int?,
    standby: Bool, injector: FaultInjector?
  ) async throws -> Int32 {
    let coordinator = try await EtcdCoordinator.connect(EtcdConfiguration(endpoint: etcd))
    let transport = GRPCTransport()
    // On loopback a replacement is reachable as soon as it has claimed the slot: retry
    // requests to a dead peer every 10–200 ms rather than backing off to 1 s.
    let retry = RetryPolicy(
      backoff: Backoff(initial: .milliseconds(10), multiplier: 2, maximum: .milliseconds(200)),
      attemptTimeout: .seconds(5))
    let configuration = NodeConfiguration(
      job: job, leaseTTL: leaseTTL, retry: retry, slot: slot.map { .exactly($0) } ?? .any,
      standby: standby)
    let outcome: NodeOutcome
    do {
      outcome = try await Regression.runTask(
        coordinator: coordinator, transport: transport, job: job, tasks: tasks, epochs: epochs,
        configuration: configuration, faultHook: injector?.hook)
    } catch {
      await transport.close()
      await coordinator.close()
      throw error
    }
    await transport.close()
    await coordinator.close()
    switch outcome {
    case .finished: return TaskExit.finished
    case .leaseLost(let id):
      FileHandle.standardError.write(Data("task \(id): lease lost; exiting\n".utf8))
      return TaskExit.leaseLost
    case .killed: return TaskExit.killed
    }
  }

  /// Runs `body`, retrying for up to a minute while etcd is unreachable (e.g. restarting).
  static func retrying<T: Sendable>(_ what: String, _ body: () async throws -> T) async throws
    -> T
  {
    let deadline = ContinuousClock.now + .seconds(60)
    while true {
      do {
        return try await body()
      } catch {
        guard ContinuousClock.now < deadline, !Task.isCancelled else { throw error }
        FileHandle.standardError.write(Data("\(what): \(error); retrying\n".utf8))
        try await Task.sleep(for: .milliseconds(250))
      }
    }
  }
}

/// The path of the running executable, to start more processes of it.
func selfExecutable() -> String {
  (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe"))
    ?? CommandLine.arguments[0]
}

/// `--launch`: a private etcd, a controller process and task processes on this machine.
struct Launcher {
  var tasks: Int
  var epochs: UInt64
  var standbys: Int
  var restart: Bool
  var leaseTTL: Double
  var seed: UInt64
  var failures: [String]
  var plan: FaultPlan
  var timeout: Duration

  /// Runs the job; returns when the controller has printed the series.
  func run() async throws {
    let server = try await EtcdTestServer.start()
    let markers = FileManager.default.temporaryDirectory
      .appendingPathComponent("regression-faults-\(UUID().uuidString)").path
    try FileManager.default.createDirectory(atPath: markers, withIntermediateDirectories: true)
    let supervisor = ProcessSupervisor(executable: selfExecutable(), restart: restart)
    do {
      try await launch(server: server, markers: markers, supervisor: supervisor)
    } catch {
      await supervisor.stopAll()
      await server.shutdown()
      try? FileManager.default.removeItem(atPath: markers)
      throw error
    }
    await server.shutdown()
    try? FileManager.default.removeItem(atPath: markers)
  }

  private func launch(server: EtcdTestServer, markers: String, supervisor: ProcessSupervisor)
    async throws
  {
    let endpoint = server.endpoint
    let job = "regression-\(getpid())"
    let common = ["--etcd", endpoint, "--job", job, "--tasks", "\(tasks)", "--epochs", "\(epochs)"]
    var taskArguments = common + ["--role", "task", "--standby", "--lease-ttl", "\(leaseTTL)"]
    taskArguments += ["--seed", "\(seed)", "--fault-dir", markers]
    for failure in failures { taskArguments += ["--fail", failure] }

    let coordinator = try await EtcdCoordinator.connect(EtcdConfiguration(endpoint: endpoint))
    let layout = JobLayout(job: job)
    await supervisor.start("controller", common + ["--role", "controller"])
    // Tasks fail fast on a missing job: start them once the controller has laid it out.
    try await waitForSpec(coordinator: coordinator, layout: layout, supervisor: supervisor)
    for t in 0..<(tasks + standbys) { await supervisor.start("task process \(t)", taskArguments) }

    let monitor = Task {
      await monitorEpochs(
        coordinator: coordinator, layout: layout, server: server, supervisor: supervisor)
    }
    let timer = Task {
      try await Task.sleep(for: timeout)
      await supervisor.fail("the job did not finish within \(timeout)")
    }
    let outcome = await supervisor.waitForController()
    timer.cancel()
    monitor.cancel()
    // The job has ended: every task process leaves on its own; kill stragglers after 10 s.
    await supervisor.waitForAll(grace: .seconds(10))
    await coordinator.close()
    let restarts = await supervisor.restarts
    print("processes restarted: \(restarts)")
    if case .failed(let why) = outcome { throw LaunchError(message: why) }
  }

  /// Polls for the job's spec (the controller writes it last) while the controller lives.
  private func waitForSpec(
    coordinator: EtcdCoordinator, layout: JobLayout, supervisor: ProcessSupervisor
  ) async throws {
    let deadline = ContinuousClock.now + .seconds(30)
    while try await coordinator.get(layout.spec) == nil {
      if let why = await supervisor.failure {
        throw LaunchError(message: why)
      }
      guard ContinuousClock.now < deadline else {
        throw LaunchError(message: "the controller did not create job \(layout.job) within 30 s")
      }
      try await Task.sleep(for: .milliseconds(50))
    }
  }

  /// Follows the job's epoch: restarts etcd at the planned epoch, and reports how long the
  /// job took to move again after each process death.
  private func monitorEpochs(
    coordinator: EtcdCoordinator, layout: JobLayout, server: EtcdTestServer,
    supervisor: ProcessSupervisor
  ) async {
    var restartDue = plan.etcdRestartAtEpoch
    var etcdKilled: (at: ContinuousClock.Instant, epoch: UInt64)?
    var last: UInt64?
    func observe(_ epoch: UInt64) async {
      guard epoch != last else { return }
      last = epoch
      let now = ContinuousClock.now
      if let killed = etcdKilled, epoch > killed.epoch {
        etcdKilled = nil
        log(
          "recovery: etcd was killed at epoch \(killed.epoch); epoch moved to \(epoch) "
            + String(format: "%.2f s later", (now - killed.at).seconds))
      }
      for death in await supervisor.takeDeaths() {
        log(
          "recovery: \(death.name) died (\(death.how)); epoch moved to \(epoch) "
            + String(format: "%.2f s later", (now - death.at).seconds))
      }
      if let due = restartDue, epoch >= due {
        restartDue = nil
        log("fault: killing etcd at epoch \(epoch)")
        let stopped = ContinuousClock.now
        etcdKilled = (stopped, epoch)
        await server.kill()
        do {
          try await server.restart()
          log(
            "etcd restarted after "
              + String(format: "%.2f s", (ContinuousClock.now - stopped).seconds))
        } catch {
          await supervisor.fail("etcd did not restart: \(error)")
        }
      }
    }
    while !Task.isCancelled {
      do {
        let (entries, revision) = try await coordinator.getPrefix(layout.epoch)
        if let kv = entries.first, let e = UInt64(kv.string) { await observe(e) }
        for try await event in coordinator.watch(prefix: layout.epoch, fromRevision: revision + 1) {
          if case .put(let kv) = event, let e = UInt64(kv.string) { await observe(e) }
        }
      } catch {
        if Task.isCancelled { return }
        try? await Task.sleep(for: .milliseconds(200))
      }
    }
  }
}

private func log(_ line: String) {
  FileHandle.standardError.write(Data("launcher: \(line)\n".utf8))
}

/// A launch that could not complete.
struct LaunchError: Error, CustomStringConvertible {
  var message: String
  var description: String { message }
}

/// Starts the child processes (their output goes to this process's), restarts task
/// processes that die, and reports how the controller ended.
actor ProcessSupervisor {
  enum Outcome: Sendable {
    case finished
    case failed(String)
  }

  /// A process death the epoch monitor has not reported yet.
  struct Death: Sendable {
    var name: String
    var how: String
    var at: ContinuousClock.Instant
  }

  let executable: String
  let restart: Bool
  private var processes: [String: Process] = [:]
  private var arguments: [String: [String]] = [:]
  private var stopping = false
  private var outcome: Outcome?
  private var waiters: [CheckedContinuation<Outcome, Never>] = []
  private var exitWaiters: [CheckedContinuation<Void, Never>] = []
  private var deaths: [Death] = []
  private var failuresByName: [String: Int] = [:]
  private(set) var restarts = 0

  init(executable: String, restart: Bool) {
    self.executable = executable
    self.restart = restart
  }

  func start(_ name: String, _ args: [String]) {
    arguments[name] = args
    let process = Process()
    process.executableURL = URL(fileURLWithPath: executable)
    process.arguments = args
    process.terminationHandler = { [weak self] p in
      let signalled = p.terminationReason == .uncaughtSignal
      let status = p.terminationStatus
      Task { await self?.ended(name, signalled: signalled, status: status) }
    }
    do {
      try process.run()
      processes[name] = process
    } catch {
      finish(.failed("cannot start \(name): \(error)"))
    }
  }

  private func ended(_ name: String, signalled: Bool, status: Int32) {
    processes[name] = nil
    if processes.isEmpty {
      for waiter in exitWaiters { waiter.resume() }
      exitWaiters = []
    }
    guard !stopping else { return }
    let how = signalled ? "signal \(status)" : "exit \(status)"
    if name == "controller" {
      finish(status == 0 && !signalled ? .finished : .failed("the controller ended with \(how)"))
      return
    }
    guard signalled || status != TaskExit.finished else { return }
    deaths.append(Death(name: name, how: how, at: .now))
    guard restart else {
      log("\(name) ended with \(how); not restarting it")
      return
    }
    failuresByName[name, default: 0] += 1
    guard failuresByName[name]! <= 25 else {
      finish(.failed("\(name) failed \(failuresByName[name]!) times; last: \(how)"))
      return
    }
    restarts += 1
    log("\(name) ended with \(how); restarting it")
    if signalled {
      start(name, arguments[name] ?? [])
    } else {
      // An error exit (e.g. etcd unreachable while it restarts): try again shortly.
      let args = arguments[name] ?? []
      Task {
        try? await Task.sleep(for: .milliseconds(500))
        self.startUnlessStopping(name, args)
      }
    }
  }

  private func startUnlessStopping(_ name: String, _ args: [String]) {
    guard !stopping else { return }
    start(name, args)
  }

  /// Why the launch failed, if it did.
  var failure: String? {
    if case .failed(let why) = outcome { return why }
    return nil
  }

  /// Ends the launch with a failure (e.g. a timeout).
  func fail(_ why: String) {
    finish(.failed(why))
  }

  private func finish(_ o: Outcome) {
    guard outcome == nil else { return }
    outcome = o
    for waiter in waiters { waiter.resume(returning: o) }
    waiters = []
  }

  /// The deaths since the last call.
  func takeDeaths() -> [Death] {
    defer { deaths = [] }
    return deaths
  }

  /// Waits until the controller exits (or the launch fails).
  func waitForController() async -> Outcome {
    if let outcome { return outcome }
    return await withCheckedContinuation { waiters.append($0) }
  }

  /// Stops restarting, waits up to `grace` for every process to exit, then kills the rest.
  func waitForAll(grace: Duration) async {
    stopping = true
    if case .failed = outcome {
      killAll()
    }
    let killer = Task {
      try await Task.sleep(for: grace)
      self.killAll()
    }
    if !processes.isEmpty {
      await withCheckedContinuation { exitWaiters.append($0) }
    }
    killer.cancel()
  }

  /// Kills every process at once and waits for them.
  func stopAll() async {
    stopping = true
    killAll()
    if !processes.isEmpty {
      await withCheckedContinuation { exitWaiters.append($0) }
    }
  }

  private func killAll() {
    for (name, p) in processes where p.isRunning {
      log("killing \(name) (pid \(p.processIdentifier))")
      kill(p.processIdentifier, SIGKILL)
    }
  }
}
