import ArgumentParser
import Foundation
import TaskGraph

/// The regression example of the original TaskGraph: a tree of tasks sums `e·id` per
/// epoch, and the master prints the aggregate of every epoch.
struct RegressionExample: AsyncParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "regression-example",
    abstract: "Runs the original TaskGraph regression example.",
    discussion: """
      Embedded (default): all tasks in this process, on the in-memory coordinator and the \
      in-process transport. With --etcd, --job and --role, each process is one role of a \
      distributed job over etcd and gRPC: the controller creates the job and prints the \
      series; each task process claims a free slot. --launch starts a private etcd, the \
      controller and the task processes itself and restarts any task process that dies. \
      --fail injects failures, deterministically by --seed: master-at-epoch=E (the master \
      process is SIGKILLed as it enters epoch E), tasks=P% (each non-master task is \
      SIGKILLed with probability P at its data points), etcd-restart-at-epoch=E (--launch \
      kills and restarts etcd as the job reaches epoch E).
      """)

  @Option(help: "The number of tasks (a tree of fan-out 2 rooted at task 0).")
  var tasks = 15

  @Option(help: "The number of epochs to compute.")
  var epochs: UInt64 = 10

  @Option(help: "The etcd endpoint (e.g. http://127.0.0.1:2379) of a distributed job.")
  var etcd: String?

  @Option(help: "The job's name.")
  var job = "regression"

  @Option(help: "The role of this process in a distributed job: controller or task.")
  var role: Role?

  @Flag(help: "Start a private etcd, the controller and the task processes.")
  var launch = false

  @Flag(
    help:
      "Measure the runtime (empty rounds of 2, 4, 16 tasks for --epochs epochs; data requests of 8 B, 8 KB, 8 MB), embedded and over gRPC + a private etcd."
  )
  var bench = false

  @Option(
    help: ArgumentHelp(
      "A failure to inject (repeatable): master-at-epoch=E, tasks=P%, etcd-restart-at-epoch=E.",
      valueName: "failure"))
  var fail: [String] = []

  @Option(help: "The seed of the injected failures.")
  var seed: UInt64 = 1

  @Option(help: "Seconds a silent task process keeps its slot (the lease TTL).")
  var leaseTtl: Double = 2

  @Option(help: "--launch: extra task processes that wait as hot standbys.")
  var standbys = 0

  @Flag(inversion: .prefixedNo, help: "--launch: restart task processes that die.")
  var restart = true

  @Option(help: "--launch: give up after this many seconds.")
  var timeout: Double = 120

  @Option(help: "--role task: claim exactly this slot instead of the first free one.")
  var slot: Int?

  @Flag(help: "--role task: if every wanted slot is taken, wait as a hot standby.")
  var standby = false

  @Option(help: "--role task: a directory that makes each injected fault fire once per job.")
  var faultDir: String?

  enum Role: String, ExpressibleByArgument {
    case controller, task
  }

  func validate() throws {
    guard tasks >= 1 else { throw ValidationError("--tasks must be at least 1") }
    guard epochs >= 1 else { throw ValidationError("--epochs must be at least 1") }
    guard leaseTtl > 0 else { throw ValidationError("--lease-ttl must be positive") }
    guard standbys >= 0 else { throw ValidationError("--standbys must not be negative") }
    if etcd != nil && role == nil { throw ValidationError("--etcd needs --role") }
    if role != nil && etcd == nil { throw ValidationError("--role needs --etcd") }
    if launch && etcd != nil { throw ValidationError("--launch starts its own etcd; drop --etcd") }
    _ = try faultPlan()
    if !fail.isEmpty && !launch && role != .task {
      throw ValidationError("--fail needs --launch or --role task")
    }
  }

  func faultPlan() throws -> FaultPlan {
    do { return try FaultPlan(fail) } catch { throw ValidationError("\(error)") }
  }

  func run() async throws { try await execute() }

  /// The command's work (named apart from `run()`, which top-level code would resolve to
  /// `ParsableCommand`'s synchronous `run()`).
  func execute() async throws {
    let plan = try faultPlan()
    if bench {
      try await RuntimeBench.run(epochs: epochs)
      return
    }
    if launch {
      let launcher = Launcher(
        tasks: tasks, epochs: epochs, standbys: standbys, restart: restart, leaseTTL: leaseTtl,
        seed: seed, failures: fail, plan: plan, timeout: .milliseconds(Int64(timeout * 1000)))
      try await launcher.run()
      return
    }
    guard let etcd, let role else {
      let series = try await Regression.runEmbedded(tasks: tasks, epochs: epochs)
      Regression.print(series)
      return
    }
    switch role {
    case .controller:
      try await ProcessRoles.controller(etcd: etcd, job: job, tasks: tasks)
    case .task:
      let injector =
        plan.affectsTasks
        ? FaultInjector(plan: plan, seed: seed, markerDirectory: faultDir) : nil
      let status = try await ProcessRoles.task(
        etcd: etcd, job: job, tasks: tasks, epochs: epochs,
        leaseTTL: .milliseconds(Int64(leaseTtl * 1000)), slot: slot, standby: standby,
        injector: injector)
      if status != 0 { Foundation.exit(status) }
    }
  }
}

