import Foundation

/// Runs `body` once per range of `ranges`, concurrently (one thread each), and returns the
/// results in the order of `ranges`: a caller that folds them in that order gets the same
/// result from run to run, whatever order the threads finish in.
package func concurrentMap<T: Sendable>(
  _ ranges: [Range<Int>], _ body: @Sendable (Range<Int>) -> T
) -> [T] {
  if ranges.count == 1 { return [body(ranges[0])] }
  let results = PartialResults<T>(count: ranges.count)
  DispatchQueue.concurrentPerform(iterations: ranges.count) { p in
    results.set(p, body(ranges[p]))
  }
  return (0..<ranges.count).map(results.get)
}

/// Slots written by `concurrentPerform` iterations, one slot per iteration.
///
/// `@unchecked Sendable` is sound: iteration `p` writes only slot `p` of a buffer allocated
/// up front (no array mutation, so no shared copy-on-write state), and slots are read only
/// after `concurrentPerform` returns, which orders every write before every read.
private final class PartialResults<T>: @unchecked Sendable {
  private let slots: UnsafeMutablePointer<T?>
  private let count: Int
  init(count: Int) {
    self.count = count
    slots = .allocate(capacity: count)
    slots.initialize(repeating: nil, count: count)
  }
  deinit {
    slots.deinitialize(count: count)
    slots.deallocate()
  }
  func set(_ i: Int, _ v: T) { slots[i] = v }
  func get(_ i: Int) -> T { slots[i]! }
}
