import Foundation
import Subprocess
import Synchronization

#if canImport(Glibc)
  import Glibc
#endif
#if canImport(System)
  import System
#else
  import SystemPackage
#endif

/// A child process started for a test: it can be signalled (SIGKILL for crash tests) and
/// awaited. Started with swift-subprocess, whose children have no signals blocked (unlike
/// Foundation's `Process`, whose children ignore SIGTERM; see FINDINGS).
public final class ProcessHandle: Sendable {
  /// How a child process ended.
  public enum Exit: Sendable, Equatable, CustomStringConvertible {
    /// It exited with this status code.
    case exited(Int32)
    /// A signal (e.g. 9 for SIGKILL) ended it.
    case signalled(Int32)

    /// `exit N` or `signal N`.
    public var description: String {
      switch self {
      case .exited(let code): "exit \(code)"
      case .signalled(let signal): "signal \(signal)"
      }
    }
  }

  /// The executable's path or name, for messages.
  public let executable: String
  /// The child's process ID.
  public let pid: Int32

  private let execution: Mutex<Execution<NoInput, DiscardedOutput, DiscardedOutput>?>
  private let runner: Task<Exit, any Error>

  private init(
    executable: String, pid: Int32,
    execution: Execution<NoInput, DiscardedOutput, DiscardedOutput>, runner: Task<Exit, any Error>
  ) {
    self.executable = executable
    self.pid = pid
    self.execution = Mutex(execution)
    self.runner = runner
  }

  /// Starts `executable` (a path, or a name looked up in `PATH`) with `arguments`, its
  /// output discarded.
  ///
  /// - Parameter environment: extra variables on top of this process's environment.
  /// - Throws: if the executable cannot be started.
  public static func start(
    _ executable: String, arguments: [String] = [], environment: [String: String] = [:]
  ) async throws -> ProcessHandle {
    let (started, startedContinuation) = AsyncThrowingStream<
      Execution<NoInput, DiscardedOutput, DiscardedOutput>, any Error
    >.makeStream()
    let exe: Executable =
      executable.contains("/") ? .path(FilePath(executable)) : .name(executable)
    var env: Environment = .inherit
    if !environment.isEmpty {
      env = .inherit.updating(
        Dictionary(
          uniqueKeysWithValues: environment.map {
            (Environment.Key(stringLiteral: $0.key), Optional($0.value))
          }))
    }
    let runner = Task<Exit, any Error> {
      do {
        let result = try await Subprocess.run(
          exe, arguments: Arguments(arguments), environment: env, input: .none,
          output: .discarded, error: .discarded
        ) { execution in
          startedContinuation.yield(execution)
          startedContinuation.finish()
        }
        switch result.terminationStatus {
        case .exited(let code): return .exited(code)
        case .signaled(let signal): return .signalled(signal)
        }
      } catch {
        startedContinuation.finish(throwing: error)
        throw error
      }
    }
    for try await execution in started {
      return ProcessHandle(
        executable: executable, pid: execution.processIdentifier.value, execution: execution,
        runner: runner)
    }
    throw CancellationError()
  }

  /// Sends SIGKILL (ignored if the process has already been reaped).
  public func kill() {
    signal(SIGKILL)
  }

  /// Sends SIGTERM (ignored if the process has already been reaped).
  public func terminate() {
    signal(SIGTERM)
  }

  /// Sends `number` to the process unless it has been reaped.
  public func signal(_ number: Int32) {
    execution.withLock { execution in
      try? execution?.send(signal: Signal(rawValue: number))
    }
  }

  /// Waits until the process ends and tells how.
  public func waitForExit() async throws -> Exit {
    let exit = try await runner.value
    execution.withLock { $0 = nil }
    return exit
  }

  /// Sends SIGKILL and waits for the process to end.
  @discardableResult
  public func killAndWait() async throws -> Exit {
    kill()
    return try await waitForExit()
  }
}
