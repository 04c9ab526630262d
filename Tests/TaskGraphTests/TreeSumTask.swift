import TaskGraph

/// What the tasks of a test job did, for assertions.
actor Recorder {
  struct Delivery: Hashable {
    var task: Int
    var epoch: UInt64
    var from: Int
    var method: String
  }
  private(set) var deliveries: [Delivery: Int] = [:]
  private(set) var serves: [Delivery: Int] = [:]
  private(set) var exits: [Int] = []
  private(set) var events: [String] = []
  private var listeners: [AsyncStream<String>.Continuation] = []

  func delivered(_ d: Delivery) { deliveries[d, default: 0] += 1 }
  func served(_ d: Delivery) { serves[d, default: 0] += 1 }
  func exited(_ task: Int) { exits.append(task) }

  /// Records `event` and tells the listeners.
  func note(_ event: String) {
    events.append(event)
    for listener in listeners { listener.yield(event) }
  }

  /// Events from now on (after those already noted).
  func listen() -> AsyncStream<String> {
    let (stream, continuation) = AsyncStream<String>.makeStream()
    listeners.append(continuation)
    return stream
  }
}

/// Where a `TreeSumTask` kills its own node.
enum KillPoint: Hashable, Sendable {
  /// When it enters the epoch.
  case enterEpoch
  /// When its parent's parameter arrives, before computing.
  case parameterArrived
  /// When its parent asks for its value, before answering.
  case serveValue
}

