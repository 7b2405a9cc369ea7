#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Read-only bytes that live as long as this object: a file mapped with `mmap` (zero-copy;
/// pages are read on first touch), or a private copy of bytes held in memory.
public final class MappedBytes: @unchecked Sendable {
    // Sendable: the bytes are never written after init.
    /// Address of the first byte; valid as long as this object lives.
    public let base: UnsafeRawPointer
    /// Number of bytes: the file's size (never 0), or the number of bytes copied (may be 0).
    public let count: Int
    private let isMapped: Bool

    /// Maps the whole file read-only.
    public init(path: String) throws(GGUFError) {
        // O_NONBLOCK: opening a FIFO must not wait for a writer (the type check below refuses it).
        let fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK)
        guard fd >= 0 else { throw GGUFError(.cannotOpen, "cannot open: \(Self.errnoText())", path: path) }
        defer { close(fd) }
        var info = stat()
        guard fstat(fd, &info) == 0 else {
            throw GGUFError(.cannotOpen, "cannot stat: \(Self.errnoText())", path: path)
        }
        guard (info.st_mode & S_IFMT) == S_IFREG else {
            throw GGUFError(.cannotOpen, "not a regular file", path: path)
        }
        let size = Int(info.st_size)
        guard size > 0 else { throw GGUFError(.truncated, "the file is empty", path: path, offset: 0) }
        guard let mapped = mmap(nil, size, PROT_READ, MAP_PRIVATE, fd, 0), mapped != MAP_FAILED else {
            throw GGUFError(.cannotOpen, "cannot mmap \(size) bytes: \(Self.errnoText())", path: path)
        }
        base = UnsafeRawPointer(mapped)
        count = size
        isMapped = true
    }

    /// Copies `bytes` (used for files built in memory, e.g. by tests).
    public init(copying bytes: some Collection<UInt8>) {
        let size = max(bytes.count, 1)
        let memory = UnsafeMutableRawPointer.allocate(byteCount: size, alignment: 64)
        let buffer = UnsafeMutableRawBufferPointer(start: memory, count: bytes.count)
        _ = buffer.initializeMemory(as: UInt8.self, from: bytes)
        base = UnsafeRawPointer(memory)
        count = bytes.count
        isMapped = false
    }

    deinit {
        if isMapped {
            munmap(UnsafeMutableRawPointer(mutating: base), count)
        } else {
            UnsafeMutableRawPointer(mutating: base).deallocate()
        }
    }

    /// All the bytes, `base` to `base + count`; valid as long as this object lives.
    public var buffer: UnsafeRawBufferPointer { UnsafeRawBufferPointer(start: base, count: count) }

    /// Drops the mapped file's pages from this process's resident memory (they are read
    /// again from the file if touched). For after load, once the weights are packed: the
    /// mapping then costs nothing until an embedding row is looked up.
    public func discardResidentPages() {
        guard isMapped else { return }
        _ = madvise(UnsafeMutableRawPointer(mutating: base), count, MADV_DONTNEED)
    }

    private static func errnoText() -> String { String(cString: strerror(errno)) }
}
