import ArgumentParser

@main
struct TaskGraphCommand: AsyncParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "taskgraph",
    abstract: "Fault-tolerant, BLAS-accelerated regression training on one machine or many.",
    subcommands: [
      TrainCommand.self, PredictCommand.self, EvaluateCommand.self, BenchCommand.self,
      MasterCommand.self, WorkerCommand.self, LaunchCommand.self,
    ]
  )
}
