import ArgumentParser
import Foundation
import Logging
import TaskGraphML
import TaskGraphTraining

/// Turns library errors into one line on standard error and a non-zero exit.
enum CLIErrors {
  static func guarding(_ body: () async throws -> Void) async throws {
    do {
      try await body()
    } catch let e as ValidationError {
      throw e
    } catch {
      FileHandle.standardError.write(Data("error: \(error)\n".utf8))
      throw ExitCode(1)
    }
  }
}

/// Progress on a terminal (one rewritten line) or plain log lines otherwise.
final class ProgressDisplay: @unchecked Sendable {
  // Unchecked Sendable: `update` is called from one thread at a time (the solver's), and
  // `finish` only after the solver has returned.
  let quiet: Bool
  let tty = isatty(STDERR_FILENO) == 1
  var last = Date.distantPast
  var wrote = false

  init(quiet: Bool) { self.quiet = quiet }

  func update(_ p: OptimizationProgress) {
    guard !quiet else { return }
    let now = Date()
    let line = String(
      format: "iteration %5d  objective %.12g  gradient norm %.3e  elapsed %.2fs", p.iteration,
      p.objective, p.gradientNorm, p.elapsedSeconds)
    if tty {
      guard now.timeIntervalSince(last) > 0.1 else { return }
      FileHandle.standardError.write(Data("\r\u{1B}[K\(line)".utf8))
      wrote = true
    } else {
      guard now.timeIntervalSince(last) > 1 || p.iteration <= 1 else { return }
      FileHandle.standardError.write(Data("\(line)\n".utf8))
    }
    last = now
  }

  func finish() {
    if tty && wrote { FileHandle.standardError.write(Data("\n".utf8)) }
  }
}

enum SummaryJSON {
  static func write(_ report: TrainingReport, to path: String) throws {
    let enc = JSONEncoder()
    enc.outputFormatting = [.prettyPrinted, .sortedKeys]
    enc.keyEncodingStrategy = .convertToSnakeCase
    enc.nonConformingFloatEncodingStrategy = .convertToString(
      positiveInfinity: "inf", negativeInfinity: "-inf", nan: "nan")
    try AtomicFile.write(try enc.encode(report), to: path)
  }
}

enum SummaryTable {
  static func print(_ file: ModelFile, output: String) {
    let t = file.training
    var lines: [(String, String)] = [
      ("model", "\(file.model.rawValue) (l1 \(file.l1), l2 \(file.l2))"),
      ("solver", "\(t.solver), stopped: \(t.stopReason)"),
      (
        "rows",
        "\(t.rowsRead) read, \(t.rowsDropped) dropped, \(t.trainRows) train, \(t.validationRows) validation"
      ),
      ("features", "\(file.featureNames.count)"),
      ("iterations", "\(t.iterations)"),
      ("objective", String(format: "%.12g", t.objective)),
      ("load", String(format: "%.3f s", t.loadSeconds)),
      ("preprocess", String(format: "%.3f s", t.preprocessSeconds)),
      (
        "fit",
        t.iterations > 0
          ? String(format: "%.3f s (%.3f ms/iteration)", t.fitSeconds, t.msPerIteration)
          : String(format: "%.3f s", t.fitSeconds)
      ),
    ]
    if t.workers > 1 { lines.insert(("workers", "\(t.workers) (parameter server)"), at: 2) }
    // Distributed training reports the train metrics that follow from the objective; the
    // validation rows are scored in full (MAE, accuracy, AUC as well).
    for k in Set(t.trainMetrics.keys).union(t.validationMetrics.keys).sorted() {
      let train = t.trainMetrics[k].map { String(format: "train %.6g", $0) } ?? "train -"
      let val = t.validationMetrics[k].map { String(format: "   validation %.6g", $0) } ?? ""
      lines.append((k, train + val))
    }
    lines.append(("model file", output))
    Swift.print("summary")
    for (k, v) in lines {
      Swift.print("  " + k.padding(toLength: 12, withPad: " ", startingAt: 0) + v)
    }
  }
}

/// Log output on standard error: notices, warnings and errors, or from `info` up with
/// `--verbose`. `TASKGRAPH_LOG_LEVEL` (trace, debug, info, notice, warning, error) sets the
/// level outright, for this process and the processes `launch` starts.
enum Log {
  static func setup(verbose: Bool) {
    let level =
      ProcessInfo.processInfo.environment["TASKGRAPH_LOG_LEVEL"].flatMap {
        Logger.Level(rawValue: $0)
      }
      ?? (verbose ? .info : .notice)
    LoggingSystem.bootstrap { label in
      var h = StreamLogHandler.standardError(label: label)
      h.logLevel = level
      return h
    }
  }
}

/// Refuses a run whose outputs would replace one of its inputs or each other, before any
/// work: paths are compared after resolving symbolic links and `..`, and an output that
/// does not exist yet is compared by its directory's real path and its name.
enum OutputPaths {
  static func canonical(_ path: String) -> String {
    let url = URL(fileURLWithPath: path).standardizedFileURL
    if FileManager.default.fileExists(atPath: url.path) {
      return url.resolvingSymlinksInPath().path
    }
    let parent = url.deletingLastPathComponent().resolvingSymlinksInPath()
    return parent.appendingPathComponent(url.lastPathComponent).path
  }

  static func check(
    inputs: [(flag: String, path: String)], outputs: [(flag: String, path: String)],
    directories: String? = nil
  ) throws {
    var seen: [String: String] = [:]
    for (flag, path) in inputs { seen[canonical(path)] = flag }
    for (flag, path) in outputs {
      let c = canonical(path)
      if let other = seen[c] {
        throw TrainingError(
          code: .invalidConfiguration,
          message: "\(flag) \(path) is also \(other): refusing to overwrite it")
      }
      var isDirectory: ObjCBool = false
      if FileManager.default.fileExists(atPath: c, isDirectory: &isDirectory),
        isDirectory.boolValue
      {
        throw TrainingError(
          code: .invalidConfiguration, message: "\(flag) \(path) is a directory")
      }
      seen[c] = flag
    }
    if let directories {
      var isDirectory: ObjCBool = false
      if FileManager.default.fileExists(atPath: directories, isDirectory: &isDirectory),
        !isDirectory.boolValue
      {
        throw TrainingError(
          code: .invalidConfiguration,
          message: "--checkpoint-dir \(directories) is a file, not a directory")
      }
    }
  }
}
