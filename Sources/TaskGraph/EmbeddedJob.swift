import Logging

/// Runs a whole job inside one process: an in-memory coordinator, an in-process transport
/// (or any transport wrapping it) and one node per task slot.
///
/// ```swift
/// let job = EmbeddedJob(topology: TreeTopology(taskCount: 15, fanOut: 2)) { id in
///   MyTask(id: id)
/// }
/// let outcomes = try await job.run()
/// ```
public struct EmbeddedJob: Sendable {
  /// The job's name.
  public let name: String
  /// The job's topology.
  public let topology: any Topology
  /// The coordinator the job runs on (exposed for inspection and fault injection).
  public let coordinator: InMemoryCoordinator
  /// The transport the nodes talk over.
  public let transport: any Transport
  /// The template of every node's configuration (its `slot` is set per node).
  public var nodeConfiguration: NodeConfiguration
  private let builder: Node.TaskBuilder
  private let logger: Logger

  /// A job named `name` with `topology`, whose tasks `builder` makes. `transport` defaults
  /// to a fresh `InProcessTransport`; pass a wrapper to inject faults.
  public init(
    name: String = "embedded", topology: any Topology,
    coordinator: InMemoryCoordinator = InMemoryCoordinator(),
    transport: (any Transport)? = nil, leaseTTL: Duration = .seconds(2),
    retry: RetryPolicy = .defaults, logger: Logger = Logger(label: "taskgraph.embedded"),
    builder: @escaping Node.TaskBuilder
  ) {
    self.name = name
    self.topology = topology
    self.coordinator = coordinator
    self.transport = transport ?? InProcessTransport()
    self.nodeConfiguration = NodeConfiguration(job: name, leaseTTL: leaseTTL, retry: retry)
    self.builder = builder
    self.logger = logger
  }

  /// The job's controller.
  public var controller: Controller {
    Controller(
      coordinator: coordinator, job: name,
      spec: JobSpec(taskCount: topology.taskCount, topology: topology.description))
  }

  /// A node of this job for `slot`, with a fresh node id.
  public func node(slot: NodeConfiguration.Slot, standby: Bool = false) -> Node {
    var configuration = nodeConfiguration
    configuration.slot = slot
    configuration.standby = standby
    configuration.nodeID = makeNodeID()
    return Node(
      configuration: configuration, coordinator: coordinator, transport: transport,
      topology: topology, logger: logger, builder: builder)
  }

  /// Lays out the job, runs one node per slot until the job ends, and returns the nodes'
  /// outcomes by slot.
  public func run() async throws -> [NodeOutcome] {
    try await controller.create()
    return try await withThrowingTaskGroup(of: (Int, NodeOutcome).self) { group in
      for id in 0..<topology.taskCount {
        let node = node(slot: .exactly(id))
        group.addTask { (id, try await node.run()) }
      }
      var outcomes = [NodeOutcome?](repeating: nil, count: topology.taskCount)
      for try await (id, outcome) in group { outcomes[id] = outcome }
      return outcomes.map { $0! }
    }
  }
}
