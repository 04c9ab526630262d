/// An entry of the coordinator's key-value space.
public struct KeyValue: Sendable, Equatable {
  /// The key, a `/`-separated path such as `/taskgraph/job/epoch`.
  public var key: String
  /// The value bytes.
  public var value: [UInt8]
  /// The revision at which the key was created (0 for a key that does not exist).
  public var createRevision: Int64
  /// The revision of the key's latest modification.
  public var modRevision: Int64
  /// The lease the key is attached to, if any; the key is deleted when the lease expires.
  public var lease: LeaseID?

  public init(
    key: String, value: [UInt8], createRevision: Int64, modRevision: Int64, lease: LeaseID? = nil
  ) {
    self.key = key
    self.value = value
    self.createRevision = createRevision
    self.modRevision = modRevision
    self.lease = lease
  }

  /// The value decoded as UTF-8.
  public var string: String { String(decoding: value, as: UTF8.self) }
}

/// A lease granted by a coordinator: keys attached to it vanish when it is not kept alive.
public struct LeaseID: Hashable, Sendable, CustomStringConvertible {
  /// The coordinator's identifier for the lease (etcd's lease ID).
  public var rawValue: Int64
  public init(_ rawValue: Int64) { self.rawValue = rawValue }
  public var description: String { String(rawValue, radix: 16) }
}

/// A change seen by a watch.
public enum WatchEvent: Sendable, Equatable {
  /// A key was created or modified.
  case put(KeyValue)
  /// A key was deleted (explicitly or by lease expiry) at `revision`.
  case delete(key: String, revision: Int64)

  /// The key the event concerns.
  public var key: String {
    switch self {
    case .put(let kv): kv.key
    case .delete(let key, _): key
    }
  }

  /// The revision at which the event happened.
  public var revision: Int64 {
    switch self {
    case .put(let kv): kv.modRevision
    case .delete(_, let revision): revision
    }
  }
}

/// Coordination for a job: a small, strongly consistent key-value store with leases,
/// atomic create and compare-and-swap, and watches that can resume from a revision.
///
/// This is the subset of etcd v3 that the runtime needs. The runtime lays out a job on top
/// of it (`/taskgraph/{job}/epoch`, `/status`, `/tasks/{id}/address`, …). Two
/// implementations ship: the embedded in-memory coordinator (one process, the default) and
/// the etcd coordinator in `TaskGraphEtcd`.
///
/// Implementations retry transient failures themselves where that is safe; a call that may
/// or may not have been applied before a failure (a retried `create` or `compareAndSwap`)
/// must be handled by the caller by re-reading, which is why values written by the runtime
/// carry the writer's identity.
public protocol Coordinator: Sendable {
  /// The entry at `key`, or nil.
  func get(_ key: String) async throws -> KeyValue?
  /// All entries whose key starts with `prefix`, sorted by key, and the store's revision
  /// at the time of the read (to start a watch from `revision + 1` without missing events).
  func getPrefix(_ prefix: String) async throws -> (entries: [KeyValue], revision: Int64)
  /// Writes `value` at `key`, attached to `lease` if given. Returns the new revision.
  @discardableResult
  func put(_ key: String, _ value: [UInt8], lease: LeaseID?) async throws -> Int64
  /// Deletes `key` if present.
  func delete(_ key: String) async throws
  /// Atomically creates `key` only if it does not exist (`create_revision == 0`).
  /// Returns true if this call created it.
  func create(_ key: String, _ value: [UInt8], lease: LeaseID?) async throws -> Bool
  /// Atomically replaces the value at `key` with `new` only if it currently equals
  /// `expected`. Returns true if this call replaced it.
  func compareAndSwap(_ key: String, expected: [UInt8], new: [UInt8]) async throws -> Bool
  /// Grants a lease that expires `ttl` after its last keep-alive.
  func grantLease(ttl: Duration) async throws -> LeaseID
  /// Refreshes `lease`. Returns false if it has already expired.
  func keepAlive(_ lease: LeaseID) async throws -> Bool
  /// Revokes `lease`, deleting every key attached to it.
  func revokeLease(_ lease: LeaseID) async throws
  /// Events for keys under `prefix` from `revision` on (inclusive), in revision order.
  /// The stream resumes across reconnects without losing or repeating events; it ends
  /// when the consuming task is cancelled, and throws only on an unrecoverable failure.
  func watch(prefix: String, fromRevision revision: Int64) -> AsyncThrowingStream<
    WatchEvent, any Error
  >
}

/// An error from a coordinator.
public struct CoordinatorError: Error, CustomStringConvertible, Sendable {
  /// What went wrong, in a form code can switch on.
  public struct Code: Hashable, Sendable, CustomStringConvertible {
    private enum Wrapped: Hashable, Sendable {
      case unavailable, leaseExpired, jobNotFound, jobExists, jobFull, invalidArgument,
        internalError
    }
    private let wrapped: Wrapped
    private init(_ wrapped: Wrapped) { self.wrapped = wrapped }
    /// The coordinator cannot be reached.
    public static let unavailable = Code(.unavailable)
    /// A lease has expired.
    public static let leaseExpired = Code(.leaseExpired)
    /// The named job does not exist.
    public static let jobNotFound = Code(.jobNotFound)
    /// A job of that name already exists.
    public static let jobExists = Code(.jobExists)
    /// Every task slot of the job is taken.
    public static let jobFull = Code(.jobFull)
    /// A request was malformed.
    public static let invalidArgument = Code(.invalidArgument)
    /// Anything else.
    public static let internalError = Code(.internalError)
    public var description: String { String(describing: wrapped) }
  }

  /// The error code.
  public var code: Code
  /// A human-readable explanation.
  public var message: String
  /// The underlying error, if any.
  public var cause: (any Error)?

  public init(code: Code, message: String, cause: (any Error)? = nil) {
    self.code = code
    self.message = message
    self.cause = cause
  }

  public var description: String {
    if let cause { return "\(message) (\(code)): \(cause)" }
    return "\(message) (\(code))"
  }
}
