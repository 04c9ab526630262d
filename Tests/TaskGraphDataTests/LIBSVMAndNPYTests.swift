import Foundation
import TaskGraphLinalg
import XCTest

@testable import TaskGraphData

final class LIBSVMTests: XCTestCase {
  func testDensifies() throws {
    let files = try TestFiles()
    let path = try files.write(
      "d.svm", "1 1:0.5 3:2\n-1 qid:4 2:1.5 # comment\n\n0.25 4:-1e1\r\n")
    // The label is the first field, named `label`: another name is an error, not ignored.
    XCTAssertThrowsError(
      try DataPipeline.fit(path: path, options: PipelineOptions(label: "target"), as: Double.self)
    ) { error in
      XCTAssertEqual((error as? DataError)?.code, .missingLabelColumn)
      XCTAssertTrue("\(error)".contains("'target'"), "\(error)")
    }
    let data = try DataPipeline.fit(
      path: path, options: PipelineOptions(label: PipelineOptions.unnamedLabel), as: Double.self)
    XCTAssertEqual(data.featureNames, ["f1", "f2", "f3", "f4"])
    XCTAssertEqual(data.y, [1, -1, 0.25])
    XCTAssertEqual(
      data.x.storage, [0.5, 0, 2, 0, 0, 1.5, 0, 0, 0, 0, 0, -10])
    // Shards concatenate to the whole file.
    for count in [2, 3, 5] {
      var ys: [Double] = []
      for index in 0..<count {
        ys +=
          try DataPipeline.apply(
            data.pipeline, path: path, requireLabel: true,
            shard: Shard(index: index, count: count), as: Double.self
          ).y ?? []
      }
      XCTAssertEqual(ys, data.y)
    }
  }

  func testIndexErrors() throws {
    let files = try TestFiles()
    let cases: [(String, Int)] = [
      ("1 1:2\n0 0:1\n", 2),  // index 0
      ("1 -2:1\n", 1),  // negative
      ("1 1.5:1\n", 1),  // not an integer
      ("1 3:1 2:1\n", 1),  // not increasing
      ("1 2:1 2:1\n", 1),  // repeated
    ]
    for (k, (text, line)) in cases.enumerated() {
      let path = try files.write("e\(k).svm", text)
      let error = assertDataError(.invalidIndex) {
        try DataPipeline.fit(path: path, options: PipelineOptions(label: "label"), as: Double.self)
      }
      XCTAssertEqual(error?.line, line, text)
      XCTAssertEqual(error?.file, path)
    }
  }
}

final class NPYTests: XCTestCase {
  func testReadsNumPyFiles() throws {
    // Written by NumPy 2 (see Fixtures/): float64, float32, version 2.0 header, 1-D.
    let expected: [Double] = [1.5, 2.0, -3.25, 4.0, 0.1, 6.0, 7.0, 8.0, 1e-300]
    let f64 = try NPY.read(path: fixture("f64.npy"), as: Double.self)
    XCTAssertEqual(f64.rows, 3)
    XCTAssertEqual(f64.cols, 3)
    XCTAssertEqual(f64.storage, expected)
    XCTAssertEqual(try NPY.read(path: fixture("v2.npy"), as: Double.self), f64)
    let f32 = try NPY.read(path: fixture("f32.npy"), as: Float.self)
    XCTAssertEqual(f32.storage, [1.5, 2.0, 0.1, -7.0])
    let vector = try NPY.read(path: fixture("vector.npy"), as: Double.self)
    XCTAssertEqual(vector.rows, 3)
    XCTAssertEqual(vector.cols, 1)
  }

  func testWriteRoundTripAndMatchesNumPyBytes() throws {
    let files = try TestFiles()
    let m = Matrix<Double>(
      rows: 3, cols: 3, storage: [1.5, 2.0, -3.25, 4.0, 0.1, 6.0, 7.0, 8.0, 1e-300])
    let path = files.directory.appendingPathComponent("w.npy").path
    try NPY.write(m, to: path)
    XCTAssertEqual(try NPY.read(path: path, as: Double.self), m)
    // Byte-identical to what NumPy writes for the same array.
    XCTAssertEqual(
      try Data(contentsOf: URL(fileURLWithPath: path)),
      try Data(contentsOf: URL(fileURLWithPath: fixture("f64.npy"))))
    let f = Matrix<Float>(rows: 2, cols: 2, storage: [1.5, 2.0, 0.1, -7.0])
    XCTAssertEqual(
      NPY.encode(f), Array(try Data(contentsOf: URL(fileURLWithPath: fixture("f32.npy")))))
    let empty = Matrix<Float>(rows: 0, cols: 4)
    let emptyPath = files.directory.appendingPathComponent("e.npy").path
    try NPY.write(empty, to: emptyPath)
    XCTAssertEqual(try NPY.read(path: emptyPath, as: Float.self), empty)
    XCTAssertEqual(NPY.encode(empty).count % 64, 0)
  }

  func testErrors() throws {
    assertDataError(.npyBadMagic) { try NPY.read(path: fixture("badmagic.npy"), as: Double.self) }
    let dtype = assertDataError(.npyUnsupportedDtype) {
      try NPY.read(path: fixture("int64.npy"), as: Double.self)
    }
    XCTAssertTrue(dtype?.message.contains("<i8") ?? false)
    assertDataError(.npyUnsupportedDtype) {
      try NPY.read(path: fixture("bigendian.npy"), as: Double.self)
    }
    assertDataError(.npyFortranOrder) {
      try NPY.read(path: fixture("fortran.npy"), as: Double.self)
    }
    assertDataError(.npyTruncated) {
      try NPY.read(path: fixture("truncated.npy"), as: Double.self)
    }
  }

  func testPipelineOverNPY() throws {
    let data = try DataPipeline.fit(
      path: fixture("labelled.npy"), options: PipelineOptions(label: "label"), as: Double.self)
    XCTAssertEqual(data.y, [10, 20, 30, 40])
    XCTAssertEqual(data.featureNames, ["f1", "f2"])
    XCTAssertEqual(data.x.storage, [1, 2, 3, 4, 5, 6, 7, 8])
    let shard = try DataPipeline.apply(
      data.pipeline, path: fixture("labelled.npy"), requireLabel: true,
      shard: Shard(index: 1, count: 2), as: Float.self)
    XCTAssertEqual(shard.y, [30, 40])
    let unlabelled = try DataPipeline.apply(
      data.pipeline, path: fixture("unlabelled.npy"), requireLabel: false, as: Double.self)
    XCTAssertNil(unlabelled.y)
    XCTAssertEqual(unlabelled.x.storage, [1, 2, 3, 4])
  }
}
