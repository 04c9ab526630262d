/// An error from training, evaluating or storing a model.
///
/// Caller bugs (shape mismatches, invalid configurations) trap instead; this error is for
/// conditions of the data or the environment: a singular system, an unreadable model file.
public struct MLError: Error, CustomStringConvertible, Sendable {
  /// What kind of failure this is. A struct over a private enum, so codes can be added.
  public struct Code: Hashable, Sendable, CustomStringConvertible {
    private enum Value: Hashable, Sendable {
      case singularSystem
      case invalidModelFile
      case fileAccess
      case invalidConfiguration
      case nonFinite
    }
    private let value: Value
    private init(_ value: Value) { self.value = value }

    /// The linear system of an exact solver is singular or not positive definite.
    public static let singularSystem = Code(.singularSystem)
    /// A model file could not be decoded.
    public static let invalidModelFile = Code(.invalidModelFile)
    /// A file could not be read or written.
    public static let fileAccess = Code(.fileAccess)
    /// A training configuration combines settings no solver can honour.
    public static let invalidConfiguration = Code(.invalidConfiguration)
    /// Sums of the data overflowed: its values are too large for the computation.
    public static let nonFinite = Code(.nonFinite)

    /// The code's name, e.g. `singularSystem`.
    public var description: String { String(describing: value) }
  }

  /// The kind of failure.
  public var code: Code
  /// A human explanation.
  public var message: String
  /// The underlying error, if any.
  public var cause: (any Error & Sendable)?

  /// An error with a code, message and optional cause.
  public init(code: Code, message: String, cause: (any Error & Sendable)? = nil) {
    self.code = code
    self.message = message
    self.cause = cause
  }

  /// The code, message and cause in one line.
  public var description: String {
    if let cause { return "\(code): \(message) (cause: \(cause))" }
    return "\(code): \(message)"
  }
}
