import Foundation

/// The keys of a job in the coordinator, all under `/taskgraph/{job}/`:
///
/// - `spec` — the job's `JobSpec` (JSON), written by the controller;
/// - `epoch` — the global epoch, a decimal string, advanced by compare-and-swap;
/// - `status` — `running`, or `done` once a task shut the job down;
/// - `tasks/{id}/address` — the node serving slot `id`, under that node's lease, as
///   `{nodeID} {address}` (the node id lets a retried create be recognised);
/// - `tasks/{id}/meta/{linkType}` — the task's latest meta flag, `{epoch} {meta}`;
/// - `standby/{nodeID}` — hot standbys waiting for a slot, under their leases;
/// - `records/{name}` — results published by tasks (e.g. a per-epoch aggregate).
public struct JobLayout: Sendable, Hashable {
  /// The job's name.
  public let job: String

  /// The layout of `job` (a non-empty name without `/`).
  public init(job: String) {
    precondition(!job.isEmpty && !job.contains("/"), "job name must be non-empty without '/'")
    self.job = job
  }

  /// `/taskgraph/{job}/`, the prefix of every key of the job.
  public var prefix: String { "/taskgraph/\(job)/" }
  /// The job spec key.
  public var spec: String { prefix + "spec" }
  /// The epoch key.
  public var epoch: String { prefix + "epoch" }
  /// The status key.
  public var status: String { prefix + "status" }
  /// The prefix of the task slots.
  public var tasksPrefix: String { prefix + "tasks/" }
  /// The prefix of the standbys.
  public var standbyPrefix: String { prefix + "standby/" }
  /// The prefix of published records.
  public var recordsPrefix: String { prefix + "records/" }
  /// The address key of slot `task`.
  public func address(_ task: Int) -> String { tasksPrefix + "\(task)/address" }
  /// The meta key of `task` over `linkType`.
  public func meta(_ task: Int, _ linkType: String) -> String {
    tasksPrefix + "\(task)/meta/\(linkType)"
  }
  /// The standby key of `nodeID`.
  public func standby(_ nodeID: String) -> String { standbyPrefix + nodeID }
  /// The key of record `name`.
  public func record(_ name: String) -> String { recordsPrefix + name }

  /// The value of `status` while the job runs.
  public static let running = "running"
  /// The value of `status` once the job has been shut down.
  public static let done = "done"

  /// What a key under the job prefix denotes.
  package enum Key: Equatable, Sendable {
    case spec, epoch, status
    case address(task: Int)
    case meta(task: Int, linkType: String)
    case standby(nodeID: String)
    case record(name: String)
    case other
  }

  /// Classifies `key` (a key under `prefix`).
  package func classify(_ key: String) -> Key {
    guard key.hasPrefix(prefix) else { return .other }
    let rest = key.dropFirst(prefix.count)
    switch rest {
    case "spec": return .spec
    case "epoch": return .epoch
    case "status": return .status
    default: break
    }
    let parts = rest.split(separator: "/", omittingEmptySubsequences: false)
    if parts.count == 3, parts[0] == "tasks", parts[2] == "address", let id = Int(parts[1]) {
      return .address(task: id)
    }
    if parts.count == 4, parts[0] == "tasks", parts[2] == "meta", let id = Int(parts[1]) {
      return .meta(task: id, linkType: String(parts[3]))
    }
    if parts.count == 2, parts[0] == "standby" { return .standby(nodeID: String(parts[1])) }
    if parts.count >= 2, parts[0] == "records" {
      return .record(name: parts.dropFirst().joined(separator: "/"))
    }
    return .other
  }
}

/// What the controller records about a job: its size and topology.
public struct JobSpec: Sendable, Hashable, Codable {
  /// The number of task slots.
  public var taskCount: Int
  /// A description of the topology (informative; the tasks bring their topology).
  public var topology: String

  /// A spec of `taskCount` slots.
  public init(taskCount: Int, topology: String) {
    precondition(taskCount >= 1, "a job needs at least one task")
    self.taskCount = taskCount
    self.topology = topology
  }

  /// The spec as stored (JSON).
  public var bytes: [UInt8] {
    // Encoding a struct of an Int and a String cannot fail.
    Array(try! JSONEncoder().encode(self))
  }

  /// Decodes a stored spec.
  public init(bytes: [UInt8]) throws {
    self = try JSONDecoder().decode(JobSpec.self, from: Data(bytes))
  }
}

/// The value of an address key: which node holds a slot, and where it serves.
package struct AddressRecord: Sendable, Hashable {
  package var nodeID: String
  package var address: String

  package init(nodeID: String, address: String) {
    self.nodeID = nodeID
    self.address = address
  }

  package var bytes: [UInt8] { Array("\(nodeID) \(address)".utf8) }

  package init?(_ bytes: [UInt8]) {
    let text = String(decoding: bytes, as: UTF8.self)
    guard let space = text.firstIndex(of: " ") else { return nil }
    nodeID = String(text[..<space])
    address = String(text[text.index(after: space)...])
  }
}

/// The value of a meta key: the epoch it was flagged in, and the meta string.
package struct MetaRecord: Sendable, Hashable {
  package var epoch: UInt64
  package var meta: String

  package init(epoch: UInt64, meta: String) {
    self.epoch = epoch
    self.meta = meta
  }

  package var bytes: [UInt8] { Array("\(epoch) \(meta)".utf8) }

  package init?(_ bytes: [UInt8]) {
    let text = String(decoding: bytes, as: UTF8.self)
    guard let space = text.firstIndex(of: " "), let epoch = UInt64(text[..<space]) else {
      return nil
    }
    self.epoch = epoch
    meta = String(text[text.index(after: space)...])
  }
}

/// Encodes an epoch as the coordinator stores it (decimal).
package func epochBytes(_ epoch: UInt64) -> [UInt8] { Array(String(epoch).utf8) }

/// Decodes a stored epoch.
package func parseEpoch(_ bytes: [UInt8]) -> UInt64? {
  UInt64(String(decoding: bytes, as: UTF8.self))
}
