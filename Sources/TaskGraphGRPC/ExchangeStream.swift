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
final class ExchangeStream: Sendable {
  private struct Pending {
    var continuation: CheckedContinuation<DataReply, any Error>
    var timer: Task<Void, Never>?
  }

  private struct State {
    var nextCall: UInt64 = 0
    var pending: [UInt64: Pending] = [:]
    /// Set when the stream has ended: the error every call gets from then on.
    var ended: TransportError?
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
    return try await withTaskCancellationHandler {
      try await withCheckedThrowingContinuation { continuation in
        let refusal: TransportError? = state.withLock { state in
          if let ended = state.ended { return ended }
          state.pending[call] = Pending(continuation: continuation, timer: nil)
          return nil
        }
        if let refusal {
          continuation.resume(throwing: refusal)
          return
        }
        let timer = Task { [weak self, address] in
          do { try await Task.sleep(for: timeout) } catch { return }
          self?.complete(
            call,
            with: .failure(
              TransportError(
                code: .deadlineExceeded, message: "no response from \(address) in \(timeout)")))
        }
        let registered = state.withLock { state in
          guard state.pending[call] != nil else { return false }
          state.pending[call]?.timer = timer
          return true
        }
        if !registered { timer.cancel() }
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
    pending.timer?.cancel()
    pending.continuation.resume(with: result)
  }

  /// Marks the stream ended and fails every call in flight with `error`.
  private func end(with error: TransportError) {
    let pending = state.withLock { state in
      if state.ended == nil { state.ended = error }
      defer { state.pending = [:] }
      return state.pending
    }
    outbound.finish()
    for (_, call) in pending {
      call.timer?.cancel()
      call.continuation.resume(throwing: error)
    }
  }
}
