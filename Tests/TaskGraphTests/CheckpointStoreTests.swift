import Foundation
import TaskGraph
import XCTest

final class CheckpointStoreTests: XCTestCase {
  var directory: String!

  override func setUp() {
    directory = NSTemporaryDirectory() + "tg-ckpt-\(UUID().uuidString)"
  }

  override func tearDown() {
    try? FileManager.default.removeItem(atPath: directory)
  }

  func testSaveLatestAndKeepLastThree() async throws {
    let store = try DirectoryCheckpointStore(directory: directory)
    let none = try await store.latest(name: "master")
    XCTAssertNil(none)
    for epoch in UInt64(1)...5 {
      try await store.save(
        Checkpoint(epoch: epoch, data: Array(repeating: UInt8(epoch), count: 100)), name: "master")
    }
    try await store.save(Checkpoint(epoch: 9, data: [1]), name: "other")
    let kept = try await store.epochs(name: "master")
    XCTAssertEqual(kept, [3, 4, 5])
    let latest = try await store.latest(name: "master")
    XCTAssertEqual(latest?.checkpoint, Checkpoint(epoch: 5, data: Array(repeating: 5, count: 100)))
    XCTAssertEqual(latest?.warnings, [])
    // No temporary files are left behind.
    let files = try FileManager.default.contentsOfDirectory(atPath: directory).sorted()
    XCTAssertEqual(files, ["master-3.ckpt", "master-4.ckpt", "master-5.ckpt", "other-9.ckpt"])
  }

  func testCorruptedNewestIsSkippedWithWarning() async throws {
    let store = try DirectoryCheckpointStore(directory: directory, keep: 3)
    for epoch in UInt64(1)...3 {
      try await store.save(Checkpoint(epoch: epoch, data: Array("state \(epoch)".utf8)), name: "m")
    }
    // Flip one payload bit of the newest, truncate the second newest.
    let newest = store.path(name: "m", epoch: 3)
    var bytes = try Data(contentsOf: URL(fileURLWithPath: newest))
    bytes[bytes.count - 1] ^= 0x01
    try bytes.write(to: URL(fileURLWithPath: newest))
    let second = store.path(name: "m", epoch: 2)
    let truncated = try Data(contentsOf: URL(fileURLWithPath: second)).prefix(20)
    try truncated.write(to: URL(fileURLWithPath: second))

    let latest = try await store.latest(name: "m")
    XCTAssertEqual(latest?.checkpoint, Checkpoint(epoch: 1, data: Array("state 1".utf8)))
    XCTAssertEqual(latest?.warnings.count, 2)
    XCTAssertTrue(latest?.warnings[0].contains("m-3.ckpt") ?? false)
    XCTAssertTrue(latest?.warnings[0].contains("checksum") ?? false)
    XCTAssertTrue(latest?.warnings[1].contains("truncated") ?? false)
  }

  func testAllCorruptedGivesNil() async throws {
    let store = try DirectoryCheckpointStore(directory: directory, keep: 1)
    try await store.save(Checkpoint(epoch: 7, data: [1, 2, 3]), name: "w")
    try Data("garbage".utf8).write(to: URL(fileURLWithPath: store.path(name: "w", epoch: 7)))
    let latest = try await store.latest(name: "w")
    XCTAssertNil(latest)
  }

  func testOverwriteSameEpochIsAtomicReplace() async throws {
    let store = try DirectoryCheckpointStore(directory: directory)
    try await store.save(Checkpoint(epoch: 2, data: [1]), name: "m")
    try await store.save(Checkpoint(epoch: 2, data: [2, 2]), name: "m")
    let latest = try await store.latest(name: "m")
    XCTAssertEqual(latest?.checkpoint.data, [2, 2])
  }
}
