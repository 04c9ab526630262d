/// The master of the master/worker model: task 0 of a star, which notifies its workers
/// and is notified by them.
///
/// The model is layered on the graph model (`MasterWorker.builder` wraps the tasks): a
/// notification is a data request with a reserved method, so it is delivered exactly once
/// and only within its epoch. Notifications arrive concurrently with `enterEpoch`; make the
/// task an actor.
public protocol MasterTask: Sendable {
  /// The job entered `epoch`.
  func enterEpoch(_ epoch: UInt64, context: MasterContext) async
  /// Worker `worker` called `notifyMaster(message)` in the current epoch.
  func notified(by worker: Int, message: Payload, context: MasterContext) async throws
  /// A new node has taken over worker `worker`'s slot. A notification the old node had
  /// received (and acknowledged) but not yet answered with `notifyMaster` is lost with it:
  /// notify the new node again if an answer is still owed.
  func workerReplaced(_ worker: Int, context: MasterContext) async
  /// The job has ended: the last chance to save work.
  func exit() async
}

/// A worker of the master/worker model: tasks 1… of a star.
public protocol WorkerTask: Sendable {
  /// The job entered `epoch`.
  func enterEpoch(_ epoch: UInt64, context: WorkerContext) async
  /// The master called `notifyWorker(self, message)` in the current epoch.
  func notified(message: Payload, context: WorkerContext) async throws
  /// The response of worker `worker` to this worker's `dataRequest`.
  func dataReady(from worker: Int, method: String, response: Payload, context: WorkerContext)
    async
  /// Answers another worker's data request.
  func serveData(from worker: Int, method: String, request: Payload, context: WorkerContext)
    async throws -> Payload
  /// The job has ended: the last chance to save work.
  func exit() async
}

extension MasterTask {
  /// Does nothing.
  public func workerReplaced(_ worker: Int, context: MasterContext) async {}
  /// Does nothing.
  public func exit() async {}
}

extension WorkerTask {
  /// Ignores the response.
  public func dataReady(
    from worker: Int, method: String, response: Payload, context: WorkerContext
  ) async {}
  /// Refuses: this worker serves no data.
  public func serveData(
    from worker: Int, method: String, request: Payload, context: WorkerContext
  ) async throws -> Payload {
    throw TransportError(code: .handlerFailed, message: "worker serves no \(method)")
  }
  /// Does nothing.
  public func exit() async {}
}

/// What the master can do in one epoch.
public struct MasterContext: Sendable {
  /// The underlying graph-model context.
  public let base: TaskContext
  /// The epoch.
  public var epoch: UInt64 { base.epoch }
  /// The worker ids (1…).
  public var workers: [Int] { base.neighbors(StarTopology.workers) }
  /// Sends `message` to `worker`; it reaches `WorkerTask.notified` exactly once.
  public func notifyWorker(_ worker: Int, message: Payload) async {
    await base.dataRequest(to: worker, method: MasterWorker.notifyMethod, payload: message)
  }
  /// Advances the epoch.
  public func incrementEpoch() async throws { try await base.incrementEpoch() }
  /// Ends the job.
  public func shutdownJob() async throws { try await base.shutdownJob() }
  /// Publishes a result under `name`.
  public func record(_ name: String, value: [UInt8]) async throws {
    try await base.record(name, value: value)
  }
  /// Stops the node as if it crashed (fault tests).
  public func kill() async { await base.kill() }
}

/// What a worker can do in one epoch.
public struct WorkerContext: Sendable {
  /// The underlying graph-model context.
  public let base: TaskContext
  /// The epoch.
  public var epoch: UInt64 { base.epoch }
  /// This worker's task id.
  public var taskID: Int { base.taskID }
  /// All worker ids, this one included.
  public var workers: [Int] { Array(1..<base.topology.taskCount) }
  /// Sends `message` to the master; it reaches `MasterTask.notified` exactly once.
  public func notifyMaster(_ message: Payload) async {
    await base.dataRequest(to: 0, method: MasterWorker.notifyMethod, payload: message)
  }
  /// Requests `method` from another worker; the response arrives through `dataReady`.
  public func dataRequest(to worker: Int, method: String, payload: Payload = []) async {
    precondition(worker != 0, "workers request data from workers; notify the master instead")
    await base.dataRequest(to: worker, method: method, payload: payload)
  }
  /// Advances the epoch.
  public func incrementEpoch() async throws { try await base.incrementEpoch() }
  /// Ends the job.
  public func shutdownJob() async throws { try await base.shutdownJob() }
  /// Stops the node as if it crashed (fault tests).
  public func kill() async { await base.kill() }
}

/// Builds master/worker jobs on the graph model over a `StarTopology`.
public enum MasterWorker {
  /// The reserved method that carries notifications.
  public static let notifyMethod = "taskgraph.notify"

  /// A task builder that makes slot 0 the master and the others workers.
  public static func builder(
    master: @escaping @Sendable () async throws -> any MasterTask,
    worker: @escaping @Sendable (_ taskID: Int) async throws -> any WorkerTask
  ) -> Node.TaskBuilder {
    { id in
      id == 0
        ? MasterAdapter(master: try await master()) : WorkerAdapter(worker: try await worker(id))
    }
  }
}

private struct MasterAdapter: GraphTask {
  let master: any MasterTask

  func enterEpoch(_ epoch: UInt64, context: TaskContext) async {
    await master.enterEpoch(epoch, context: MasterContext(base: context))
  }

  func serveData(from task: Int, method: String, request: Payload, context: TaskContext)
    async throws -> Payload
  {
    guard method == MasterWorker.notifyMethod else {
      throw TransportError(code: .handlerFailed, message: "the master serves no \(method)")
    }
    try await master.notified(by: task, message: request, context: MasterContext(base: context))
    return []
  }

  func peerReplaced(_ task: Int, context: TaskContext) async {
    guard task != 0 else { return }
    await master.workerReplaced(task, context: MasterContext(base: context))
  }

  func exit() async { await master.exit() }
}

private struct WorkerAdapter: GraphTask {
  let worker: any WorkerTask

  func enterEpoch(_ epoch: UInt64, context: TaskContext) async {
    await worker.enterEpoch(epoch, context: WorkerContext(base: context))
  }

  func dataReady(from task: Int, method: String, response: Payload, context: TaskContext) async {
    // Acknowledgements of notifications carry nothing.
    guard method != MasterWorker.notifyMethod else { return }
    await worker.dataReady(
      from: task, method: method, response: response, context: WorkerContext(base: context))
  }

  func serveData(from task: Int, method: String, request: Payload, context: TaskContext)
    async throws -> Payload
  {
    let context = WorkerContext(base: context)
    if method == MasterWorker.notifyMethod {
      try await worker.notified(message: request, context: context)
      return []
    }
    return try await worker.serveData(
      from: task, method: method, request: request, context: context)
  }

  func exit() async { await worker.exit() }
}