/// The regression example's task (see Examples/Regression), instrumented for tests: it
/// counts deliveries and serves, notes events, and can kill its node at a chosen point.
actor TreeSumTask: Backupable {
  static let param = "param"
  static let value = "value"

  let id: Int
  let epochs: UInt64
  let recorder: Recorder
  let kill: (epoch: UInt64, point: KillPoint)?
  private var epoch: UInt64 = 0
  private var param: UInt64?
  private var value: Int64?
  private var askedParent = false
  private var askedChildren: Set<Int> = []
  private var childValues: [Int: Int64] = [:]
  private var waiters: [Int: (epoch: UInt64, continuation: CheckedContinuation<Void, any Error>)] =
    [:]
  private var nextWaiter = 0

  init(id: Int, epochs: UInt64, recorder: Recorder, kill: (epoch: UInt64, point: KillPoint)? = nil)
  {
    self.id = id
    self.epochs = epochs
    self.recorder = recorder
    self.kill = kill
  }

  func becameBackup() async { await recorder.note("backup \(id)") }
  func becamePrimary() async { await recorder.note("primary \(id)") }
  func exit() async { await recorder.exited(id) }
  func peerReplaced(_ task: Int, context: TaskContext) async {
    await recorder.note("replaced \(task) seen by \(id)")
  }

  private func shouldKill(_ point: KillPoint) -> Bool {
    guard let kill else { return false }
    return kill.epoch == epoch && kill.point == point
  }

  func enterEpoch(_ epoch: UInt64, context: TaskContext) async {
    self.epoch = epoch
    param = nil
    value = nil
    askedParent = false
    askedChildren = []
    childValues = [:]
    wake(epochsBefore: epoch)
    await recorder.note("enter \(id) \(epoch)")
    if shouldKill(.enterEpoch) {
      await recorder.note("killed \(id) \(epoch)")
      await context.kill()
      return
    }
    guard id == 0 else { return }
    do {
      if epoch == 0 {
        try await context.incrementEpoch()
      } else if epoch > epochs {
        try await context.shutdownJob()
      } else {
        param = epoch
        wake(epochsBefore: epoch + 1)
        try await startChildren(context)
      }
    } catch {
      await recorder.note("error \(id) \(error)")
    }
  }

  func metaReady(from task: Int, linkType: String, meta: String, context: TaskContext) async {
    switch (linkType, meta) {
    case (TreeTopology.parents, Self.param) where !askedParent:
      askedParent = true
      await context.dataRequest(to: task, method: Self.param)
    case (TreeTopology.children, Self.value) where !askedChildren.contains(task):
      askedChildren.insert(task)
      await context.dataRequest(to: task, method: Self.value)
    default:
      break
    }
  }

  func dataReady(from task: Int, method: String, response: Payload, context: TaskContext) async {
    await recorder.delivered(.init(task: id, epoch: context.epoch, from: task, method: method))
    do {
      switch method {
      case Self.param:
        if shouldKill(.parameterArrived) {
          await recorder.note("killed \(id) \(epoch)")
          await context.kill()
          return
        }
        param = UInt64(decoding: response)
        wake(epochsBefore: epoch + 1)
        try await startChildren(context)
      case Self.value:
        childValues[task] = Int64(bitPattern: UInt64(decoding: response))
        try await finishIfComplete(context)
      default:
        break
      }
    } catch {
      await recorder.note("error \(id) \(error)")
    }
  }

  func serveData(from task: Int, method: String, request: Payload, context: TaskContext)
    async throws -> Payload
  {
    await recorder.served(.init(task: id, epoch: context.epoch, from: task, method: method))
    while true {
      if epoch == context.epoch {
        if method == Self.param, let param { return param.payload }
        if method == Self.value, let value {
          if shouldKill(.serveValue) {
            await recorder.note("killed \(id) \(epoch)")
            await context.kill()
            throw CancellationError()
          }
          return UInt64(bitPattern: value).payload
        }
      }
      try await waitForProgress(epoch: context.epoch)
    }
  }

  private func startChildren(_ context: TaskContext) async throws {
    if !context.neighbors(TreeTopology.children).isEmpty {
      try await context.flagMeta(linkType: TreeTopology.children, meta: Self.param)
    }
    // A replacement may have its children's values before its parent's parameter.
    try await finishIfComplete(context)
  }

  private func finishIfComplete(_ context: TaskContext) async throws {
    let children = context.neighbors(TreeTopology.children)
    guard value == nil, param != nil, children.allSatisfy({ childValues[$0] != nil }) else {
      return
    }
    let sum = children.reduce(Int64(0)) { $0 + childValues[$1]! }
    let result = Int64(epoch) * Int64(id) + sum
    value = result
    wake(epochsBefore: epoch + 1)
    if id == 0 {
      try await context.record("aggregate-\(epoch)", value: UInt64(bitPattern: result).bytes)
      await recorder.note("aggregate \(epoch) \(result)")
      try await context.incrementEpoch()
    } else {
      try await context.flagMeta(linkType: TreeTopology.parents, meta: Self.value)
    }
  }

  private func waitForProgress(epoch: UInt64) async throws {
    let key = nextWaiter
    nextWaiter += 1
    try await withTaskCancellationHandler {
      try await withCheckedThrowingContinuation {
        (continuation: CheckedContinuation<Void, any Error>) in
        if Task.isCancelled || epoch < self.epoch {
          continuation.resume(throwing: CancellationError())
        } else {
          waiters[key] = (epoch, continuation)
        }
      }
    } onCancel: {
      Task { await self.cancelWaiter(key) }
    }
  }

  private func cancelWaiter(_ key: Int) {
    waiters.removeValue(forKey: key)?.continuation.resume(throwing: CancellationError())
  }

  private func wake(epochsBefore limit: UInt64) {
    for (key, waiter) in waiters where waiter.epoch < limit {
      waiters[key] = nil
      if waiter.epoch < epoch {
        waiter.continuation.resume(throwing: CancellationError())
      } else {
        waiter.continuation.resume()
      }
    }
  }
}

extension UInt64 {
  var bytes: [UInt8] { (0..<8).map { UInt8(truncatingIfNeeded: self >> (8 * UInt64($0))) } }

  var payload: Payload { Payload(bytes) }

  init(decoding payload: Payload) { self.init(decoding: payload.bytes) }

  init(decoding bytes: [UInt8]) {
    precondition(bytes.count == 8, "expected 8 bytes, got \(bytes.count)")
    self = bytes.enumerated().reduce(0) { $0 | UInt64($1.element) << (8 * UInt64($1.offset)) }
  }
}

/// The series the regression example must produce: epoch e aggregates e·(1 + … + n-1).
func expectedSeries(tasks: Int, epochs: UInt64) -> [UInt64: Int64] {
  let ids = Int64(tasks * (tasks - 1) / 2)
  return Dictionary(uniqueKeysWithValues: (1...epochs).map { ($0, Int64($0) * ids) })
}

/// The aggregates a job recorded, by epoch.
func recordedSeries(_ controller: Controller) async throws -> [UInt64: Int64] {
  var out: [UInt64: Int64] = [:]
  for (name, value) in try await controller.records() where name.hasPrefix("aggregate-") {
    out[UInt64(name.dropFirst("aggregate-".count))!] = Int64(bitPattern: UInt64(decoding: value))
  }
  return out
}
