import Logging

/// The settings of a node.
public struct NodeConfiguration: Sendable {
  /// Which slot a node claims.
  public enum Slot: Sendable, Hashable {
    /// The first free slot.
    case any
    /// Exactly this slot.
    case exactly(Int)
    /// The first free slot among these (e.g. only the worker slots of a master/worker job).
    case among([Int])
  }

  /// The job's name.
  public var job: String
  /// Where the node's transport server listens.
  public var host: String
  /// The lease TTL: how long after its last heartbeat a silent node loses its slot.
  public var leaseTTL: Duration
  /// How often the lease is refreshed; by default a third of the TTL.
  public var keepAliveInterval: Duration?
  /// Retries and timeouts of data requests.
  public var retry: RetryPolicy
  /// Which slot to claim.
  public var slot: Slot
  /// If every wanted slot is taken: wait as a hot standby (true) or fail with `jobFull`.
  public var standby: Bool
  /// This node's unique identity (written with its address).
  public var nodeID: String
  /// How long a data request of an epoch this node has not entered yet is held, waiting
  /// for the node's watch to deliver that epoch, before it is refused as stale (its
  /// requester then retries after a backoff). Holding it saves the requester that backoff
  /// in the common case of a request that overtakes the epoch's watch event.
  public var earlyRequestHold: Duration

  /// A configuration for `job`; see the properties.
  public init(
    job: String, host: String = "127.0.0.1", leaseTTL: Duration = .seconds(5),
    keepAliveInterval: Duration? = nil, retry: RetryPolicy = .defaults, slot: Slot = .any,
    standby: Bool = false, nodeID: String? = nil, earlyRequestHold: Duration = .seconds(1)
  ) {
    precondition(leaseTTL > .zero, "lease TTL must be positive")
    precondition(earlyRequestHold >= .zero, "the hold of early requests must not be negative")
    self.job = job
    self.host = host
    self.leaseTTL = leaseTTL
    self.keepAliveInterval = keepAliveInterval
    self.retry = retry
    self.slot = slot
    self.standby = standby
    self.nodeID = nodeID ?? makeNodeID()
    self.earlyRequestHold = earlyRequestHold
  }
}

/// A random node identity (64 bits, hexadecimal).
func makeNodeID() -> String {
  var rng = SystemRandomNumberGenerator()
  return String(rng.next() as UInt64, radix: 16)
}

/// How a node's run ended.
public enum NodeOutcome: Sendable, Hashable {
  /// The job ended (a task shut it down); the task's exit hook ran. `taskID` is nil if the
  /// job had ended before the node claimed a slot.
  case finished(taskID: Int?)
  /// The task killed its node (fault injection); the lease was left to expire.
  case killed(taskID: Int)
  /// The node's lease expired: another node may serve the slot now, so this one stopped.
  case leaseLost(taskID: Int)
}

/// One process's participation in a job: it claims a task slot, serves it and drives the
/// task's callbacks until the job ends.
///
/// `run()` reads the job spec (failing fast with `CoordinatorError.jobNotFound`), takes a
/// lease and keeps it alive, starts a transport server, claims a slot (or fails with
/// `jobFull`, or waits as a hot standby), builds the task for the slot, tells it the current
/// epoch, and then follows the job through one ordered watch of its keys.
public struct Node: Sendable {
  /// Builds the task of a slot once the node has claimed it.
  public typealias TaskBuilder = @Sendable (_ taskID: Int) async throws -> any GraphTask

  /// The node's configuration.
  public let configuration: NodeConfiguration
  private let coordinator: any Coordinator
  private let transport: any Transport
  private let topology: any Topology
  private let builder: TaskBuilder
  private let logger: Logger

  /// A node of `configuration.job` over `coordinator` and `transport`, whose tasks are
  /// connected by `topology` and built by `builder`.
  public init(
    configuration: NodeConfiguration, coordinator: any Coordinator, transport: any Transport,
    topology: any Topology, logger: Logger = Logger(label: "taskgraph.node"),
    builder: @escaping TaskBuilder
  ) {
    self.configuration = configuration
    self.coordinator = coordinator
    self.transport = transport
    self.topology = topology
    self.builder = builder
    self.logger = logger
  }

