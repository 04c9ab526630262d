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
