import Foundation
import TaskGraphLinalg
import TaskGraphML

/// Runs an `Optimizer` on a thread of its own and turns its synchronous `evaluate`
/// callbacks into events an asynchronous parameter server can answer one epoch at a time.
///
/// The optimizer's code stays sequential (each line-search trial calls `evaluate` and
/// waits); the driver blocks its own thread — never one of the concurrency pool's — until
/// the server `deliver`s the summed gradients of the workers.
final class OptimizerDriver: @unchecked Sendable {
  // Unchecked Sendable: `result` is written by `deliver` and read by the driver thread,
  // each access under `lock`, and the semaphore orders the write before the read; the
  // optimizer itself lives only on the driver thread until `finished` hands it over.

  enum Event: Sendable {
    /// The optimizer needs the gradient sums at this request.
    case evaluate(EvaluationRequest)
    /// A step ended; the optimizer's state, for a checkpoint, and the step's gradient norm.
    case stepped(optimizer: Optimizer, objectives: [Double], gradientNorm: Double)
    /// The run ended.
    case finished(optimizer: Optimizer, objectives: [Double], reason: StopReason, seconds: Double)
    /// The optimizer threw.
    case failed(String)
  }

  private let lock = NSLock()
  private let ready = DispatchSemaphore(value: 0)
  private var result: GradientSums?
  private var cancelled = false
  private let continuation: AsyncStream<Event>.Continuation
  /// The driver's events, in order.
  let events: AsyncStream<Event>

  init() {
    (events, continuation) = AsyncStream.makeStream(of: Event.self)
  }

  /// Starts the optimizer loop on a new thread.
  func start(
    optimizer: Optimizer, stop: StopCriteria, history: [Double],
    progress: @escaping @Sendable (OptimizationProgress) -> Void
  ) {
    let thread = Thread { [self] in
      var optimizer = optimizer
      var objectives: [Double] = []
      var gradientNorm = Double.nan
      do {
        let record = try Trainer.run(
          &optimizer, stop: stop, clock: SystemTrainingClock(),
          progress: { p in
            gradientNorm = p.gradientNorm
            progress(p)
          },
          afterStep: { [self] opt, objs in
            objectives = objs
            continuation.yield(
              .stepped(optimizer: opt, objectives: objs, gradientNorm: gradientNorm))
          },
          history: history, evaluate: { [self] request in try evaluate(request) })
        objectives = record.objectives
        continuation.yield(
          .finished(
            optimizer: optimizer, objectives: objectives, reason: record.reason,
            seconds: record.seconds))
      } catch {
        continuation.yield(.failed("\(error)"))
      }
      continuation.finish()
    }
    thread.name = "taskgraph.optimizer"
    thread.stackSize = 8 << 20
    thread.start()
  }

  private func evaluate(_ request: EvaluationRequest) throws -> GradientSums {
    continuation.yield(.evaluate(request))
    ready.wait()
    lock.lock()
    defer { lock.unlock() }
    if cancelled { throw CancellationError() }
    let r = result!
    result = nil
    return r
  }

  /// Answers the pending `evaluate` event.
  func deliver(_ sums: GradientSums) {
    lock.lock()
    result = sums
    lock.unlock()
    ready.signal()
  }

  /// Stops the driver thread at its next evaluation (the node is going away).
  func cancel() {
    lock.lock()
    cancelled = true
    lock.unlock()
    ready.signal()
  }
}

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
enum Offload {
  private static let pool = OffloadThreads()

  static func run<T: Sendable>(_ body: @escaping @Sendable () throws -> T) async throws -> T {
    try await withCheckedThrowingContinuation { c in
      pool.submit { c.resume(with: Result(catching: body)) }
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
