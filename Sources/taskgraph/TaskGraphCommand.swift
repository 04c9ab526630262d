import ArgumentParser

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
}
