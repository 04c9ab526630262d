/// An error from training or from reading and writing model files.
public struct TrainingError: Error, CustomStringConvertible, Sendable {
  /// What went wrong, in a form code can switch on.
  public struct Code: Hashable, Sendable, CustomStringConvertible {
    private enum Wrapped: Hashable, Sendable {
      case io, badModelFile, unsupportedVersion, invalidConfiguration, mismatch, solverFailed
    }
    private let wrapped: Wrapped
    private init(_ wrapped: Wrapped) { self.wrapped = wrapped }
    /// Reading or writing a file failed.
    public static let io = Code(.io)
    /// A model file is not valid JSON of the expected shape.
    public static let badModelFile = Code(.badModelFile)
    /// A model file has a format version this build does not read.
    public static let unsupportedVersion = Code(.unsupportedVersion)
    /// The training configuration is inconsistent.
    public static let invalidConfiguration = Code(.invalidConfiguration)
    /// Data or configuration do not match what a job or model expects.
    public static let mismatch = Code(.mismatch)
    /// The numerical solver failed.
    public static let solverFailed = Code(.solverFailed)
    public var description: String { String(describing: wrapped) }
  }

  /// The error code.
  public var code: Code
  /// A one-line, human-readable explanation naming the file where one is involved.
  public var message: String
  /// The underlying error, if any.
  public var cause: (any Error)?

  public init(code: Code, message: String, cause: (any Error)? = nil) {
    self.code = code
    self.message = message
    self.cause = cause
  }

  public var description: String { message }
}
