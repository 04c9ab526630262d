import Foundation
import XCTest

@testable import TaskGraphData

/// Temporary files for one test, removed at the end.
final class TestFiles {
  let directory: URL

  init() throws {
    directory = FileManager.default.temporaryDirectory
      .appendingPathComponent("taskgraph-data-\(UUID().uuidString)")
    try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
  }

  deinit { try? FileManager.default.removeItem(at: directory) }

  /// Writes `text` to a file named `name` and returns its path.
  func write(_ name: String, _ text: String) throws -> String {
    try write(name, Array(text.utf8))
  }

  /// Writes `bytes` to a file named `name` and returns its path.
  func write(_ name: String, _ bytes: [UInt8]) throws -> String {
    let url = directory.appendingPathComponent(name)
    try Data(bytes).write(to: url)
    return url.path
  }

  /// Compresses the file at `path` with the system `gzip` (an independent implementation)
  /// into `path.gz`, keeping the original.
  func gzip(_ path: String) throws -> String {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
    process.arguments = ["gzip", "-k", "-f", path]
    try process.run()
    process.waitUntilExit()
    XCTAssertEqual(process.terminationStatus, 0)
    return path + ".gz"
  }
}

/// The path of a checked-in fixture.
func fixture(_ name: String) -> String {
  URL(fileURLWithPath: #filePath).deletingLastPathComponent()
    .appendingPathComponent("Fixtures").appendingPathComponent(name).path
}

/// The path of a real dataset in the repository.
func dataset(_ name: String) -> String {
  URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
    .deletingLastPathComponent().appendingPathComponent("datasets").appendingPathComponent(name)
    .path
}

/// Asserts that `body` throws a `DataError` with `code`, and returns it.
@discardableResult
func assertDataError<R>(
  _ code: DataError.Code, file: StaticString = #filePath, line: UInt = #line,
  _ body: () throws -> R
) -> DataError? {
  do {
    _ = try body()
    XCTFail("expected DataError \(code), got a result", file: file, line: line)
  } catch let error as DataError {
    XCTAssertEqual(error.code, code, "\(error)", file: file, line: line)
    return error
  } catch {
    XCTFail("expected DataError \(code), got \(error)", file: file, line: line)
  }
  return nil
}
