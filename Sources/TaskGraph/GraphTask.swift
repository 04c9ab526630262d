/// A task of the graph model: it reacts to the start of an epoch, to meta flags from its
/// neighbours and to responses to its data requests, and serves data to its neighbours.
///
/// The runtime calls `enterEpoch`, `metaReady` and `dataReady` one at a time, in order, and
/// only for the node's current epoch; `serveData` may run concurrently with them (make the
/// task an actor), but never for an epoch whose `enterEpoch` has not returned. Each callback receives the context of its epoch; actions taken through
/// the context of an epoch that is over are ignored or refused.
public protocol GraphTask: Sendable {
  /// The job entered `epoch`: reset per-epoch state and start the epoch's work.
  func enterEpoch(_ epoch: UInt64, context: TaskContext) async
  /// Neighbour `task` flagged `meta` in the current epoch; `linkType` is the link of *this*
  /// task over which `task` is a neighbour (a child's flag arrives over `children`).
  func metaReady(from task: Int, linkType: String, meta: String, context: TaskContext) async
  /// The response of `task` to this task's request for `method` (delivered exactly once per
  /// request, and only in the epoch of the request).
  func dataReady(from task: Int, method: String, response: Payload, context: TaskContext) async
  /// Answers a data request of `task` for `method`. May wait for data of the current epoch
  /// to become available (it is cancelled when the epoch ends). A duplicate of a request
  /// gets the response of the first without a second call.
  func serveData(from task: Int, method: String, request: Payload, context: TaskContext)
    async throws -> Payload
  /// A new node has taken over task `task`'s slot (the one before it died or lost its
  /// lease). Work that node had acknowledged but not finished, such as a response it
  /// owed this task through a request of its own, is lost with it: ask the new node again.
  /// Called in order with the other callbacks, in the current epoch.
  func peerReplaced(_ task: Int, context: TaskContext) async
  /// The job has ended: the last chance to save work. Not called when the node was killed
  /// or lost its lease (another node has taken over the slot).
  func exit() async
}

extension GraphTask {
  /// Ignores the flag.
  public func metaReady(from task: Int, linkType: String, meta: String, context: TaskContext)
    async
  {}
  /// Ignores the response.
  public func dataReady(from task: Int, method: String, response: Payload, context: TaskContext)
    async
  {}
  /// Does nothing.
  public func peerReplaced(_ task: Int, context: TaskContext) async {}
  /// Does nothing.
  public func exit() async {}
}

/// A task that can wait as a hot standby for its slot while another node serves it.
public protocol Backupable: GraphTask {
  /// The node is waiting as a standby for the slot (the primary holds it).
  func becameBackup() async
  /// The primary's lease expired and this node claimed the slot; `enterEpoch` follows.
  func becamePrimary() async
}

/// What a task can do, bound to one epoch of one node.
public struct TaskContext: Sendable {
  /// The job's name.
  public let job: String
  /// The slot this node serves.
  public let taskID: Int
  /// The epoch this context belongs to.
  public let epoch: UInt64
  /// The job's topology.
  public let topology: any Topology
  let runtime: NodeRuntime

  /// The neighbours of this task over `linkType` in this epoch.
  public func neighbors(_ linkType: String) -> [Int] {
    topology.neighbors(of: taskID, linkType: linkType, epoch: epoch)
  }

  /// Flags `meta` to the neighbours over `linkType`; each receives `metaReady` with the
  /// reverse link type. Ignored if the epoch is over.
  public func flagMeta(linkType: String, meta: String) async throws {
    try await runtime.flagMeta(epoch: epoch, linkType: linkType, meta: meta)
  }

  /// Requests `method` from task `to`; the response arrives once, through `dataReady`,
  /// unless the epoch ends first. Retried across failures and replacements of `to`.
  public func dataRequest(to task: Int, method: String, payload: Payload = []) async {
    await runtime.startRequest(epoch: epoch, to: task, method: method, payload: payload)
  }

  /// Advances the job's epoch from this context's epoch (idempotent: a second call, or a
  /// call after another task advanced it, does nothing).
  public func incrementEpoch() async throws {
    try await runtime.incrementEpoch(from: epoch)
  }

  /// Ends the job: every node calls its task's `exit()` and stops.
  public func shutdownJob() async throws {
    try await runtime.shutdownJob()
  }

  /// Stops this node at once as if it had crashed (for fault tests): no exit hook, the
  /// lease is left to expire, the slot is freed only then.
  public func kill() async {
    await runtime.kill()
  }

  /// Publishes a result of the job under `name` (kept after the job ends; read with
  /// `Controller.records()`).
  public func record(_ name: String, value: [UInt8]) async throws {
    try await runtime.record(name, value: value)
  }
}