/// The example's entry points, independent of how the coordinator and transport are made.
enum Regression {
  /// The topology: a tree of fan-out 2.
  static func topology(tasks: Int) -> TreeTopology { TreeTopology(taskCount: tasks, fanOut: 2) }

  /// Runs a whole job in this process and returns the aggregate of every epoch.
  static func runEmbedded(tasks: Int, epochs: UInt64) async throws -> [(UInt64, Int64)] {
    let job = EmbeddedJob(name: "regression", topology: topology(tasks: tasks)) { id in
      RegressionTask(id: id, epochs: epochs)
    }
    _ = try await job.run()
    return try await aggregates(job.controller)
  }

  /// The controller role: lays out `job` on `coordinator`, waits for it to end and returns
  /// the aggregates.
  static func runController(
    coordinator: any Coordinator, job: String, tasks: Int
  ) async throws -> [(UInt64, Int64)] {
    let topology = topology(tasks: tasks)
    let controller = Controller(
      coordinator: coordinator, job: job,
      spec: JobSpec(taskCount: tasks, topology: topology.description))
    try await controller.create()
    try await controller.waitForCompletion()
    return try await aggregates(controller)
  }

  /// The task role: one node that claims a free slot of `job` and serves it until the job
  /// ends (or fails fast if the job is missing or full).
  static func runTask(
    coordinator: any Coordinator, transport: any Transport, job: String, tasks: Int,
    epochs: UInt64, configuration: NodeConfiguration? = nil,
    faultHook: RegressionTask.FaultHook? = nil
  ) async throws -> NodeOutcome {
    let node = Node(
      configuration: configuration ?? NodeConfiguration(job: job), coordinator: coordinator,
      transport: transport, topology: topology(tasks: tasks)
    ) { id in
      RegressionTask(id: id, epochs: epochs, faultHook: faultHook)
    }
    return try await node.run()
  }

  static func aggregates(_ controller: Controller) async throws -> [(UInt64, Int64)] {
    try await controller.records().compactMap { name, value -> (UInt64, Int64)? in
      guard name.hasPrefix("aggregate-"), let epoch = UInt64(name.dropFirst("aggregate-".count))
      else { return nil }
      return (epoch, Int64(bitPattern: UInt64(decoding: value)))
    }.sorted { $0.0 < $1.0 }
  }

  static func print(_ series: [(UInt64, Int64)]) {
    for (epoch, value) in series { Swift.print("epoch \(epoch) aggregate \(value)") }
  }
}

// `main.swift` cannot hold an `@main` type; parse and run the async command by hand.
do {
  let command = try RegressionExample.parse()
  try await command.execute()
} catch {
  RegressionExample.exit(withError: error)
}
