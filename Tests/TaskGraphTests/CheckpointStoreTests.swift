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

  /// CRC-32C against its published check value (the CRC of "123456789" is 0xE3069283,
  /// RFC 3720 / the CRC catalogue); the instruction and the tables agree on every length
  /// and alignment, and feeding in pieces gives the one-shot value.
  func testCRC32CMatchesPublishedCheckValueAndItsTables() {
    for hardware in [true, false] {
      var crc = CRC32C(hardware: hardware)
      crc.update(Array("123456789".utf8))
      XCTAssertEqual(crc.value, 0xE306_9283, "hardware: \(hardware)")
    }
    var empty = CRC32C()
    empty.update([UInt8]())
    XCTAssertEqual(empty.value, 0)
    var rng = SystemRandomNumberGenerator()
    let bytes = (0..<(1 << 20) + 13).map { _ in UInt8.random(in: 0...255, using: &rng) }
    for (start, count) in [
      (0, 0), (1, 1), (3, 7), (5, 8), (7, 63), (0, 1000), (9, bytes.count - 9),
    ] {
      let piece = bytes[start..<(start + count)]
      var fast = CRC32C()
      fast.update(piece)
      var slow = CRC32C(hardware: false)
      slow.update(piece)
      XCTAssertEqual(fast.value, slow.value, "bytes \(start)..<\(start + count)")
    }
    var whole = CRC32C()
    whole.update(bytes)
    var pieces = CRC32C()
    for cut in stride(from: 0, to: bytes.count, by: 100_003) {
      pieces.update(bytes[cut..<min(bytes.count, cut + 100_003)])
    }
    XCTAssertEqual(pieces.value, whole.value)
  }

  /// Checkpoints of the first format (magic TGCKPT01, FNV-1a 64 checksum) are still read,
  /// and still checked; new ones are written in the second (TGCKPT02, CRC-32C).
  func testVersionOneCheckpointsAreStillRead() async throws {
    let store = try DirectoryCheckpointStore(directory: directory)
    func le(_ v: UInt64) -> [UInt8] { (0..<8).map { UInt8(truncatingIfNeeded: v >> (8 * $0)) } }
    let payload = Array("optimizer state".utf8)
    var fnv = FNV1a64()
    fnv.update(le(4) + le(UInt64(payload.count)) + payload)
    let v1 = Array("TGCKPT01".utf8) + le(4) + le(UInt64(payload.count)) + le(fnv.value) + payload
    try Data(v1).write(to: URL(fileURLWithPath: store.path(name: "m", epoch: 4)))
    let read = try await store.latest(name: "m")
    XCTAssertEqual(read?.checkpoint, Checkpoint(epoch: 4, data: payload))

    var corrupted = v1
    corrupted[corrupted.count - 1] ^= 0x80
    try Data(corrupted).write(to: URL(fileURLWithPath: store.path(name: "m", epoch: 4)))
    let none = try await store.latest(name: "m")
    XCTAssertNil(none)

    try await store.save(Checkpoint(epoch: 5, data: payload), name: "m")
    let written = try Data(contentsOf: URL(fileURLWithPath: store.path(name: "m", epoch: 5)))
    XCTAssertEqual(Array(written.prefix(8)), Array("TGCKPT02".utf8))
    var crc = CRC32C()
    crc.update(le(5) + le(UInt64(payload.count)) + payload)
    XCTAssertEqual(Array(written[24..<32]), le(UInt64(crc.value)))
  }

  /// A checkpoint given in parts (bytes and doubles) is written as their bytes one after the
  /// other: the same file as the joined bytes give, read back as those bytes.
  func testCheckpointInPartsIsWrittenAsItsJoinedBytes() async throws {
    let store = try DirectoryCheckpointStore(directory: directory)
    let doubles = [1.5, -2, .pi, 0]
    let parts = Checkpoint(epoch: 2, parts: [.bytes([9, 8, 7]), .doubles(doubles), .bytes([])])
    var joined: [UInt8] = [9, 8, 7]
    for d in doubles { withUnsafeBytes(of: d.bitPattern.littleEndian) { joined += $0 } }
    XCTAssertEqual(parts.count, joined.count)
    XCTAssertEqual(parts.data, joined)
    try await store.save(parts, name: "a")
    try await store.save(Checkpoint(epoch: 2, data: joined), name: "b")
    let a = try Data(contentsOf: URL(fileURLWithPath: store.path(name: "a", epoch: 2)))
    let b = try Data(contentsOf: URL(fileURLWithPath: store.path(name: "b", epoch: 2)))
    XCTAssertEqual(a, b)
    let read = try await store.latest(name: "a")
    XCTAssertEqual(read?.checkpoint.data, joined)
  }

  /// A checkpoint above the O_DIRECT threshold, of a size that is no multiple of a block or
  /// of the write buffer, and in parts that straddle the buffer's end, reads back exactly,
  /// in a file of exactly header + payload bytes (written straight to the device where the
  /// filesystem allows, through the page cache where not).
  func testLargeCheckpointWrittenDirectlyReadsBackExactly() async throws {
    let store = try DirectoryCheckpointStore(directory: directory)
    var rng = SystemRandomNumberGenerator()
    let doubles = (0..<700_001).map { _ in Double.random(in: -1...1, using: &rng) }
    let bytes = (0..<(3 << 20) + 7).map { _ in UInt8.random(in: 0...255, using: &rng) }
    let checkpoint = Checkpoint(
      epoch: 11, parts: [.bytes(Array("head".utf8)), .doubles(doubles), .bytes(bytes)])
    XCTAssertGreaterThan(checkpoint.count, DirectoryCheckpointStore.directThreshold)
    try await store.save(checkpoint, name: "big")
    let file = store.path(name: "big", epoch: 11)
    let size = try FileManager.default.attributesOfItem(atPath: file)[.size] as? Int
    XCTAssertEqual(size, 32 + checkpoint.count)
    let read = try await store.latest(name: "big")
    XCTAssertEqual(read?.checkpoint.epoch, 11)
    XCTAssertEqual(read?.checkpoint.data, checkpoint.data)
    XCTAssertEqual(read?.warnings, [])
  }

  /// A writer killed mid-save leaves its temporary file (up to a checkpoint's size). The
  /// next save of that name removes those of older epochs, and leaves a newer epoch's (a
  /// live writer's) and other names' alone.
  func testSaveRemovesTemporariesThatKilledWritersLeft() async throws {
    let store = try DirectoryCheckpointStore(directory: directory)
    try await store.save(Checkpoint(epoch: 1, data: [1]), name: "m")
    let leftovers = [".m-1.123.tmp", ".m-4.77.tmp", ".m-9.456.tmp", ".other-2.5.tmp"]
    for file in leftovers {
      try Data([0, 1, 2]).write(to: URL(fileURLWithPath: "\(directory!)/\(file)"))
    }
    try await store.save(Checkpoint(epoch: 5, data: [5]), name: "m")
    let files = try FileManager.default.contentsOfDirectory(atPath: directory).sorted()
    XCTAssertEqual(files, [".m-9.456.tmp", ".other-2.5.tmp", "m-1.ckpt", "m-5.ckpt"])
  }
}
