import Foundation
import XCTest

/// Runs the built `taskgraph` executable (it sits beside the test bundle) and captures
/// its exit status and output.
struct CLIResult {
  var status: Int32
  var stdout: String
  var stderr: String
}

enum CLI {
  static var productsDirectory: URL {
    URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent()
  }

  static var packageRoot: URL {
    URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
      .deletingLastPathComponent()
  }

  static func dataset(_ name: String) -> String {
    packageRoot.appendingPathComponent("datasets/\(name)").path
  }

  /// The JSON object in the file at `path` (a model file or a summary).
  static func json(_ path: String) throws -> [String: Any] {
    try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: path)))
      as! [String: Any]
  }

  /// What the reference script `Tests/reference/<script>` prints for `request`, run with
  /// `python` (the private environment `scripts/test.sh` installs): the request goes to
  /// its standard input as JSON, its standard output is parsed as JSON.
  static func reference(python: String, script: String, request: Any) throws -> Any {
    let p = Process()
    p.executableURL = URL(fileURLWithPath: python)
    p.arguments = [packageRoot.appendingPathComponent("Tests/reference/\(script)").path]
    let input = Pipe()
    let out = Pipe()
    p.standardInput = input
    p.standardOutput = out
    try p.run()
    input.fileHandleForWriting.write(try JSONSerialization.data(withJSONObject: request))
    try input.fileHandleForWriting.close()
    let data = out.fileHandleForReading.readDataToEndOfFile()
    p.waitUntilExit()
    XCTAssertEqual(p.terminationStatus, 0, "the reference \(script) failed")
    return try JSONSerialization.jsonObject(with: data)
  }

  /// The conformance problems: per model, the penalty flags, the data set and its label.
  static func penalty(of model: String) -> [String] {
    switch model {
    case "ridge": ["--l2", "0.01"]
    case "lasso": ["--l1", "0.5"]
    case "elastic-net": ["--l1", "0.3", "--l2", "0.1"]
    case "logistic": ["--l2", "0.001"]
    default: []
    }
  }

  static func data(of model: String) -> (file: String, label: String) {
    model == "logistic" ? ("breast_cancer.csv", "malignant") : ("diabetes.csv", "progression")
  }

  @discardableResult
  static func run(_ args: [String], executable: String = "taskgraph") throws -> CLIResult {
    let p = Process()
    p.executableURL = productsDirectory.appendingPathComponent(executable)
    p.arguments = args
    let out = Pipe()
    let err = Pipe()
    p.standardOutput = out
    p.standardError = err
    try p.run()
    // Read both pipes to the end before waiting, so a full pipe cannot block the child.
    let group = DispatchGroup()
    nonisolated(unsafe) var errData = Data()
    group.enter()
    DispatchQueue.global().async {
      errData = err.fileHandleForReading.readDataToEndOfFile()
      group.leave()
    }
    let outData = out.fileHandleForReading.readDataToEndOfFile()
    group.wait()
    p.waitUntilExit()
    return CLIResult(
      status: p.terminationStatus, stdout: String(decoding: outData, as: UTF8.self),
      stderr: String(decoding: errData, as: UTF8.self))
  }
}

/// A temporary directory removed at the end of the test.
final class TempDir {
  let url: URL
  init() throws {
    url = FileManager.default.temporaryDirectory.appendingPathComponent(
      "taskgraph-cli-\(UUID().uuidString)")
    try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
  }
  deinit { try? FileManager.default.removeItem(at: url) }
  func path(_ name: String) -> String { url.appendingPathComponent(name).path }
  @discardableResult
  func write(_ name: String, _ text: String) throws -> String {
    try Data(text.utf8).write(to: url.appendingPathComponent(name))
    return path(name)
  }
  @discardableResult
  func write(_ name: String, bytes: [UInt8]) throws -> String {
    try Data(bytes).write(to: url.appendingPathComponent(name))
    return path(name)
  }
  var entries: [String] {
    (try? FileManager.default.contentsOfDirectory(atPath: url.path))?.sorted() ?? []
  }
}
