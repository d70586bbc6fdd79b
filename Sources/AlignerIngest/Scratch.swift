/// A growable buffer of trivial values that keeps its memory between uses, so that a warm decoder
/// allocates nothing. Not thread-safe: one per decoder, and a decoder serves one request at a time.
@usableFromInline
final class Scratch<Element: BitwiseCopyable> {
    @usableFromInline var base: UnsafeMutablePointer<Element>
    @usableFromInline var capacity: Int
    @usableFromInline var count: Int = 0

    @usableFromInline
    init(capacity: Int = 16) {
        self.capacity = max(capacity, 1)
        base = .allocate(capacity: self.capacity)
    }

    deinit { base.deallocate() }

    @inlinable @inline(__always)
    func removeAll() { count = 0 }

    @inlinable @inline(__always)
    func append(_ element: Element) {
        if count == capacity { grow() }
        base[count] = element
        count &+= 1
    }

    @usableFromInline
    func grow() {
        let newCapacity = capacity * 2
        let newBase = UnsafeMutablePointer<Element>.allocate(capacity: newCapacity)
        newBase.initialize(from: base, count: count)
        base.deallocate()
        base = newBase
        capacity = newCapacity
    }

    @inlinable
    subscript(index: Int) -> Element {
        get { base[index] }
        set { base[index] = newValue }
    }

    @inlinable
    var buffer: UnsafeBufferPointer<Element> { UnsafeBufferPointer(start: base, count: count) }

    @inlinable
    func slice(from start: Int) -> UnsafeBufferPointer<Element> {
        UnsafeBufferPointer(start: base + start, count: count - start)
    }
}

/// A reusable byte buffer with a hard cap, for decompressed bodies and series keys.
public final class ByteScratch {
    /// The bytes, valid up to `count`.
    public private(set) var base: UnsafeMutableRawPointer
    /// How many bytes the buffer holds now.
    public private(set) var capacity: Int
    /// How many bytes are in use.
    public var count: Int = 0

    /// Creates a buffer of `capacity` bytes.
    public init(capacity: Int = 4096) {
        self.capacity = max(capacity, 16)
        base = .allocate(byteCount: self.capacity, alignment: 16)
    }

    deinit { base.deallocate() }

    /// Makes room for at least `needed` bytes; the contents are not kept.
    public func reserveDiscarding(_ needed: Int) {
        guard needed > capacity else { return }
        base.deallocate()
        var newCapacity = capacity
        while newCapacity < needed { newCapacity *= 2 }
        base = .allocate(byteCount: newCapacity, alignment: 16)
        capacity = newCapacity
    }

    /// Gives back memory above `limit` bytes so that one huge request does not pin it forever.
    public func shrink(to limit: Int) {
        guard capacity > limit else { return }
        base.deallocate()
        capacity = max(limit, 16)
        base = .allocate(byteCount: capacity, alignment: 16)
        count = 0
    }

    func growKeeping(_ needed: Int) {
        var newCapacity = capacity
        while newCapacity < needed { newCapacity *= 2 }
        let newBase = UnsafeMutableRawPointer.allocate(byteCount: newCapacity, alignment: 16)
        newBase.copyMemory(from: base, byteCount: count)
        base.deallocate()
        base = newBase
        capacity = newCapacity
    }

    /// The bytes in use.
    public var bytes: UnsafeRawBufferPointer { UnsafeRawBufferPointer(start: base, count: count) }
}
