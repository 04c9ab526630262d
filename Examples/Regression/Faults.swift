import Foundation
import Synchronization
import TaskGraph
import TaskGraphTestSupport

/// The failures a process-mode run injects, parsed from `--fail` options.
///
/// - `master-at-epoch=E`: the process serving task 0 kills itself with SIGKILL as it enters
///   epoch E (once per job).
/// - `tasks=P%`: every non-master task kills itself with probability P at each of its
///   parent-data, child-data, before-serve and after-serve points (each point of each
///   task and epoch at most once per job), decided by a hash of the seed, the task, the
///   epoch and the point.
/// - `etcd-restart-at-epoch=E`: the launcher kills etcd and starts it again as the job
///   reaches epoch E.
struct FaultPlan: Sendable, Equatable {
  var masterAtEpoch: UInt64?
  var taskProbability: Double = 0
  var etcdRestartAtEpoch: UInt64?

  /// Parses the values of `--fail` options.
  init(_ specs: [String]) throws {
    for spec in specs {
      let parts = spec.split(separator: "=", maxSplits: 1).map(String.init)
      guard parts.count == 2 else { throw FaultPlanError(spec) }
      switch parts[0] {
      case "master-at-epoch":
        guard let e = UInt64(parts[1]), e >= 1 else { throw FaultPlanError(spec) }
        masterAtEpoch = e
      case "tasks":
        let text = parts[1].hasSuffix("%") ? String(parts[1].dropLast()) : parts[1]
        guard let p = Double(text), p >= 0, p <= 100 else { throw FaultPlanError(spec) }
        taskProbability = p / 100
      case "etcd-restart-at-epoch":
        guard let e = UInt64(parts[1]), e >= 1 else { throw FaultPlanError(spec) }
        etcdRestartAtEpoch = e
      default:
        throw FaultPlanError(spec)
      }
    }
  }

  /// Whether a task process has anything to inject.
  var affectsTasks: Bool { masterAtEpoch != nil || taskProbability > 0 }
}

/// An unreadable `--fail` value.
struct FaultPlanError: Error, CustomStringConvertible {
  let spec: String
  init(_ spec: String) { self.spec = spec }
  var description: String {
    "unknown failure \"\(spec)\"; expected master-at-epoch=E, tasks=P% or etcd-restart-at-epoch=E"
  }
}

/// Kills this process with SIGKILL at the fault points a `FaultPlan` selects.
///
/// Each fault fires once per job: before killing, the injector creates a marker file named
/// after the fault in `markerDirectory` with `O_EXCL`, so a replacement process that reaches
/// the same point again does not die again. Without a directory the faults are one-shot per
/// process only.
final class FaultInjector: Sendable {
  let plan: FaultPlan
  let seed: UInt64
  let markerDirectory: String?

  init(plan: FaultPlan, seed: UInt64, markerDirectory: String?) {
    self.plan = plan
    self.seed = seed
    self.markerDirectory = markerDirectory
  }

  /// The hook to give `RegressionTask`.
  var hook: RegressionTask.FaultHook {
    { [self] point, task, epoch in self.reached(point, task: task, epoch: epoch) }
  }

  func reached(_ point: RegressionTask.Point, task: Int, epoch: UInt64) {
    if task == 0, point == .enterEpoch, let e = plan.masterAtEpoch, epoch == e {
      fire("master-epoch-\(e)", what: "master (task 0) entering epoch \(e)")
    }
    guard task != 0, plan.taskProbability > 0 else { return }
    let index: UInt64
    switch point {
    case .parentData: index = 1
    case .childData: index = 2
    case .beforeServe: index = 3
    case .afterServe: index = 4
    case .enterEpoch: return
    }
    if Self.draw(seed: seed, task: task, epoch: epoch, point: index) < plan.taskProbability {
      fire(
        "task-\(task)-epoch-\(epoch)-\(point.rawValue)",
        what: "task \(task) at \(point) in epoch \(epoch)")
    }
  }

  /// A uniform value in 0..<1 determined by the seed, the task, the epoch and the point.
  static func draw(seed: UInt64, task: Int, epoch: UInt64, point: UInt64) -> Double {
    var rng = SplitMix64(seed: seed)
    var mixed = SplitMix64(seed: rng.next() ^ UInt64(task))
    mixed = SplitMix64(seed: mixed.next() ^ epoch)
    mixed = SplitMix64(seed: mixed.next() ^ point)
    return mixed.nextUnit()
  }

  private func fire(_ marker: String, what: String) {
    if let markerDirectory {
      let path = markerDirectory + "/" + marker
      let fd = open(path, O_CREAT | O_EXCL | O_WRONLY, 0o644)
      guard fd >= 0 else { return }  // fired already (by an earlier incarnation)
      close(fd)
    } else if !FaultInjector.firedInProcess.insert(marker) {
      return
    }
    FileHandle.standardError.write(Data("fault: SIGKILL of pid \(getpid()), \(what)\n".utf8))
    kill(getpid(), SIGKILL)
  }

  private static let firedInProcess = FiredSet()
}

/// Markers of faults fired in this process (when there is no marker directory).
final class FiredSet: Sendable {
  private let fired = Mutex<Set<String>>([])

  /// Inserts `marker`; false if it was there.
  func insert(_ marker: String) -> Bool {
    fired.withLock { $0.insert(marker).inserted }
  }
}
