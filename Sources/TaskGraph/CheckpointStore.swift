import Foundation

/// A saved checkpoint: opaque bytes tagged with the epoch they were taken at.
///
/// The bytes may be given in parts (e.g. a header and a task's large vectors as they are in
/// memory): a store writes and checksums them one after the other, so a checkpoint of
/// hundreds of megabytes is never gathered into one buffer first.
public struct Checkpoint: Sendable, Equatable {
  /// One piece of a checkpoint's bytes.
  public typealias Part = Payload.Part

  /// The epoch the checkpoint belongs to.
  public var epoch: UInt64
  /// The checkpoint's contents, as written by the task, in order.
  public var parts: [Part]

  /// A checkpoint of `data`.
  public init(epoch: UInt64, data: [UInt8]) {
    self.epoch = epoch
    self.parts = [.bytes(data)]
  }

  /// A checkpoint whose contents are `parts` one after the other.
  public init(epoch: UInt64, parts: [Part]) {
    self.epoch = epoch
    self.parts = parts
  }

  /// The contents' size in bytes.
  public var count: Int { Payload(parts: parts).count }

  /// The contents as one array (no copy when they are one part of bytes, as read back).
  public var data: [UInt8] { Payload(parts: parts).bytes }

  /// Equal epochs and equal bytes, however they are split into parts.
  public static func == (a: Checkpoint, b: Checkpoint) -> Bool {
    a.epoch == b.epoch && a.data == b.data
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
