import XCTest

final class PlaceholderTests_TaskGraphMLTests: XCTestCase {
  func testBuilds() { XCTAssertTrue(true) }
}
