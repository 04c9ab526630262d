import Foundation
import TaskGraphML

/// Deterministic fault injection for training jobs: which task is killed as it enters which
/// epoch. Each kill fires once; the replacement node that takes the slot over is not killed
/// again at the same point.
public struct ChaosPlan: Sendable, Equatable, CustomStringConvertible {
  /// One kill: task `task` dies (as if by SIGKILL: no exit hook, lease left to expire) when
  /// it enters epoch `epoch` — the master before broadcasting, a worker before answering.
  public struct Kill: Sendable, Hashable, Comparable {
    public var task: Int
    public var epoch: UInt64
    /// A worker acknowledges the round's request and dies just after, before its answer
    /// leaves (as a process killed between the two does): the master must ask the node
    /// that takes the slot over.
    public var afterAcknowledging: Bool
    public init(task: Int, epoch: UInt64, afterAcknowledging: Bool = false) {
      self.task = task
      self.epoch = epoch
      self.afterAcknowledging = afterAcknowledging
    }
    public static func < (a: Kill, b: Kill) -> Bool { (a.epoch, a.task) < (b.epoch, b.task) }
  }

  /// The kills, in epoch order.
  public var kills: [Kill]

  public init(kills: [Kill] = []) { self.kills = kills.sorted() }

  /// `killWorkers` worker kills and `killMaster` master kills at distinct epochs drawn by
  /// `seed` from `epochs` (worker ids drawn from 1…workers).
  public static func random(
    workers: Int, killWorkers: Int, killMaster: Int, epochs: ClosedRange<UInt64>, seed: UInt64
  ) -> ChaosPlan {
    var rng = SplitMix64(seed: seed)
    var used = Set<UInt64>()
    var kills: [Kill] = []
    func epoch() -> UInt64 {
      for _ in 0..<10_000 {
        let e = UInt64.random(in: epochs, using: &rng)
        if used.insert(e).inserted { return e }
      }
      return epochs.upperBound
    }
    for _ in 0..<killMaster { kills.append(Kill(task: 0, epoch: epoch())) }
    for _ in 0..<killWorkers {
      kills.append(Kill(task: Int.random(in: 1...max(1, workers), using: &rng), epoch: epoch()))
    }
    return ChaosPlan(kills: kills)
  }

  /// Parses `kill-workers=K,kill-master=M` (either part optional).
  public static func parse(
    _ text: String, workers: Int, seed: UInt64, epochs: ClosedRange<UInt64>
  ) throws -> ChaosPlan {
    var kw = 0
    var km = 0
    for part in text.split(separator: ",") {
      let kv = part.split(separator: "=", maxSplits: 1).map(String.init)
      guard kv.count == 2, let n = Int(kv[1]), n >= 0 else {
        throw TrainingError(
          code: .invalidConfiguration,
          message: "--chaos: expected kill-workers=K,kill-master=M, found '\(part)'")
      }
      switch kv[0] {
      case "kill-workers": kw = n
      case "kill-master": km = n
      default:
        throw TrainingError(
          code: .invalidConfiguration, message: "--chaos: unknown fault '\(kv[0])'")
      }
    }
    return random(workers: workers, killWorkers: kw, killMaster: km, epochs: epochs, seed: seed)
  }

  public var description: String {
    kills.map { "\($0.task == 0 ? "master" : "worker \($0.task)")@epoch \($0.epoch)" }.joined(
      separator: ", ")
  }
}

/// Which kills of a plan have fired, shared by every task of an embedded job.
final class ChaosState: @unchecked Sendable {
  // Unchecked Sendable: `fired` is only touched under `lock`.
  private let lock = NSLock()
  private var pending: Set<ChaosPlan.Kill>
  private(set) var fired: [ChaosPlan.Kill] = []

  init(_ plan: ChaosPlan) { pending = Set(plan.kills) }

  /// True exactly once for each planned (task, epoch, kind).
  func shouldKill(task: Int, epoch: UInt64, afterAcknowledging: Bool = false) -> Bool {
    lock.lock()
    defer { lock.unlock() }
    let k = ChaosPlan.Kill(task: task, epoch: epoch, afterAcknowledging: afterAcknowledging)
    guard pending.remove(k) != nil else { return false }
    fired.append(k)
    return true
  }
}
