import Foundation
import TaskGraphLinalg
import XCTest

@testable import TaskGraphData

/// A user-written source: y = 2x + 1 for x = 0..<n.
private struct LineSource: DatumIterator {
  var x = 0
  let n: Int
  mutating func next() throws -> Datum? {
    guard x < n else { return nil }
    defer { x += 1 }
    return Datum(features: [Double(x), 1], label: 2 * Double(x) + 1)
  }
}

/// A user-written transformer: drops odd x and squares the first feature.
private struct EvenSquares: DatumTransformer {
  func transform(_ datum: Datum) throws -> Datum? {
    guard Int(datum.features[0]) % 2 == 0 else { return nil }
    var out = datum
    out.features[0] *= out.features[0]
    return out
  }
}

final class DatumTests: XCTestCase {
  func testCustomSourceAndTransformerIntoStore() throws {
    let store = try DatumStore<Float>(LineSource(n: 7).transformed(EvenSquares()))
    XCTAssertEqual(store.count, 4)
    XCTAssertEqual(store.x.storage, [0, 1, 4, 1, 16, 1, 36, 1])
    XCTAssertEqual(store.y, [1, 5, 9, 13])
    let back = Array(store.makeIterator())
    XCTAssertEqual(back.map(\.label), [1, 5, 9, 13])
  }

  func testSequenceAdapterClosureTransformerAndRaggedData() throws {
    let data = [Datum(features: [1], label: nil), Datum(features: [2], label: 3)]
    let negate = ClosureDatumTransformer { d in
      Datum(features: d.features.map { -$0 }, label: d.label)
    }
    let store = try DatumStore<Double>(
      DatumSequenceIterator(data.makeIterator()).transformed(negate))
    XCTAssertEqual(store.x.storage, [-1, -2])
    XCTAssertTrue(store.y[0].isNaN)
    XCTAssertEqual(store.y[1], 3)
    let ragged = [Datum(features: [1], label: 0), Datum(features: [1, 2], label: 0)]
    assertDataError(.raggedRow) {
      try DatumStore<Double>(DatumSequenceIterator(ragged.makeIterator()))
    }
  }

  func testFileIteratorMatchesPreparedData() throws {
    let files = try TestFiles()
    let path = try files.write("t.csv", "y,a,b\n1,2,3\n4,5,6\n7,8,9\n")
    let prepared = try DataPipeline.fit(
      path: path, options: PipelineOptions(label: "y"), as: Double.self)
    let iterator = try DatumIteratorBuilder.iterator(
      path: path, pipeline: prepared.pipeline, shard: Shard(index: 1, count: 2))
    let store = try DatumStore<Double>(iterator)
    // Byte-range shards: the data region is 18 bytes, shard 1 owns records starting at byte
    // 9 or later of it, i.e. only the third record.
    XCTAssertEqual(store.y, [7])
    XCTAssertEqual(store.x.storage, [8, 9])
    XCTAssertEqual(Array(prepared.makeDatumIterator()).count, 3)
  }
}
