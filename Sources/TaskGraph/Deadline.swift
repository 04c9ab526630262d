import Synchronization

/// Runs `operation` in a new task and returns its result, or throws `onTimeout()` once
/// `timeout` has passed, or `CancellationError` if the caller is cancelled — whichever
/// comes first. On timeout or cancellation the operation's task is cancelled and left to
/// finish on its own (an operation that ignores cancellation cannot delay the caller).
package func withDeadline<T: Sendable>(
  _ timeout: Duration,
  onTimeout: @escaping @Sendable () -> any Error,
  _ operation: @escaping @Sendable () async throws -> T
) async throws -> T {
  let gate = OnceGate<T>()
  return try await withTaskCancellationHandler {
    try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<T, any Error>) in
      gate.install(continuation)
      let work = Task {
        do { gate.resume(.success(try await operation())) } catch { gate.resume(.failure(error)) }
      }
      let timer = Task {
        try? await Task.sleep(for: timeout)
        if !Task.isCancelled { gate.resume(.failure(onTimeout())) }
      }
      gate.onResume {
        work.cancel()
        timer.cancel()
      }
    }
  } onCancel: {
    gate.resume(.failure(CancellationError()))
  }
}

/// Resumes a continuation exactly once, from whichever of several racing tasks gets there
/// first; a result that arrives before the continuation is installed is kept for it.
private final class OnceGate<T: Sendable>: Sendable {
  private struct State {
    var continuation: CheckedContinuation<T, any Error>?
    var early: Result<T, any Error>?
    var done = false
    var cleanup: (@Sendable () -> Void)?
  }
  private let state = Mutex(State())

  func install(_ continuation: CheckedContinuation<T, any Error>) {
    let early: Result<T, any Error>? = state.withLock { s in
      if let early = s.early {
        s.early = nil
        return early
      }
      s.continuation = continuation
      return nil
    }
    if let early { continuation.resume(with: early) }
  }

  func onResume(_ cleanup: @escaping @Sendable () -> Void) {
    let runNow = state.withLock { s in
      if s.done { return true }
      s.cleanup = cleanup
      return false
    }
    if runNow { cleanup() }
  }

  func resume(_ result: Result<T, any Error>) {
    let (continuation, cleanup): (CheckedContinuation<T, any Error>?, (@Sendable () -> Void)?) =
      state.withLock { s in
        if s.done { return (nil, nil) }
        s.done = true
        let c = s.continuation
        s.continuation = nil
        if c == nil { s.early = result }
        let cleanup = s.cleanup
        s.cleanup = nil
        return (c, cleanup)
      }
    continuation?.resume(with: result)
    cleanup?()
  }
}
