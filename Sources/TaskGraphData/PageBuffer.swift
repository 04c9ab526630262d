#if canImport(Glibc)
  import Glibc
#elseif canImport(Musl)
  import Musl
#elseif canImport(Darwin)
  import Darwin
#endif

/// Zero-filled memory mapped straight from the operating system and unmapped when released.
///
/// The column store is built from these rather than from `Array` storage because `malloc`
/// keeps freed blocks of a few megabytes in its heap: a store that hands its blocks back one by
/// one while the matrix is written would not lower the process's resident memory. Pages are
/// resident only once touched, so an unused tail costs address space, not memory.
final class PageBuffer {
  /// The first byte (page aligned).
  let base: UnsafeMutableRawPointer
  /// The mapped length in bytes (a multiple of the page size, at least one page).
  let byteCount: Int

  /// Maps at least `byteCount` bytes. Running out of address space traps, as `Array` does.
  init(byteCount: Int) {
    let page = Int(sysconf(Int32(_SC_PAGESIZE)))
    let length = max(page, (byteCount + page - 1) / page * page)
    #if canImport(Darwin)
      let flags = MAP_PRIVATE | MAP_ANON
    #else
      let flags = MAP_PRIVATE | MAP_ANONYMOUS
    #endif
    guard let p = mmap(nil, length, PROT_READ | PROT_WRITE, flags, -1, 0), p != MAP_FAILED
    else {
      fatalError("out of memory: cannot map \(length) bytes")
    }
    base = p
    self.byteCount = length
  }

  deinit { munmap(base, byteCount) }
}
