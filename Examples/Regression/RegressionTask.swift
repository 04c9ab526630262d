import TaskGraph

/// The original TaskGraph's regression example as a graph-model task on a tree.
///
/// In epoch e ≥ 1 the root (task 0, the master) flags `param` to its children; each task
/// fetches the parameter e from its parent, passes the flag on, and once it has its
/// children's values computes `e·id + Σ children` and flags `value` to its parent, which
/// fetches it. The master records the sum of its children's values as the epoch's
/// aggregate and advances the epoch; after the last epoch it shuts the job down. Epoch 0
/// only starts the first epoch.
actor RegressionTask: GraphTask {
  static let param = "param"
  static let value = "value"

  /// Points where a fault hook runs (the original's failure-injection points): process-mode
  /// code can kill the process there (e.g. `--fail master-at-epoch=E` at `enterEpoch`).
  enum Point: String, Sendable {
    case enterEpoch, parentData, childData, beforeServe, afterServe
  }

  /// Called at every `Point` with the task id and the epoch.
  typealias FaultHook = @Sendable (_ point: Point, _ task: Int, _ epoch: UInt64) async -> Void

  let id: Int
  let epochs: UInt64
  let faultHook: FaultHook?
  private var epoch: UInt64 = 0
  private var param: UInt64?
  private var value: Int64?
  private var askedParent = false
  private var askedChildren: Set<Int> = []
  private var childValues: [Int: Int64] = [:]
  private var waiters: [Int: (epoch: UInt64, continuation: CheckedContinuation<Void, any Error>)] =
    [:]
  private var nextWaiter = 0

  init(id: Int, epochs: UInt64, faultHook: FaultHook? = nil) {
    self.id = id
    self.epochs = epochs
    self.faultHook = faultHook
  }

  private func reach(_ point: Point) async {
    await faultHook?(point, id, epoch)
  }

  func enterEpoch(_ epoch: UInt64, context: TaskContext) async {
    self.epoch = epoch
    param = nil
    value = nil
    askedParent = false
    askedChildren = []
    childValues = [:]
    wake(epochsBefore: epoch)
    await reach(.enterEpoch)
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
      print("task 0: \(error)")
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
    do {
      switch method {
      case Self.param:
        await reach(.parentData)
        param = UInt64(decoding: response.bytes)
        wake(epochsBefore: epoch + 1)
        try await startChildren(context)
      case Self.value:
        await reach(.childData)
        childValues[task] = Int64(bitPattern: UInt64(decoding: response.bytes))
        try await finishIfComplete(context)
      default:
        break
      }
    } catch {
      print("task \(id): \(error)")
    }
  }

  func serveData(from task: Int, method: String, request: Payload, context: TaskContext)
    async throws -> Payload
  {
    // A request may reach this task before it has the data of the epoch (or before it
    // has even entered the epoch): wait, until the epoch ends.
    await reach(.beforeServe)
    while true {
      if epoch == context.epoch {
        if method == Self.param, let param {
          await reach(.afterServe)
          return Payload(param.bytes)
        }
        if method == Self.value, let value {
          await reach(.afterServe)
          return Payload(UInt64(bitPattern: value).bytes)
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

  /// Wakes every waiting `serveData` of an epoch before `limit` to look again.
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

  init(decoding bytes: [UInt8]) {
    precondition(bytes.count == 8, "expected 8 bytes, got \(bytes.count)")
    self = bytes.enumerated().reduce(0) { $0 | UInt64($1.element) << (8 * UInt64($1.offset)) }
  }
}
