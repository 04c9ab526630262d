/// How the tasks of a job are connected: for each link type (e.g. `parents`,
/// `children`), the neighbours of a task in a given epoch.
///
/// Link types come in pairs: if `b` is among `a`'s neighbours of type `t`, then `a` is
/// among `b`'s neighbours of type `reverse(t)`. The runtime uses this to tell a task on
/// which of its own links a neighbour's meta flag arrived.
public protocol Topology: Sendable {
  /// The number of tasks.
  var taskCount: Int { get }
  /// The link types of this topology.
  var linkTypes: [String] { get }
  /// The neighbours of `task` over `linkType` in `epoch`, in ascending order.
  func neighbors(of task: Int, linkType: String, epoch: UInt64) -> [Int]
  /// The link type that sees the other end of `linkType`.
  func reverse(_ linkType: String) -> String
  /// A short description stored in the job spec (e.g. `tree(15,2)`).
  var description: String { get }
}

/// A tree: task 0 is the root, the children of task `i` are `k·i+1 … k·i+k` (those below
/// `taskCount`), and its parent is `(i-1)/k`. Link types `parents` and `children`.
public struct TreeTopology: Topology {
  /// The link type toward the parent.
  public static let parents = "parents"
  /// The link type toward the children.
  public static let children = "children"

  /// The number of tasks.
  public let taskCount: Int
  /// The fan-out k.
  public let fanOut: Int

  /// A tree of `taskCount` (≥ 1) tasks with fan-out `fanOut` (≥ 1).
  public init(taskCount: Int, fanOut: Int) {
    precondition(taskCount >= 1 && fanOut >= 1, "a tree needs at least one task and fan-out 1")
    self.taskCount = taskCount
    self.fanOut = fanOut
  }

  /// The link types.
  public var linkTypes: [String] { [Self.parents, Self.children] }

  /// The neighbours of `task` over `linkType` (the same in every epoch).
  public func neighbors(of task: Int, linkType: String, epoch: UInt64) -> [Int] {
    precondition(task >= 0 && task < taskCount, "task \(task) outside 0..<\(taskCount)")
    switch linkType {
    case Self.parents:
      return task == 0 ? [] : [(task - 1) / fanOut]
    case Self.children:
      let first = fanOut * task + 1
      guard first < taskCount else { return [] }
      return Array(first..<min(first + fanOut, taskCount))
    default:
      return []
    }
  }

  /// The link type of the other end.
  public func reverse(_ linkType: String) -> String {
    linkType == Self.parents ? Self.children : Self.parents
  }

  /// A short description, e.g. for the job spec.
  public var description: String { "tree(\(taskCount),\(fanOut))" }
}

/// A star: task 0 is the centre (`master` link of the others), every other task a leaf
/// (`workers` link of the centre).
public struct StarTopology: Topology {
  /// The link type from a leaf to the centre.
  public static let master = "master"
  /// The link type from the centre to the leaves.
  public static let workers = "workers"

  /// The number of tasks.
  public let taskCount: Int

  /// A star of `taskCount` (≥ 1) tasks.
  public init(taskCount: Int) {
    precondition(taskCount >= 1, "a star needs at least one task")
    self.taskCount = taskCount
  }

  /// The link types.
  public var linkTypes: [String] { [Self.master, Self.workers] }

  /// The neighbours of `task` over `linkType` (the same in every epoch).
  public func neighbors(of task: Int, linkType: String, epoch: UInt64) -> [Int] {
    precondition(task >= 0 && task < taskCount, "task \(task) outside 0..<\(taskCount)")
    switch linkType {
    case Self.master: return task == 0 ? [] : [0]
    case Self.workers: return task == 0 ? Array(1..<taskCount) : []
    default: return []
    }
  }

  /// The link type of the other end.
  public func reverse(_ linkType: String) -> String {
    linkType == Self.master ? Self.workers : Self.master
  }

  /// A short description, e.g. for the job spec.
  public var description: String { "star(\(taskCount))" }
}

/// Every task linked to every other over the single link type `peers`.
public struct FullTopology: Topology {
  /// The only link type.
  public static let peers = "peers"

  /// The number of tasks.
  public let taskCount: Int

  /// A full graph of `taskCount` (≥ 1) tasks.
  public init(taskCount: Int) {
    precondition(taskCount >= 1, "a full topology needs at least one task")
    self.taskCount = taskCount
  }

  /// The link types.
  public var linkTypes: [String] { [Self.peers] }

  /// The neighbours of `task` over `linkType` (the same in every epoch).
  public func neighbors(of task: Int, linkType: String, epoch: UInt64) -> [Int] {
    precondition(task >= 0 && task < taskCount, "task \(task) outside 0..<\(taskCount)")
    guard linkType == Self.peers else { return [] }
    return (0..<taskCount).filter { $0 != task }
  }

  /// The link type of the other end.
  public func reverse(_ linkType: String) -> String { linkType }

  /// A short description, e.g. for the job spec.
  public var description: String { "full(\(taskCount))" }
}
