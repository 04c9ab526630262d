import Foundation
import GRPCCore
import GRPCNIOTransportHTTP2
import Synchronization
import TaskGraph

/// Feeds one watch stream: a Watch RPC on a connection of its own, reopened after any
/// failure from the revision after the last one delivered.
struct EtcdWatcher: Sendable {
  let configuration: EtcdConfiguration
  let key: Data
  let rangeEnd: Data
  /// First revision to deliver; 0 or less means "from now".
  let startRevision: Int64
  let keyPrefixLength: Int

  /// Runs until the task is cancelled or the watch fails for good, then finishes
  /// `continuation`.
  func run(_ continuation: AsyncThrowingStream<WatchEvent, any Error>.Continuation) async {
    let connection: EtcdConnection
    do {
      connection = try EtcdConnection(configuration)
    } catch {
      continuation.finish(throwing: error)
      return
    }
    let position = WatchPositionBox(WatchPosition(next: startRevision))
    var failures = 0
    while !Task.isCancelled {
      let generation: Int
      let client: EtcdGRPCClient
      do {
        (client, generation) = try connection.client()
      } catch {
        continuation.finish(throwing: error)
        await connection.close()
        return
      }
      let before = position.value
      do {
        try await stream(on: client, position: position) { continuation.yield($0) }
        // The server ended the stream without an error: reopen it.
      } catch let error as CoordinatorError {
        continuation.finish(throwing: error)
        await connection.close()
        return
      } catch {
        if Task.isCancelled { break }
      }
      connection.replace(generation: generation)
      failures = position.value == before ? failures + 1 : 1
      let wait =
        configuration.retry.backoff(afterAttempt: min(failures, 30))
        ?? configuration.retry.maxBackoff
      do { try await Task.sleep(for: wait) } catch { break }
    }
    await connection.close()
    continuation.finish(
      throwing: Task.isCancelled
        ? CoordinatorError(code: .unavailable, message: "watch ended: coordinator closed")
        : nil)
  }

  /// One Watch RPC from `position.next` on; returns or throws when the stream ends.
  private func stream(
    on client: EtcdGRPCClient, position: WatchPositionBox,
    deliver: @escaping @Sendable (WatchEvent) -> Void
  ) async throws {
    var create = Etcdserverpb_WatchCreateRequest()
    create.key = key
    create.rangeEnd = rangeEnd
    create.startRevision = max(0, position.value.next)
    var request = Etcdserverpb_WatchRequest()
    request.createRequest = create
    let finalRequest = request
    let (done, doneContinuation) = AsyncStream<Void>.makeStream()
    let prefixLength = keyPrefixLength
    try await Etcdserverpb_Watch.Client(wrapping: client).watch(
      requestProducer: { writer in
        try await writer.write(finalRequest)
        // Keep the request side open for as long as responses flow.
        for await _ in done {}
      },
      onResponse: { response in
        defer { doneContinuation.finish() }
        for try await message in response.messages {
          if message.canceled {
            if message.compactRevision > 0 {
              throw CoordinatorError(
                code: .internalError,
                message: """
                  etcd watch from revision \(position.value.next) failed: compacted up to \
                  revision \(message.compactRevision); re-read and watch again
                  """)
            }
            throw RPCError(
              code: .unavailable, message: "etcd cancelled the watch: \(message.cancelReason)")
          }
          if message.created {
            position.update { $0.created(atRevision: message.header.revision) }
            continue
          }
          // Deliver while holding the position, so a concurrent reader never sees it
          // ahead of what was delivered.
          position.update { position in
            for event in position.accept(message.events) {
              deliver(Self.watchEvent(event, prefixLength: prefixLength))
            }
          }
        }
      })
  }

  static func watchEvent(_ event: Mvccpb_Event, prefixLength: Int) -> WatchEvent {
    let key = EtcdCoordinator.stripPrefix(event.kv.key, length: prefixLength)
    switch event.type {
    case .delete:
      return .delete(key: key, revision: event.kv.modRevision)
    default:
      return .put(
        KeyValue(
          key: key, value: [UInt8](event.kv.value), createRevision: event.kv.createRevision,
          modRevision: event.kv.modRevision,
          lease: event.kv.lease == 0 ? nil : LeaseID(event.kv.lease)))
    }
  }
}

/// A watch position shared between the watch loop and a response handler.
final class WatchPositionBox: Sendable {
  private let state: Mutex<WatchPosition>
  init(_ position: WatchPosition) { state = Mutex(position) }
  var value: WatchPosition { state.withLock { $0 } }
  func update(_ body: (inout WatchPosition) -> Void) { state.withLock { body(&$0) } }
}

/// Where a watch stands: the next revision it must deliver. A pure value, so the
/// no-loss/no-repeat rule is testable without etcd.
struct WatchPosition: Sendable, Equatable {
  /// The first revision not yet delivered; 0 or less before a "from now" watch started.
  var next: Int64

  /// A watch created "from now" starts after the revision the server reports.
  mutating func created(atRevision revision: Int64) {
    if next <= 0 { next = revision + 1 }
  }

  /// The events of one response that were not delivered before, and advances past them.
  /// A response carries whole revisions (a transaction's events share one), so the filter
  /// uses the position at the start of the response.
  mutating func accept(_ events: [Mvccpb_Event]) -> [Mvccpb_Event] {
    let from = next
    let fresh = events.filter { $0.kv.modRevision >= from }
    if let last = fresh.last { next = max(next, last.kv.modRevision + 1) }
    return fresh
  }
}
