/// A saved checkpoint: opaque bytes tagged with the epoch they were taken at.
public struct Checkpoint: Sendable, Equatable {
  /// The epoch the checkpoint belongs to.
  public var epoch: UInt64
  /// The checkpoint's contents, as written by the task.
  public var data: [UInt8]
  public init(epoch: UInt64, data: [UInt8]) {
    self.epoch = epoch
    self.data = data
  }
}

/// Durable storage for a task's checkpoints.
///
/// `save` is atomic (a reader sees the whole checkpoint or none of it) and checksummed;
/// `latest` returns the newest checkpoint whose checksum verifies, skipping (and
/// reporting) corrupted ones. The local-directory store is the embedded default; on a
/// cluster the directory is on a shared filesystem.
public protocol CheckpointStore: Sendable {
  /// Saves `checkpoint` under `name` (e.g. `master`), keeping the newest few.
  func save(_ checkpoint: Checkpoint, name: String) async throws
  /// The newest checkpoint under `name` that verifies, or nil; `warnings` lists the
  /// corrupted ones skipped.
  func latest(name: String) async throws -> (checkpoint: Checkpoint, warnings: [String])?
  /// Epochs of the checkpoints kept under `name`, oldest first.
  func epochs(name: String) async throws -> [UInt64]
}
