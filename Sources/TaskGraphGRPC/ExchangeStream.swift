import GRPCCore
import GRPCNIOTransportHTTP2
import Synchronization
import TaskGraph

/// One `Exchange` stream to a server: many data requests in flight on one HTTP/2 stream,
/// each numbered, each answered by the reply that carries its number.
///
/// A unary call opens and closes an HTTP/2 stream and sends headers and trailers each
/// time; on a stream that stays open a request costs one message each way. When the
/// stream ends, for whatever reason, every call in flight fails with the stream's error
/// (`unavailable` unless it was more specific) and so does every later call: the
/// transport then opens a new stream.
///
/// Deadlines are kept by one sweeper task per stream that sleeps until the earliest
/// deadline in flight, not by a timer per request: calls mostly end long before their
/// deadline, and arming and cancelling a timer for each cost more than the call itself.
final class ExchangeStream: Sendable {
  private struct Pending {
    var continuation: CheckedContinuation<DataReply, any Error>
    var deadline: ContinuousClock.Instant
    var timeout: Duration
  }

  private struct Sweeper {
    var generation: Int
    /// When it wakes next; no call in flight has an earlier deadline.
    var target: ContinuousClock.Instant
    var task: Task<Void, Never>?
  }

  private struct State {
    var nextCall: UInt64 = 0
    var pending: [UInt64: Pending] = [:]
    /// Set when the stream has ended: the error every call gets from then on.
    var ended: TransportError?
    var sweeper: Sweeper?
    var nextSweeper = 0
  }

  private let state = Mutex(State())
  private let outbound: AsyncStream<Numbered<DataRequest>>.Continuation
  private let runner = Mutex<Task<Void, Never>?>(nil)
  private let address: String

  /// Opens the stream on `client` (the client's connections must be running) to the
  /// server at `address`, with `options` for the stream as a whole.
  init(client: GRPCClient<HTTP2ClientTransport.Posix>, address: String, options: CallOptions) {
    self.address = address
    let (requests, outbound) = AsyncStream<Numbered<DataRequest>>.makeStream()
    self.outbound = outbound
    let task = Task { [self] in
      let failure: TransportError
      do {
        try await client.bidirectionalStreaming(
          request: StreamingClientRequest(of: Numbered<DataRequest>.self) { writer in
            for await request in requests { try await writer.write(request) }
          },
          descriptor: Taskgraph_Transport_V1_DataTransport.Method.Exchange.descriptor,
          serializer: DataRequestSerializer(), deserializer: DataReplyDeserializer(),
          options: options
        ) { response in
          // However the responses end, the request side ends too.
          defer { outbound.finish() }
          for try await reply in response.messages {
            self.complete(reply.call, with: .success(reply.message))
          }
        }
        failure = TransportError(code: .unavailable, message: "stream to \(address) ended")
      } catch let error as RPCError {
        failure = GRPCTransport.transportError(error, address: address)
      } catch {
        failure = TransportError(
          code: .unavailable, message: "stream to \(address) failed: \(error)")
      }
      self.end(with: failure)
    }
    runner.withLock { $0 = task }
  }

  /// Whether the stream has ended (calls on it fail at once).
  var hasEnded: Bool { state.withLock { $0.ended != nil } }

  /// Sends `request` and waits for its reply, for at most `timeout`.
  ///
  /// - Throws: `TransportError` `deadlineExceeded` after `timeout`, or the stream's error
  ///   if it ends first; `CancellationError` if the calling task is cancelled.
  func call(_ request: DataRequest, timeout: Duration) async throws -> DataReply {
    let call = state.withLock { state in
      state.nextCall += 1
      return state.nextCall
    }
    let deadline = ContinuousClock.now.advanced(by: timeout)
    return try await withTaskCancellationHandler {
      try await withCheckedThrowingContinuation { continuation in
        let pending = Pending(continuation: continuation, deadline: deadline, timeout: timeout)
        let admitted: Result<(start: Int, replaced: Sweeper?)?, TransportError> = state.withLock {
          state in
          if let ended = state.ended { return .failure(ended) }
          state.pending[call] = pending
          // The sweeper sleeps until the earliest deadline: start one for this call if it
          // has the earliest, replacing the one that sleeps longer.
          if let sweeper = state.sweeper, sweeper.target <= deadline { return .success(nil) }
          let replaced = state.sweeper
          state.nextSweeper += 1
          state.sweeper = Sweeper(generation: state.nextSweeper, target: deadline, task: nil)
          return .success((state.nextSweeper, replaced))
        }
        switch admitted {
        case .failure(let refusal):
          continuation.resume(throwing: refusal)
          return
        case .success(let start):
          if let start {
            start.replaced?.task?.cancel()
            startSweeper(generation: start.start)
          }
        }
        outbound.yield(Numbered(call: call, message: request))
        if Task.isCancelled { complete(call, with: .failure(CancellationError())) }
      }
    } onCancel: {
      complete(call, with: .failure(CancellationError()))
    }
  }

  /// Sends no more requests: the server answers those in flight, then the stream ends.
  func finish() { outbound.finish() }

  /// Ends the stream at once: calls in flight fail with `unavailable`; waits for its task.
  func close() async {
    outbound.finish()
    let task = runner.withLock { $0 }
    task?.cancel()
    await task?.value
    end(with: TransportError(code: .unavailable, message: "stream to \(address) closed"))
  }

  /// Resumes the caller of `call`, if it is still waiting.
  private func complete(_ call: UInt64, with result: Result<DataReply, any Error>) {
    guard let pending = state.withLock({ $0.pending.removeValue(forKey: call) }) else { return }
    pending.continuation.resume(with: result)
  }

  /// Starts the task of sweeper `generation`, unless it has been replaced already.
  private func startSweeper(generation: Int) {
    let task = Task { [weak self] in
      guard let self else { return }
      await self.sweep(generation: generation)
    }
    let current = state.withLock { state -> Bool in
      guard state.sweeper?.generation == generation else { return false }
      state.sweeper?.task = task
      return true
    }
    if !current { task.cancel() }
  }

  /// Sleeps until the earliest deadline, fails the calls that are past theirs, and goes
  /// on while calls are in flight; returns when replaced or idle.
  private func sweep(generation: Int) async {
    var target = state.withLock { state in
      state.sweeper?.generation == generation ? state.sweeper?.target : nil
    }
    while let wake = target {
      do { try await Task.sleep(until: wake, clock: .continuous) } catch { return }
      let now = ContinuousClock.now
      let expired = state.withLock { state -> [Pending] in
        guard state.sweeper?.generation == generation else {
          target = nil
          return []
        }
        let due = state.pending.filter { $0.value.deadline <= now }
        for call in due.keys { state.pending[call] = nil }
        target = state.pending.values.map(\.deadline).min()
        if let target { state.sweeper?.target = target } else { state.sweeper = nil }
        return Array(due.values)
      }
      for call in expired {
        call.continuation.resume(
          throwing: TransportError(
            code: .deadlineExceeded, message: "no response from \(address) in \(call.timeout)"))
      }
    }
  }

  /// Marks the stream ended and fails every call in flight with `error`.
  private func end(with error: TransportError) {
    let (pending, sweeper) = state.withLock { state in
      if state.ended == nil { state.ended = error }
      defer {
        state.pending = [:]
        state.sweeper = nil
      }
      return (state.pending, state.sweeper)
    }
    outbound.finish()
    sweeper?.task?.cancel()
    for (_, call) in pending { call.continuation.resume(throwing: error) }
  }
}
