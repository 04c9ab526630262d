import TaskGraphLinalg

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
///
/// A buffer of at least 2 MiB starts on a 2 MiB boundary and asks for huge pages
/// (`HugePages`): filling an 800 MB table then takes a few hundred page faults rather than
/// 200,000.
final class PageBuffer {
  /// The first byte (page aligned; 2 MiB aligned from 2 MiB on).
  let base: UnsafeMutableRawPointer
  /// The usable length in bytes (a multiple of the page size, at least one page).
  let byteCount: Int
  /// The whole mapping, alignment slack included, for `munmap`.
  private let mapping: (base: UnsafeMutableRawPointer, length: Int)

  /// Maps at least `byteCount` bytes. Running out of address space traps, as `Array` does.
  init(byteCount: Int) {
    let page = Int(sysconf(Int32(_SC_PAGESIZE)))
    let length = max(page, (byteCount + page - 1) / page * page)
    let huge = length >= HugePages.size
    let slack = huge ? HugePages.size - page : 0
    #if canImport(Darwin)
      let flags = MAP_PRIVATE | MAP_ANON
    #else
      let flags = MAP_PRIVATE | MAP_ANONYMOUS
    #endif
    guard let p = mmap(nil, length + slack, PROT_READ | PROT_WRITE, flags, -1, 0),
      p != MAP_FAILED
    else {
      fatalError("out of memory: cannot map \(length) bytes")
    }
    let skip =
      huge ? (HugePages.size - Int(UInt(bitPattern: p) % UInt(HugePages.size))) % HugePages.size : 0
    base = p + skip
    self.byteCount = length
    mapping = (p, length + slack)
    if huge { HugePages.advise(base, byteCount: length) }
  }

  deinit { munmap(mapping.base, mapping.length) }
}