  /// Runs the node until the job ends, the node is killed or it loses its lease.
  public func run() async throws -> NodeOutcome {
    let runtime = NodeRuntime(
      configuration: configuration, coordinator: coordinator, transport: transport,
      topology: topology, logger: logger, builder: builder)
    return try await runtime.run()
  }
}

/// The state and machinery of one running node.
actor NodeRuntime {
  enum Event: Sendable {
    case enter(TaskContext)
    case meta(from: Int, linkType: String, meta: String, epoch: UInt64)
    case data(RequestKey, method: String, response: Payload)
    case replaced(Int)
    case stop(NodeOutcome)
    case failed(any Error)
  }

  private let configuration: NodeConfiguration
  private let coordinator: any Coordinator
  private let transport: any Transport
  private let topology: any Topology
  private let builder: Node.TaskBuilder
  private var logger: Logger
  private let layout: JobLayout
  private let nonce: UInt64

  private var taskID: Int?
  private var task: (any GraphTask)?
  private var lease: LeaseID?
  private var book = EpochBook()
  private var context: TaskContext?
  private var addresses: [Int: String] = [:]
  /// The node last seen serving each other slot, to tell a replacement from a re-put.
  private var peers: [Int: String] = [:]
  private var addressWaiters: [Int: [Int: CheckedContinuation<Void, Never>]] = [:]
  private var nextWaiter = 0
  private var requests: [Int: Task<Void, Never>] = [:]
  private var nextRequestSlot = 0
  private var nextRequestID: UInt64 = 0
  private var serveCache: [RequestKey: Task<Payload, any Error>] = [:]
  private var outcome: NodeOutcome?
  private var events: AsyncStream<Event>.Continuation?
  private var background: [Task<Void, Never>] = []
  private var server: (any TransportServer)?
  /// The epoch whose `enterEpoch` has returned; requests of an epoch are served only then.
  private var enteredEpoch: UInt64?
  private var entryWaiters: [Int: CheckedContinuation<Void, Never>] = [:]
  private var nextEntryWaiter = 0
  private var jitter = SystemRandomNumberGenerator()

  init(
    configuration: NodeConfiguration, coordinator: any Coordinator, transport: any Transport,
    topology: any Topology, logger: Logger, builder: @escaping Node.TaskBuilder
  ) {
    self.configuration = configuration
    self.coordinator = coordinator
    self.transport = transport
    self.topology = topology
    self.builder = builder
    self.logger = logger
    self.layout = JobLayout(job: configuration.job)
    var rng = SystemRandomNumberGenerator()
    self.nonce = UInt64(rng.next() as UInt32) << 32
    self.logger[metadataKey: "job"] = "\(configuration.job)"
    self.logger[metadataKey: "node"] = "\(configuration.nodeID)"
  }

  // MARK: - Run

  func run() async throws -> NodeOutcome {
    guard let specKV = try await coordinator.get(layout.spec) else {
      throw CoordinatorError(
        code: .jobNotFound, message: "job \(layout.job) not found (no \(layout.spec))")
    }
    let spec: JobSpec
    do {
      spec = try JobSpec(bytes: specKV.value)
    } catch {
      throw CoordinatorError(
        code: .invalidArgument, message: "job \(layout.job) has an unreadable spec", cause: error)
    }
    guard spec.taskCount == topology.taskCount else {
      throw CoordinatorError(
        code: .invalidArgument,
        message:
          "job \(layout.job) has \(spec.taskCount) tasks but the topology \(topology.description) has \(topology.taskCount)"
      )
    }
    if try await coordinator.get(layout.status)?.string == JobLayout.done {
      return .finished(taskID: nil)
    }

    let (stream, continuation) = AsyncStream<Event>.makeStream()
    events = continuation
    let lease = try await coordinator.grantLease(ttl: configuration.leaseTTL)
    self.lease = lease
    startKeepAlive(lease)
    do {
      server = try await transport.startServer(host: configuration.host) { [weak self] request in
        guard let self else {
          throw TransportError(code: .unavailable, message: "node has stopped")
        }
        return try await self.handle(request)
      }
    } catch {
      await cleanUp(revoke: true)
      throw error
    }
    logger[metadataKey: "address"] = "\(server!.address)"

    let outcome: NodeOutcome
    do {
      outcome = try await claimAndServe(spec: spec, lease: lease, stream: stream)
    } catch {
      await cleanUp(revoke: true)
      throw error
    }
    let finished: Bool
    if case .finished = outcome { finished = true } else { finished = false }
    if finished, let task { await task.exit() }
    await cleanUp(revoke: finished)
    logger.debug("node stopped", metadata: ["outcome": "\(outcome)"])
    return outcome
  }

  private func claimAndServe(spec: JobSpec, lease: LeaseID, stream: AsyncStream<Event>)
    async throws -> NodeOutcome
  {
    let record = AddressRecord(nodeID: configuration.nodeID, address: server!.address)
    var claimed = try await claim(record: record, lease: lease, taskCount: spec.taskCount)
    if claimed == nil {
      guard configuration.standby else {
        throw CoordinatorError(
          code: .jobFull,
          message: "job \(layout.job): every wanted task slot of \(spec.taskCount) is taken")
      }
      guard let id = try await waitAsStandby(record: record, lease: lease, spec: spec) else {
        return outcome ?? .finished(taskID: nil)
      }
      claimed = id
    } else {
      task = try await builder(claimed!)
    }
    let id = claimed!
    taskID = id
    logger[metadataKey: "task"] = "\(id)"
    logger.debug("claimed slot")
    if let outcome { return outcome }

    try await follow()
    return try await eventLoop(stream)
  }

  /// Tries to claim the wanted slot(s); returns the slot or nil if all are taken.
  private func claim(record: AddressRecord, lease: LeaseID, taskCount: Int) async throws -> Int? {
    let order: [Int]
    switch configuration.slot {
    case .any: order = Array(0..<taskCount)
    case .among(let ids): order = ids.filter { (0..<taskCount).contains($0) }
    case .exactly(let id):
      guard id >= 0 && id < taskCount else {
        throw CoordinatorError(
          code: .invalidArgument, message: "slot \(id) outside 0..<\(taskCount)")
      }
      order = [id]
    }
    for id in order {
      let key = layout.address(id)
      let created = try await coordinator.create(key, record.bytes, lease: lease)
      let existing =
        created ? nil : try await coordinator.get(key).flatMap { AddressRecord($0.value) }
      if case .claimed = SlotClaim.decide(
        created: created, existing: existing, nodeID: record.nodeID)
      {
        return id
      }
    }
    return nil
  }

  /// Waits as a hot standby until a wanted slot frees up, then claims it. Returns nil if
  /// the job ended first.
  private func waitAsStandby(record: AddressRecord, lease: LeaseID, spec: JobSpec) async throws
    -> Int?
  {
    try await coordinator.put(layout.standby(configuration.nodeID), record.bytes, lease: lease)
    var backup: (any Backupable)?
    if case .exactly(let id) = configuration.slot {
      let built = try await builder(id)
      task = built
      backup = built as? any Backupable
      await backup?.becameBackup()
    }
    logger.debug("waiting as hot standby")
    while outcome == nil {
      let (entries, revision) = try await coordinator.getPrefix(layout.prefix)
      if entries.contains(where: { $0.key == layout.status && $0.string == JobLayout.done }) {
        try? await coordinator.delete(layout.standby(configuration.nodeID))
        return nil
      }
      if let id = try await claim(record: record, lease: lease, taskCount: spec.taskCount) {
        try? await coordinator.delete(layout.standby(configuration.nodeID))
        if task == nil { task = try await builder(id) }
        await backup?.becamePrimary()
        return id
      }
      // Wait for a slot to be freed or the job to end, then look again.
      watching: for try await event in coordinator.watch(
        prefix: layout.prefix, fromRevision: revision + 1)
      {
        switch (event, layout.classify(event.key)) {
        case (.delete, .address): break watching
        case (.put(let kv), .status) where kv.string == JobLayout.done: break watching
        // Our standby key vanishes with our lease: stop waiting (the outcome is set).
        case (.delete, .standby(let id)) where id == configuration.nodeID: break watching
        default: continue
        }
      }
      try Task.checkCancellation()
    }
    return nil
  }

  /// Reads the job's state, tells the task the current epoch, and follows the job's keys.
  private func follow() async throws {
    let (entries, revision) = try await coordinator.getPrefix(layout.prefix)
    var epoch: UInt64 = 0
    var done = false
    var metas: [(Int, String, MetaRecord)] = []
    for kv in entries {
      switch layout.classify(kv.key) {
      case .epoch: epoch = parseEpoch(kv.value) ?? 0
      case .status: done = kv.string == JobLayout.done
      case .address(let id):
        if let r = AddressRecord(kv.value) {
          addresses[id] = r.address
          peers[id] = r.nodeID
        }
      case .meta(let id, let linkType):
        if let m = MetaRecord(kv.value) { metas.append((id, linkType, m)) }
      default: break
      }
    }
    if done {
      stop(.finished(taskID: taskID))
      return
    }
    enter(epoch)
    // A node joining mid-epoch sees the flags its neighbours raised before it came.
    for (from, linkType, meta) in metas { deliverMeta(from: from, linkType: linkType, meta) }
    let stream = coordinator.watch(prefix: layout.prefix, fromRevision: revision + 1)
    background.append(
      Task { [weak self] in
        do {
          for try await event in stream {
            guard let self else { return }
            await self.apply(event)
          }
        } catch is CancellationError {
        } catch {
          await self?.fail(error)
        }
      })
  }

  private func eventLoop(_ stream: AsyncStream<Event>) async throws -> NodeOutcome {
    for await event in stream {
      switch event {
      case .enter(let context):
        guard book.isCurrent(context.epoch), let task else { continue }
        logger.debug("enter epoch", metadata: ["epoch": "\(context.epoch)"])
        await task.enterEpoch(context.epoch, context: context)
        enteredEpoch = context.epoch
        wakeEntryWaiters()
      case .meta(let from, let linkType, let meta, let epoch):
        guard book.isCurrent(epoch), let context, context.epoch == epoch, let task else { continue }
        logger.trace(
          "meta", metadata: ["from": "\(from)", "link": "\(linkType)", "meta": "\(meta)"])
        await task.metaReady(from: from, linkType: linkType, meta: meta, context: context)
      case .data(let key, let method, let response):
        guard book.acceptResponse(key), let context, let task else { continue }
        logger.trace("data", metadata: ["from": "\(key.to)", "method": "\(method)"])
        await task.dataReady(from: key.to, method: method, response: response, context: context)
      case .replaced(let peer):
        guard let context, let task else { continue }
        logger.debug("peer replaced", metadata: ["peer": "\(peer)"])
        await task.peerReplaced(peer, context: context)
      case .stop(let outcome):
        return outcome
      case .failed(let error):
        throw error
      }
      if let outcome { return outcome }
    }
    return outcome ?? .finished(taskID: taskID)
  }

  // MARK: - Watch events

  private func apply(_ event: WatchEvent) {
    guard outcome == nil else { return }
    switch (event, layout.classify(event.key)) {
    case (.put(let kv), .epoch):
      if let epoch = parseEpoch(kv.value) { enter(epoch) }
    case (.put(let kv), .status):
      if kv.string == JobLayout.done { stop(.finished(taskID: taskID)) }
    case (.put(let kv), .address(let id)):
      if let record = AddressRecord(kv.value) {
        if id == taskID && record.nodeID != configuration.nodeID {
          logger.warning("slot taken over by node \(record.nodeID)")
          stop(.leaseLost(taskID: id))
          return
        }
        addresses[id] = record.address
        let previous = peers.updateValue(record.nodeID, forKey: id)
        if let previous, previous != record.nodeID, id != taskID { events?.yield(.replaced(id)) }
        wakeWaiters(for: id)
      }
    case (.delete, .address(let id)):
      addresses[id] = nil
      if id == taskID {
        logger.warning("own address vanished: lease lost")
        stop(.leaseLost(taskID: id))
      }
    case (.put(let kv), .meta(let id, let linkType)):
      if let meta = MetaRecord(kv.value) { deliverMeta(from: id, linkType: linkType, meta) }
    default:
      break
    }
  }

  private func deliverMeta(from: Int, linkType: String, _ meta: MetaRecord) {
    guard let taskID, from != taskID, from >= 0, from < topology.taskCount,
      book.isCurrent(meta.epoch),
      topology.neighbors(of: from, linkType: linkType, epoch: meta.epoch).contains(taskID)
    else { return }
    events?.yield(
      .meta(from: from, linkType: topology.reverse(linkType), meta: meta.meta, epoch: meta.epoch))
  }

  private func enter(_ epoch: UInt64) {
    guard let taskID, book.advance(to: epoch) else { return }
    // The old epoch's pending work is cancelled: requests, and data being served.
    for (_, request) in requests { request.cancel() }
    requests.removeAll()
    for (_, work) in serveCache { work.cancel() }
    serveCache.removeAll()
    let context = TaskContext(
      job: layout.job, taskID: taskID, epoch: epoch, topology: topology, runtime: self)
    self.context = context
    events?.yield(.enter(context))
    wakeEntryWaiters()
  }

  private func wakeEntryWaiters() {
    let waiters = entryWaiters
    entryWaiters.removeAll()
    for waiter in waiters.values { waiter.resume() }
  }

  /// Waits until the node enters an epoch or stops, or until `deadline` if given.
  private func waitForEntry(until deadline: ContinuousClock.Instant?) async {
    let id = nextEntryWaiter
    nextEntryWaiter += 1
    let timer = deadline.map { deadline in
      Task { [weak self] in
        do { try await Task.sleep(until: deadline, clock: .continuous) } catch { return }
        await self?.wakeEntryWaiter(id)
      }
    }
    await withCheckedContinuation { entryWaiters[id] = $0 }
    timer?.cancel()
  }

  private func wakeEntryWaiter(_ id: Int) {
    entryWaiters.removeValue(forKey: id)?.resume()
  }

  private func stop(_ outcome: NodeOutcome) {
    guard self.outcome == nil else { return }
    self.outcome = outcome
    for (_, request) in requests { request.cancel() }
    requests.removeAll()
    for (_, work) in serveCache { work.cancel() }
    serveCache.removeAll()
    for (_, waiters) in addressWaiters { for (_, w) in waiters { w.resume() } }
    addressWaiters.removeAll()
    wakeEntryWaiters()
    events?.yield(.stop(outcome))
    events?.finish()
  }

  private func fail(_ error: any Error) {
    guard outcome == nil else { return }
    logger.error("watch failed: \(error)")
    events?.yield(.failed(error))
  }

  private func cleanUp(revoke: Bool) async {
    if outcome == nil { outcome = .finished(taskID: taskID) }
    for task in background { task.cancel() }
    background.removeAll()
    for (_, request) in requests { request.cancel() }
    requests.removeAll()
    events?.finish()
    if let server { await server.stop() }
    server = nil
    if revoke, let lease { try? await coordinator.revokeLease(lease) }
    // Drop what refers back to this runtime (every context holds it, and the event
    // stream's buffer may hold contexts): without that the runtime, its task and the
    // task's data outlive the node, which adds up when one process runs many jobs.
    for (_, work) in serveCache { work.cancel() }
    serveCache.removeAll()
    context = nil
    task = nil
    events = nil
  }

  // MARK: - Lease

  private func startKeepAlive(_ lease: LeaseID) {
    let interval = configuration.keepAliveInterval ?? configuration.leaseTTL / 3
    let coordinator = coordinator
    background.append(
      Task { [weak self] in
        while !Task.isCancelled {
          try? await Task.sleep(for: interval)
          if Task.isCancelled { return }
          do {
            if try await coordinator.keepAlive(lease) { continue }
          } catch let error as CoordinatorError where error.code != .leaseExpired {
            // A transient failure: the next heartbeat may get through before the TTL.
            continue
          } catch {
            if Task.isCancelled { return }
          }
          await self?.leaseExpired()
          return
        }
      })
  }

  private func leaseExpired() {
    logger.warning("lease expired: this node has been replaced and stops acting")
    if let taskID { stop(.leaseLost(taskID: taskID)) } else { stop(.leaseLost(taskID: -1)) }
  }

  // MARK: - Task actions

  func flagMeta(epoch: UInt64, linkType: String, meta: String) async throws {
    guard outcome == nil, book.isCurrent(epoch), let taskID, let lease else { return }
    try await coordinator.put(
      layout.meta(taskID, linkType), MetaRecord(epoch: epoch, meta: meta).bytes, lease: lease)
  }

  func incrementEpoch(from epoch: UInt64) async throws {
    guard outcome == nil else { return }
    let swapped = try await coordinator.compareAndSwap(
      layout.epoch, expected: epochBytes(epoch), new: epochBytes(epoch + 1))
    if swapped { return }
    let reread = try await coordinator.get(layout.epoch).flatMap { parseEpoch($0.value) }
    if !EpochAdvance.succeeded(casResult: false, from: epoch, reread: reread) {
      logger.warning(
        "epoch not advanced from \(epoch): stored epoch is \(reread.map(String.init) ?? "missing")")
    }
  }

  func shutdownJob() async throws {
    guard outcome == nil else { return }
    try await coordinator.put(layout.status, Array(JobLayout.done.utf8), lease: nil)
  }

  func kill() async {
    logger.warning("killed")
    for task in background { task.cancel() }
    background.removeAll()
    if let server { await server.stop() }
    server = nil
    stop(.killed(taskID: taskID ?? -1))
  }

  func record(_ name: String, value: [UInt8]) async throws {
    guard outcome == nil else { return }
    try await coordinator.put(layout.record(name), value, lease: nil)
  }

  // MARK: - Data requests (requesting side)

  func startRequest(epoch: UInt64, to: Int, method: String, payload: Payload) {
    guard outcome == nil, book.isCurrent(epoch), let taskID else {
      logger.debug("request of a past epoch ignored", metadata: ["epoch": "\(epoch)"])
      return
    }
    precondition(to >= 0 && to < topology.taskCount, "task \(to) outside the job")
    nextRequestID += 1
    let request = DataRequest(
      job: layout.job, from: taskID, to: to, epoch: epoch, id: nonce | nextRequestID,
      method: method, payload: payload)
    let slot = nextRequestSlot
    nextRequestSlot += 1
    requests[slot] = Task { [weak self] in
      await self?.perform(request)
      await self?.requestEnded(slot)
    }
  }

  private func requestEnded(_ slot: Int) { requests[slot] = nil }

  private func perform(_ request: DataRequest) async {
    let key = RequestKey(from: request.from, to: request.to, epoch: request.epoch, id: request.id)
    let policy = configuration.retry
    var attempt = 0
    while !Task.isCancelled {
      attempt += 1
      guard let address = await resolve(request.to) else { return }
      let failure: TransportError
      do {
        let response = try await transport.send(
          request, to: address, timeout: policy.attemptTimeout)
        if Task.isCancelled { return }
        events?.yield(.data(key, method: request.method, response: response))
        return
      } catch let error as TransportError {
        failure = error
      } catch {
        if Task.isCancelled { return }
        failure = TransportError(code: .unavailable, message: "\(error)")
      }
      let directive = policy.decide(
        error: failure, attempt: attempt, requestEpoch: request.epoch,
        currentEpoch: book.current, random: Double.random(in: 0..<1, using: &jitter))
      switch directive {
      case .retry(let delay):
        logger.debug(
          "request retry", metadata: ["to": "\(request.to)", "error": "\(failure)"])
        do { try await Task.sleep(for: delay) } catch { return }
      case .drop(let reason):
        logger.debug("request dropped: \(reason)")
        return
      case .fail(let reason):
        logger.error("request \(request.method) to \(request.to) failed: \(reason)")
        return
      }
    }
  }

  /// The address of `task`'s node, waiting while the slot is vacant; nil if cancelled.
  private func resolve(_ task: Int) async -> String? {
    while !Task.isCancelled && outcome == nil {
      if let address = addresses[task] { return address }
      let id = nextWaiter
      nextWaiter += 1
      await withTaskCancellationHandler {
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
          if Task.isCancelled || outcome != nil || addresses[task] != nil {
            continuation.resume()
          } else {
            addressWaiters[task, default: [:]][id] = continuation
          }
        }
      } onCancel: {
        Task { await self.cancelWaiter(task: task, id: id) }
      }
    }
    return nil
  }

  private func cancelWaiter(task: Int, id: Int) {
    addressWaiters[task]?.removeValue(forKey: id)?.resume()
  }

  private func wakeWaiters(for task: Int) {
    guard let waiters = addressWaiters.removeValue(forKey: task) else { return }
    for (_, waiter) in waiters { waiter.resume() }
  }

  // MARK: - Data requests (serving side)

  private func handle(_ request: DataRequest) async throws -> Payload {
    // A request is served once the task has entered the request's epoch, so serveData
    // never sees an epoch before enterEpoch has reset the task's state for it. A request
    // of an epoch ahead of this node's is held for a while rather than refused: the epoch
    // is in the coordinator already, and the requester would otherwise back off.
    let holdDeadline = ContinuousClock.now.advanced(by: configuration.earlyRequestHold)
    admission: while true {
      guard outcome == nil, request.job == layout.job else {
        throw TransportError(
          code: .unavailable, message: "this node does not serve task \(request.to) now")
      }
      // A node that has just claimed its slot is found at its address a moment before it
      // knows its task: hold the request like an early one.
      if taskID == nil && ContinuousClock.now < holdDeadline {
        await waitForEntry(until: holdDeadline)
        continue admission
      }
      guard let taskID, request.to == taskID else {
        throw TransportError(
          code: .unavailable, message: "this node does not serve task \(request.to) now")
      }
      switch book.admit(requestEpoch: request.epoch) {
      case .refuse(let serverEpoch):
        throw TransportError.staleEpoch(server: serverEpoch, request: request.epoch)
      case .hold:
        guard ContinuousClock.now < holdDeadline else {
          throw TransportError.staleEpoch(server: book.current ?? 0, request: request.epoch)
        }
        await waitForEntry(until: holdDeadline)
      case .serve:
        if enteredEpoch == request.epoch { break admission }
        await waitForEntry(until: nil)
      }
    }
    guard let task, let context, context.epoch == request.epoch else {
      throw TransportError(code: .unavailable, message: "task not ready")
    }
    let key = RequestKey(from: request.from, to: request.to, epoch: request.epoch, id: request.id)
    let work: Task<Payload, any Error>
    if let cached = serveCache[key] {
      work = cached
    } else {
      work = Task {
        try await task.serveData(
          from: request.from, method: request.method, request: request.payload, context: context)
      }
      serveCache[key] = work
    }
    do {
      let response = try await work.value
      // A node that stopped (killed, or its lease lost) while serving has not answered: the
      // requester must try again, and reach the node that takes the slot over.
      guard outcome == nil else {
        throw TransportError(code: .unavailable, message: "node stopped while serving")
      }
      return response
    } catch  where outcome != nil {
      throw TransportError(code: .unavailable, message: "node stopped while serving")
    } catch is CancellationError {
      guard book.current == request.epoch, outcome == nil else {
        throw TransportError.staleEpoch(server: book.current ?? 0, request: request.epoch)
      }
      // Cancelled for another reason than the epoch's end: let the requester try again.
      if serveCache[key] == work { serveCache[key] = nil }
      throw TransportError(code: .unavailable, message: "serving was cancelled")
    }
  }
}
