import TaskGraph
import XCTest

final class TopologyTests: XCTestCase {
  func testTreeOfFanOutTwo() {
    let tree = TreeTopology(taskCount: 15, fanOut: 2)
    XCTAssertEqual(tree.neighbors(of: 0, linkType: TreeTopology.parents, epoch: 0), [])
    XCTAssertEqual(tree.neighbors(of: 0, linkType: TreeTopology.children, epoch: 0), [1, 2])
    XCTAssertEqual(tree.neighbors(of: 3, linkType: TreeTopology.children, epoch: 0), [7, 8])
    XCTAssertEqual(tree.neighbors(of: 6, linkType: TreeTopology.children, epoch: 0), [13, 14])
    XCTAssertEqual(tree.neighbors(of: 7, linkType: TreeTopology.children, epoch: 0), [])
    XCTAssertEqual(tree.neighbors(of: 14, linkType: TreeTopology.parents, epoch: 0), [6])
    XCTAssertEqual(tree.reverse(TreeTopology.children), TreeTopology.parents)
    // Every parent/child link is seen from both ends.
    for t in 0..<15 {
      for c in tree.neighbors(of: t, linkType: TreeTopology.children, epoch: 3) {
        XCTAssertEqual(tree.neighbors(of: c, linkType: TreeTopology.parents, epoch: 3), [t])
      }
    }
  }

  func testTreeFanOutThreeCutsOffAtTaskCount() {
    let tree = TreeTopology(taskCount: 6, fanOut: 3)
    XCTAssertEqual(tree.neighbors(of: 0, linkType: TreeTopology.children, epoch: 0), [1, 2, 3])
    XCTAssertEqual(tree.neighbors(of: 1, linkType: TreeTopology.children, epoch: 0), [4, 5])
    XCTAssertEqual(tree.neighbors(of: 2, linkType: TreeTopology.children, epoch: 0), [])
    XCTAssertEqual(tree.neighbors(of: 5, linkType: TreeTopology.parents, epoch: 0), [1])
  }

  func testStarAndFull() {
    let star = StarTopology(taskCount: 4)
    XCTAssertEqual(star.neighbors(of: 0, linkType: StarTopology.workers, epoch: 0), [1, 2, 3])
    XCTAssertEqual(star.neighbors(of: 2, linkType: StarTopology.master, epoch: 0), [0])
    XCTAssertEqual(star.neighbors(of: 2, linkType: StarTopology.workers, epoch: 0), [])
    XCTAssertEqual(star.reverse(StarTopology.workers), StarTopology.master)
    let full = FullTopology(taskCount: 4)
    XCTAssertEqual(full.neighbors(of: 2, linkType: FullTopology.peers, epoch: 0), [0, 1, 3])
    XCTAssertEqual(full.reverse(FullTopology.peers), FullTopology.peers)
    XCTAssertEqual(full.neighbors(of: 2, linkType: "unknown", epoch: 0), [])
  }
}
