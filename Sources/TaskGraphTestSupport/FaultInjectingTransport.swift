import Synchronization
import TaskGraph

/// The faults a `FaultInjectingTransport` injects, as probabilities per attempt.
public struct FaultPlan: Sendable, Hashable {
  /// Probability that a request is lost before reaching the server (`unavailable`).
  public var dropRequest: Double
  /// Probability that the server handles the request but the response is lost
  /// (`deadlineExceeded`): the case that tests the server's duplicate detection.
  public var dropResponse: Double
  /// Probability that the request is delivered twice, concurrently.
  public var duplicate: Double
  /// Probability that the request, and separately the response, is held back by a random
  /// delay up to `maximumDelay`, so messages overtake each other.
  public var delay: Double
  /// The longest injected delay.
  public var maximumDelay: Duration

  /// A plan; probabilities within 0...1.
  public init(
    dropRequest: Double = 0, dropResponse: Double = 0, duplicate: Double = 0, delay: Double = 0,
    maximumDelay: Duration = .milliseconds(5)
  ) {
    for p in [dropRequest, dropResponse, duplicate, delay] {
      precondition((0...1).contains(p), "fault probabilities must be within 0...1")
    }
    self.dropRequest = dropRequest
    self.dropResponse = dropResponse
    self.duplicate = duplicate
    self.delay = delay
    self.maximumDelay = maximumDelay
  }

  /// No faults.
  public static var none: FaultPlan { FaultPlan() }
}

/// Counts of the faults injected so far.
public struct FaultCounts: Sendable, Hashable {
  /// Attempts seen.
  public var attempts = 0
  /// Requests dropped before the server.
  public var droppedRequests = 0
  /// Responses dropped after the server handled the request.
  public var droppedResponses = 0
  /// Requests delivered twice.
  public var duplicated = 0
  /// Requests or responses delayed.
  public var delayed = 0
  /// Duplicated requests whose two responses differed (should stay 0: the server answers
  /// a duplicate with the first response).
  public var mismatchedDuplicates = 0
}

/// A transport wrapper that drops, duplicates, delays and so reorders requests and
/// responses, deterministically from a seed.
///
/// The fate of an attempt depends only on the seed, the request's (job, from, to, epoch,
/// method, low 32 bits of id) and the attempt's number, not on thread scheduling; the
/// low bits of the id count requests per node, the high bits are a random per-node nonce.
public final class FaultInjectingTransport: Transport {
  private let inner: any Transport
  private let seed: UInt64
  private let plan: FaultPlan
  private struct State {
    var attempts: [String: Int] = [:]
    var counts = FaultCounts()
  }
  private let state = Mutex(State())

  /// Wraps `inner`, injecting the faults of `plan` chosen by a generator seeded by `seed`.
  public init(wrapping inner: any Transport, seed: UInt64, plan: FaultPlan) {
    self.inner = inner
    self.seed = seed
    self.plan = plan
  }

  /// The faults injected so far.
  public var counts: FaultCounts { state.withLock { $0.counts } }

  /// Starts a server for `handler`.
  public func startServer(host: String, handler: @escaping DataRequestHandler) async throws
    -> any TransportServer
  {
    try await inner.startServer(host: host, handler: handler)
  }

  /// Sends `request` to the server at `address`, with at most `timeout` to answer.
  public func send(_ request: DataRequest, to address: String, timeout: Duration) async throws
    -> Payload
  {
    let identity =
      "\(request.job)|\(request.from)|\(request.to)|\(request.epoch)|\(request.method)|\(request.id & 0xffff_ffff)"
    let attempt = state.withLock { s in
      s.attempts[identity, default: 0] += 1
      s.counts.attempts += 1
      return s.attempts[identity]!
    }
    var rng = SplitMix64(seed: seed ^ stableHash(identity) ^ (UInt64(attempt) &* 0x9e37_79b9))
    let dropRequest = rng.nextUnit() < plan.dropRequest
    let dropResponse = rng.nextUnit() < plan.dropResponse
    let duplicate = rng.nextUnit() < plan.duplicate
    let delayRequest = rng.nextUnit() < plan.delay
    let delayResponse = rng.nextUnit() < plan.delay
    let requestDelay = plan.maximumDelay * rng.nextUnit()
    let responseDelay = plan.maximumDelay * rng.nextUnit()

    if delayRequest {
      count { $0.delayed += 1 }
      try await Task.sleep(for: requestDelay)
    }
    if dropRequest {
      count { $0.droppedRequests += 1 }
      throw TransportError(code: .unavailable, message: "injected: request dropped")
    }
    let response: Payload
    if duplicate {
      count { $0.duplicated += 1 }
      let inner = inner
      let first = Task { try await inner.send(request, to: address, timeout: timeout) }
      let second = Task { try await inner.send(request, to: address, timeout: timeout) }
      let results = await (first.result, second.result)
      response = try results.0.get()
      // The duplicate must be answered identically (or fail on its own).
      if case .success(let other) = results.1, other != response {
        count { $0.mismatchedDuplicates += 1 }
      }
    } else {
      response = try await inner.send(request, to: address, timeout: timeout)
    }
    if dropResponse {
      count { $0.droppedResponses += 1 }
      throw TransportError(code: .deadlineExceeded, message: "injected: response dropped")
    }
    if delayResponse {
      count { $0.delayed += 1 }
      try await Task.sleep(for: responseDelay)
    }
    return response
  }

  private func count(_ update: (inout FaultCounts) -> Void) {
    state.withLock { update(&$0.counts) }
  }
}

/// FNV-1a 64 of the UTF-8 bytes: a hash that is the same in every process (unlike
/// `Hasher`, which is seeded per process).
private func stableHash(_ text: String) -> UInt64 {
  var h: UInt64 = 0xcbf2_9ce4_8422_2325
  for byte in text.utf8 {
    h ^= UInt64(byte)
    h &*= 0x0000_0100_0000_01b3
  }
  return h
}
