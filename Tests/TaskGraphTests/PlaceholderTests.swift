import XCTest

final class PlaceholderTests_TaskGraphTests: XCTestCase {
  func testBuilds() { XCTAssertTrue(true) }
}
