import CTaskGraphKernels
import Dispatch

/// A STREAM-style read of a buffer: the time it takes is the memory-bandwidth floor for
/// any pass that must read the same bytes.
public enum StreamRead {
  /// Sums every element of `matrix` (as raw 64-bit lanes) with `threads` threads over
  /// contiguous ranges, and returns the sum so the read cannot be optimised away.
  ///
  /// Uses independent AVX2 accumulators (portable C elsewhere) so the loop is bound by
  /// memory, not by the latency of one dependency chain. O(bytes) time.
  public static func sum<T: BLASScalar>(_ matrix: Matrix<T>, threads: Int = 1) -> Double {
    matrix.withUnsafeBufferPointer { buffer in
      let raw = UnsafeRawBufferPointer(buffer)
      let lanes = raw.count / 8
      let base = raw.baseAddress!
      if threads <= 1 { return sumLanes(base, 0..<lanes) }
      let parts = FusedGradient.splitEvenly(0..<lanes, parts: threads)
      let slots = UnsafeMutableBufferPointer<Double>.allocate(capacity: threads)
      defer { slots.deallocate() }
      let box = SendableRawBox(slots: slots, base: base)
      DispatchQueue.concurrentPerform(iterations: threads) { p in
        box.slots[p] = sumLanes(box.base, parts[p])
      }
      return slots.reduce(0, +)
    }
  }

  private static func sumLanes(_ base: UnsafeRawPointer, _ range: Range<Int>) -> Double {
    tg_stream_sum(base + range.lowerBound * 8, range.count * 8)
  }
}

/// Pointers shared with `concurrentPerform` iterations.
///
/// `@unchecked Sendable` is sound: `base` is only read, each iteration writes only its own
/// slot, and the slots are read after `concurrentPerform` returns.
private struct SendableRawBox: @unchecked Sendable {
  let slots: UnsafeMutableBufferPointer<Double>
  let base: UnsafeRawPointer
}
