#if canImport(Glibc)
  import Glibc
#elseif canImport(Musl)
  import Musl
#endif

/// Transparent huge pages for large buffers that are about to be written once, whole.
///
/// A buffer of fresh anonymous memory costs one page fault per 4 KiB page when first written:
/// about 200,000 faults for 800 MB, which took longer than the copy into it. Advised with
/// `MADV_HUGEPAGE`, the kernel backs each 2 MiB of it with one page, and the faults almost
/// vanish: the default on most Linux systems (`transparent_hugepage/enabled` = `madvise`)
/// gives huge pages only to memory that asks, as NumPy does for its arrays of 4 MiB and more.
/// Only whole aligned 2 MiB spans inside the buffer are advised; elsewhere, and where the
/// system has no huge pages, nothing changes.
public enum HugePages {
  /// The span of a huge page on x86-64 and most AArch64 systems.
  public static let size = 2 << 20

  /// Asks for huge pages over the 2 MiB-aligned part of `[base, base + byteCount)`. Call it
  /// before the memory is first touched; it never fails (the advice is only advice).
  public static func advise(_ base: UnsafeMutableRawPointer, byteCount: Int) {
    #if os(Linux)
      let start = (UInt(bitPattern: base) + UInt(size) - 1) & ~UInt(size - 1)
      let end = (UInt(bitPattern: base) + UInt(byteCount)) & ~UInt(size - 1)
      guard end > start, let p = UnsafeMutableRawPointer(bitPattern: start) else { return }
      _ = madvise(p, Int(end - start), MADV_HUGEPAGE)
    #endif
  }
}
