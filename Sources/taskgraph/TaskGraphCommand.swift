import ArgumentParser
import Foundation

@main
struct TaskGraphCommand: AsyncParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "taskgraph",
    abstract: "Fault-tolerant, BLAS-accelerated regression training on one machine or many.",
    version: "taskgraph 0.9.0",
    subcommands: [
      TrainCommand.self, PredictCommand.self, EvaluateCommand.self, BenchCommand.self,
      MasterCommand.self, WorkerCommand.self, LaunchCommand.self,
    ]
  )

  /// Parses and runs the command. A command line that cannot be used (an unknown flag, a
  /// value out of range or not one of the choices) is one line on standard error,
  /// `error: …`, and exit status 64, like every other refusal: no usage text after it.
  /// Help and `--version` print as usual.
  static func main() async {
    do {
      var command = try parseAsRoot()
      if var asyncCommand = command as? any AsyncParsableCommand {
        try await asyncCommand.run()
      } else {
        try command.run()
      }
    } catch {
      let code = exitCode(for: error)
      if code == .success || error is ExitCode {
        exit(withError: error)
      }
      let text = message(for: error).split(whereSeparator: \.isNewline)
        .map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
        .joined(separator: " ")
      let line = text.lowercased().hasPrefix("error: ") ? String(text.dropFirst(7)) : text
      FileHandle.standardError.write(Data("error: \(line)\n".utf8))
      Foundation.exit(code.rawValue)
    }
  }
}
