/// A data request's identity: who asked whom, in which epoch, with which request id.
public struct RequestKey: Sendable, Hashable {
  /// The requesting task.
  public var from: Int
  /// The serving task.
  public var to: Int
  /// The epoch of the request.
  public var epoch: UInt64
  /// The requester's id of the request.
  public var id: UInt64

  /// A key; see the properties.
  public init(from: Int, to: Int, epoch: UInt64, id: UInt64) {
    self.from = from
    self.to = to
    self.epoch = epoch
    self.id = id
  }
}

/// A node's epoch bookkeeping, I/O-free: the current epoch, which callbacks of it may be
/// delivered, and which responses have been delivered already.
///
/// Every callback and response is checked against it before it reaches the task, so a task
/// sees callbacks of its current epoch only, and each response exactly once.
public struct EpochBook: Sendable {
  /// The epoch the node is in; nil before it has read one.
  public private(set) var current: UInt64?
  private var delivered: Set<RequestKey> = []

  /// A book that has not seen an epoch yet.
  public init() {}

  /// Moves to `epoch` if it is newer than the current one. Returns true if it moved (the
  /// caller then cancels the old epoch's work and calls `enterEpoch`).
  public mutating func advance(to epoch: UInt64) -> Bool {
    if let current, epoch <= current { return false }
    current = epoch
    delivered.removeAll()
    return true
  }

  /// Whether a callback belonging to `epoch` (a meta flag, an enterEpoch) may be delivered.
  public func isCurrent(_ epoch: UInt64) -> Bool { current == epoch }

  /// Records the delivery of the response to `key`; returns false (deliver nothing) if its
  /// epoch is not current or it has been delivered before.
  public mutating func acceptResponse(_ key: RequestKey) -> Bool {
    guard current == key.epoch else { return false }
    return delivered.insert(key).inserted
  }

  /// What a server in this book's epoch does with a request of `epoch`.
  public func admit(requestEpoch epoch: UInt64) -> Admission {
    guard let current, epoch <= current else { return .hold }
    return current == epoch ? .serve : .refuse(serverEpoch: current)
  }

  /// The server's answer to a request's epoch.
  public enum Admission: Sendable, Hashable {
    /// Serve it.
    case serve
    /// Hold it until the server has entered a newer epoch, then ask again: the request is
    /// of an epoch the server has not entered yet. Its requester read that epoch from the
    /// coordinator, so the server's watch is about to deliver it.
    case hold
    /// Refuse it with `TransportError.staleEpoch`, reporting the server's epoch.
    case refuse(serverEpoch: UInt64)
  }
}

/// The outcome of trying to claim a slot with `create`, decided from the create's result
/// and, if it failed, the value now at the key.
package enum SlotClaim: Sendable, Hashable {
  case claimed
  case taken(byNode: String)

  /// Decides whether `nodeID` holds the slot: created now, or created by an earlier
  /// attempt of the same node whose reply was lost.
  package static func decide(created: Bool, existing: AddressRecord?, nodeID: String) -> SlotClaim {
    if created { return .claimed }
    if let existing, existing.nodeID == nodeID { return .claimed }
    return .taken(byNode: existing?.nodeID ?? "?")
  }
}

/// How to advance the epoch idempotently: after a failed compare-and-swap from `from`,
/// re-read the epoch; the advance succeeded (perhaps by someone else or by an earlier
/// attempt of ours) if the stored epoch is now beyond `from`.
package enum EpochAdvance {
  package static func succeeded(casResult: Bool, from: UInt64, reread: UInt64?) -> Bool {
    casResult || (reread.map { $0 > from } ?? false)
  }
}
