import Foundation
import Logging
import TaskGraph
import TaskGraphML

/// Writes the master's checkpoints in the background, so that an epoch never waits for one:
/// the optimizer's state is a value (its vectors are shared, not copied, until the next step
/// replaces them), encoded and written off the cooperative pool while training goes on.
///
/// At most one write runs at a time, in submission order. A checkpoint submitted while one
/// is being written waits; if a newer one arrives first, the waiting one is dropped (the
/// newer one supersedes it), so slow storage never builds a backlog. A checkpoint not yet on
/// disk is not needed for correctness: a master that dies first resumes from an older one
/// and, with BSP, reaches the same model.
actor CheckpointWriter {
  private let store: any CheckpointStore
  private let logger: Logger
  private var waiting: MasterCheckpoint?
  private var running: Task<Void, Never>?
  /// Checkpoints on disk, and those superseded before they were written.
  private(set) var written = 0
  private(set) var superseded = 0
  /// Milliseconds each written checkpoint took to encode, checksum, write and sync.
  private(set) var milliseconds: [Double] = []

  init(store: any CheckpointStore, logger: Logger) {
    self.store = store
    self.logger = logger
  }

  /// Queues `checkpoint` for writing, in place of any checkpoint still waiting.
  func submit(_ checkpoint: MasterCheckpoint) {
    if waiting != nil { superseded += 1 }
    waiting = checkpoint
    if running == nil { running = Task { await self.drain() } }
  }

  /// Returns once every submitted checkpoint is written (or has failed, with a warning).
  func flush() async {
    while let task = running { await task.value }
  }

  /// Drops the waiting checkpoint (the master is being killed); a write under way finishes.
  func discard() {
    waiting = nil
  }

  private func drain() async {
    while let checkpoint = waiting {
      waiting = nil
      let start = DispatchTime.now().uptimeNanoseconds
      do {
        let pieces = try await Offload.run(priority: .background) {
          try VectorSink.encodePieces(checkpoint)
        }
        let parts = pieces.map { piece -> Checkpoint.Part in
          switch piece {
          case .bytes(let b): .bytes(b)
          case .doubles(let d): .doubles(d)
          }
        }
        try await store.save(Checkpoint(epoch: checkpoint.epoch, parts: parts), name: "master")
        written += 1
        milliseconds.append(Double(DispatchTime.now().uptimeNanoseconds - start) / 1e6)
      } catch {
        logger.warning("checkpoint at epoch \(checkpoint.epoch) failed: \(error)")
      }
    }
    running = nil
  }
}
