/// When and how long to wait before retrying a failed etcd call: capped exponential
/// backoff over a bounded number of attempts. A plain value, so its schedule is testable
/// without a clock.
public struct EtcdRetryPolicy: Sendable, Hashable {
  /// Attempts per call, the first included; at least 1.
  public var maxAttempts: Int {
    didSet { precondition(maxAttempts >= 1, "maxAttempts must be at least 1") }
  }
  /// The wait after the first failed attempt.
  public var initialBackoff: Duration
  /// The longest wait between two attempts.
  public var maxBackoff: Duration
  /// The factor by which the wait grows after each failed attempt; at least 1.
  public var multiplier: Double {
    didSet { precondition(multiplier >= 1, "multiplier must be at least 1") }
  }

  /// Creates a policy.
  public init(maxAttempts: Int, initialBackoff: Duration, maxBackoff: Duration, multiplier: Double)
  {
    precondition(maxAttempts >= 1, "maxAttempts must be at least 1")
    precondition(multiplier >= 1, "multiplier must be at least 1")
    self.maxAttempts = maxAttempts
    self.initialBackoff = initialBackoff
    self.maxBackoff = maxBackoff
    self.multiplier = multiplier
  }

  /// 10 attempts, waits from 50 ms doubling up to 1 s: about 5 s of waiting in all, enough
  /// to ride out an etcd restart or a dropped connection.
  public static var defaults: Self {
    Self(maxAttempts: 10, initialBackoff: .milliseconds(50), maxBackoff: .seconds(1), multiplier: 2)
  }

  /// The wait before attempt `attempt + 1` after attempt `attempt` (1-based) failed, or nil
  /// when no attempt is left.
  public func backoff(afterAttempt attempt: Int) -> Duration? {
    guard attempt < maxAttempts else { return nil }
    var wait = initialBackoff
    for _ in 1..<attempt {
      wait = wait * multiplier
      if wait >= maxBackoff { return maxBackoff }
    }
    return min(wait, maxBackoff)
  }
}
