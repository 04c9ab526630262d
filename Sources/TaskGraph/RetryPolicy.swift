/// Exponential backoff with a cap, as a pure value: the delay before retry `attempt`
/// (1-based) is `initial · multiplier^(attempt-1)`, capped at `maximum`, then reduced by
/// up to `jitter` of itself according to a random fraction the caller supplies.
public struct Backoff: Sendable, Hashable {
  /// The delay before the first retry.
  public var initial: Duration
  /// The growth factor per attempt (≥ 1).
  public var multiplier: Double
  /// The largest delay.
  public var maximum: Duration
  /// The fraction (0…1) of a delay that may be shaved off at random, to spread retries.
  public var jitter: Double

  /// A backoff policy; preconditions: `initial > 0`, `multiplier ≥ 1`, `maximum ≥ initial`,
  /// `0 ≤ jitter ≤ 1`.
  public init(initial: Duration, multiplier: Double, maximum: Duration, jitter: Double = 0) {
    precondition(initial > .zero, "initial backoff must be positive")
    precondition(multiplier >= 1, "backoff multiplier must be at least 1")
    precondition(maximum >= initial, "maximum backoff must be at least the initial one")
    precondition((0...1).contains(jitter), "jitter must be within 0...1")
    self.initial = initial
    self.multiplier = multiplier
    self.maximum = maximum
    self.jitter = jitter
  }

  /// 10 ms doubling up to 1 s, with 20 % jitter.
  public static var defaults: Backoff {
    Backoff(initial: .milliseconds(10), multiplier: 2, maximum: .seconds(1), jitter: 0.2)
  }

  /// The delay before retry `attempt` (≥ 1); `random` in 0..<1 selects the jitter.
  public func delay(attempt: Int, random: Double = 0) -> Duration {
    precondition(attempt >= 1, "attempts count from 1")
    let base = initial.seconds * pow(multiplier, Double(attempt - 1))
    let capped = min(base, maximum.seconds)
    let jittered = capped * (1 - jitter * min(max(random, 0), 1))
    return .nanoseconds(Int64((jittered * 1e9).rounded()))
  }
}

extension Duration {
  /// The duration in seconds, as a floating-point number.
  package var seconds: Double {
    let (s, attos) = components
    return Double(s) + Double(attos) * 1e-18
  }
}

private func pow(_ base: Double, _ exponent: Double) -> Double {
  // Integer exponents only, which is all backoff needs; avoids Foundation.
  var result = 1.0
  var n = Int(exponent)
  var b = base
  while n > 0 {
    if n & 1 == 1 { result *= b }
    b *= b
    n >>= 1
    if result > 1e300 { return .infinity }
  }
  return result
}

/// What to do after a data request failed: the failure policy of the requester, a pure
/// function of the error, the attempt count and the epochs involved.
public enum RetryDirective: Sendable, Hashable {
  /// Try again after `delay`, resolving the server's address afresh.
  case retry(after: Duration)
  /// Give up on the request without delivering anything (its epoch is over).
  case drop(reason: String)
  /// Give up and report a failure (the server rejected the request for good).
  case fail(reason: String)
}

/// The requester's failure policy for data requests.
///
/// Requests are retried across unavailability, deadlines and server replacement for as
/// long as their epoch is current; a stale-epoch refusal from a server that is *ahead*
/// ends the request (the requester will be told of the new epoch), one from a server that
/// is *behind* is retried (the server has not yet seen the new epoch). Handler failures
/// and oversize messages are not transient: they are retried `permanentFailureRetries`
/// times, then fail.
public struct RetryPolicy: Sendable, Hashable {
  /// The delays between attempts.
  public var backoff: Backoff
  /// The timeout of one attempt.
  public var attemptTimeout: Duration
  /// How often a `handlerFailed` or `messageTooLarge` error is retried before failing.
  public var permanentFailureRetries: Int

  /// A policy; see the properties.
  public init(backoff: Backoff, attemptTimeout: Duration, permanentFailureRetries: Int = 2) {
    precondition(attemptTimeout > .zero, "attempt timeout must be positive")
    precondition(permanentFailureRetries >= 0, "retries must not be negative")
    self.backoff = backoff
    self.attemptTimeout = attemptTimeout
    self.permanentFailureRetries = permanentFailureRetries
  }

  /// Default backoff, 5 s per attempt, 2 retries of permanent failures.
  public static var defaults: RetryPolicy {
    RetryPolicy(backoff: .defaults, attemptTimeout: .seconds(5))
  }

  /// The decision after attempt `attempt` (≥ 1) of a request of `requestEpoch` failed with
  /// `error`, while the requester is in `currentEpoch`; `random` (0..<1) picks the jitter.
  public func decide(
    error: TransportError, attempt: Int, requestEpoch: UInt64, currentEpoch: UInt64?,
    random: Double = 0
  ) -> RetryDirective {
    if let currentEpoch, currentEpoch != requestEpoch {
      return .drop(reason: "epoch \(requestEpoch) is over (now \(currentEpoch))")
    }
    switch error.code {
    case .staleEpoch:
      if let server = error.serverEpoch, server > requestEpoch {
        return .drop(reason: "server left epoch \(requestEpoch) for \(server)")
      }
      return .retry(after: backoff.delay(attempt: attempt, random: random))
    case .handlerFailed, .messageTooLarge:
      if attempt > permanentFailureRetries { return .fail(reason: error.description) }
      return .retry(after: backoff.delay(attempt: attempt, random: random))
    default:
      return .retry(after: backoff.delay(attempt: attempt, random: random))
    }
  }
}
