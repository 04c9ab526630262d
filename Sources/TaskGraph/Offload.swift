import CTaskGraphKernels
import Foundation

/// Runs blocking work on threads of its own, off Swift concurrency's cooperative pool, so
/// that a long parse, decode or kernel call does not starve lease keep-alives and message
/// handling (the pool has one thread per core).
///
/// Not a Dispatch queue: on Linux, libdispatch counts its own busy threads, those of
/// private queues too, against one thread per core for all its non-overcommit work, which
/// includes the cooperative pool. CPU-bound work on as many Dispatch threads as cores
/// therefore stalled every task: a heartbeat on the pool stopped for 1.1–1.9 s while two
/// workers decoded a job of 300,000 features. The threads here are long-lived (a new thread
/// per call added ~2.5 ms per round at a million features), and a new one is started only
/// when every thread is busy, so a job never waits for another.
///
/// `compute` work (a worker's kernel) runs on threads a little below the others (nice 5),
/// so the scheduler favours the threads that move its results on (the cooperative pool, the
/// transport's event loops) when they wake, instead of sharing the cores with the kernels
/// as equals (they still wait for a core at times). At nice 0, with both cores of a 2-core
/// machine computing two workers' gradients, the blocks a kernel had finished waited for a
/// core until a kernel thread's time slice ended, and went out in a burst after the last
/// one: 2.2–2.7 ms from the end of the slowest kernel to the master holding its gradient
/// (d = 1,000,000, 2 workers over gRPC), against 0.77–0.93 ms at nice 2, 5 or 10. A kernel
/// yields only the little time that moving its blocks takes.
///
/// `background` work (checkpoint writes) runs on threads of lower scheduling priority (nice
/// 15): it takes the cores when training leaves them idle, and yields them otherwise, so a
/// checkpoint written during training slows the epochs little. Against a kernel at nice 5
/// it keeps the share of a core it had against nice 0 at nice 10 (scheduler weights 335 to
/// 36, 1024 to 110): at nice 10 it took three times that share from two computing workers,
/// and one run's checkpoint cost rose to 5.9% of the epoch.
package enum Offload {
  /// How urgently the work is wanted.
  package enum Priority: Sendable {
    /// As soon as possible (a result something waits for).
    case normal
    /// As soon as possible, but behind the work that moves results on (long computing whose
    /// results others wait for, sent while it runs or right after).
    case compute
    /// When the cores are otherwise idle (work nothing waits for).
    case background
  }

  private static let pool = OffloadThreads(nice: 0)
  private static let computePool = OffloadThreads(nice: 5)
  private static let backgroundPool = OffloadThreads(nice: 15)

  package static func run<T: Sendable>(
    priority: Priority = .normal, _ body: @escaping @Sendable () throws -> T
  ) async throws -> T {
    let threads =
      switch priority {
      case .normal: pool
      case .compute: computePool
      case .background: backgroundPool
      }
    return try await withCheckedThrowingContinuation { c in
      threads.submit { c.resume(with: Result(catching: body)) }
    }
  }
}

/// The threads of `Offload`: each takes queued jobs in order and waits when there are none.
///
/// `@unchecked Sendable`: `jobs` and `waiting` are only touched with `condition` locked.
private final class OffloadThreads: @unchecked Sendable {
  private let condition = NSCondition()
  private var jobs: [@Sendable () -> Void] = []
  /// Threads waiting for a job (a woken one counts until it runs again).
  private var waiting = 0
  /// The nice value each thread gives itself (0 leaves the process's).
  private let nice: Int32

  init(nice: Int32) { self.nice = nice }

  func submit(_ job: @escaping @Sendable () -> Void) {
    condition.lock()
    jobs.append(job)
    let startThread = waiting < jobs.count
    if !startThread { condition.signal() }
    condition.unlock()
    if startThread {
      let thread = Thread { [self] in serve() }
      thread.stackSize = 8 << 20
      thread.start()
    }
  }

  private func serve() {
    // Lowers this thread's priority only; where that is unsupported it keeps the process's.
    if nice != 0 { _ = tg_set_thread_nice(nice) }
    condition.lock()
    while true {
      while jobs.isEmpty {
        waiting += 1
        condition.wait()
        waiting -= 1
      }
      let job = jobs.removeFirst()
      condition.unlock()
      job()
      condition.lock()
    }
  }
}
