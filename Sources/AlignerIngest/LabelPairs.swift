import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// The distinct labels (name/value pairs) of the series table, each stored once. A series entry
/// holds 4-byte references to its pairs instead of its labels' bytes: series share most of their
/// labels (the shared benchmark payloads' 1.32 M labels are 4,227 distinct pairs), so an entry
/// shrinks from about 360 bytes to about 100.
///
/// A pair is a block: uses (Int32), field length (Int32), hash (UInt64), then the bytes of the
/// label's field in a canonical key (`0A len 0A n name 12 v value`). A series key is the
/// concatenation of its fields, so it is compared with an entry field by field, every byte.
/// Blocks live in 64 KiB chunks (a larger one alone in its own, so the 2^19 chunk references run
/// out only past 32 GiB of labels) and a reference is the chunk and the block's place in it.
/// Blocks never move, and are read without a lock: a reference reaches a reader only through an
/// entry, published under a shard lock after the block was written, and a block is freed (its
/// space reused) only when no entry refers to it.
final class LabelPairs: @unchecked Sendable {
    enum Block {
        static let uses = 0
        static let fieldLength = 4
        static let hash = 8
        static let field = 16
    }

    static let chunkBytes = 1 << 16
    static let offsetBits = 13  // 8-byte units within a chunk
    static let maxChunks = 1 << (32 - offsetBits)

    let hasher: SeriesHasher
    /// `maxChunks` chunk pointers, reserved once (only the pages in use become resident): room
    /// for 32 GiB of pairs.
    let chunks: UnsafeMutablePointer<UnsafeMutableRawPointer?>

    /// Touched only under `index`'s lock.
    struct Index: @unchecked Sendable {
        /// Open addressing over references by hash (0: empty).
        var slots: [UInt32] = Array(repeating: 0, count: 1024)
        var live = 0
        var bytes = 0
        /// Chunks in use (from 1, so that no reference is 0); where the current one is filled up to.
        var chunkCount = 1
        var fill = LabelPairs.chunkBytes
        /// Freed blocks by size in 8-byte units; chunk indexes of freed large blocks.
        var free: [Int: [UInt32]] = [:]
        var freeChunks: [Int] = []
        /// The chunk small blocks are being cut from.
        var current = 0
    }

    let index = Mutex(Index())

    init(seed: UInt64) {
        hasher = SeriesHasher(seed: seed ^ 0x5bd1_e995_7f4a_7c15)
        // calloc: the pages of chunk pointers not yet used are never touched, so never resident.
        guard let table = calloc(LabelPairs.maxChunks, MemoryLayout<UnsafeMutableRawPointer?>.stride) else {
            fatalError("out of memory for the label pair table")
        }
        chunks = table.bindMemory(to: UnsafeMutableRawPointer?.self, capacity: LabelPairs.maxChunks)
    }

    deinit {
        index.withLock { index in
            for c in 0..<index.chunkCount { chunks[c].map { free($0) } }
        }
        free(chunks)
    }

    /// A reference's block (lock-free; see the type's comment).
    @inline(__always)
    func block(_ ref: UInt32) -> UnsafeMutableRawPointer {
        chunks[Int(ref >> LabelPairs.offsetBits)].unsafelyUnwrapped + Int(ref & (1 << LabelPairs.offsetBits - 1)) << 3
    }

    /// How many distinct pairs are held.
    var count: Int { index.withLock { $0.live } }

    /// Bytes held for pairs (reported with the table's memory).
    var memoryBytes: Int { index.withLock { $0.bytes + $0.slots.count * 4 } }

    /// The bytes of a block's field.
    @inline(__always)
    static func field(_ block: UnsafeRawPointer) -> UnsafeRawBufferPointer {
        UnsafeRawBufferPointer(start: block + Block.field, count: Int(block.load(fromByteOffset: Block.fieldLength, as: Int32.self)))
    }

    /// The reference of each label field of a canonical key, written to `refs`; one more use of
    /// each. Returns how many.
    func retain(key: UnsafeRawBufferPointer, into refs: UnsafeMutableRawPointer) -> Int {
        index.withLock { index in
            var n = 0
            SeriesKey.forEachFieldWithHeader(key) { field in
                refs.storeBytes(of: retainOne(field, &index), toByteOffset: 4 * n, as: UInt32.self)
                n += 1
            }
            return n
        }
    }

    /// One use less of each reference; blocks no entry uses are freed.
    func release(_ refs: UnsafeRawPointer, count: Int) {
        index.withLock { index in
            for k in 0..<count {
                let ref = refs.load(fromByteOffset: 4 * k, as: UInt32.self)
                let b = block(ref)
                let uses = b.load(fromByteOffset: Block.uses, as: Int32.self) - 1
                b.storeBytes(of: uses, toByteOffset: Block.uses, as: Int32.self)
                guard uses == 0 else { continue }
                remove(ref, &index)
                let size = LabelPairs.size(LabelPairs.field(b).count)
                index.bytes -= size
                if size > LabelPairs.chunkBytes {
                    let c = Int(ref >> LabelPairs.offsetBits)
                    free(chunks[c])
                    chunks[c] = nil
                    index.freeChunks.append(c)
                } else {
                    index.free[size >> 3, default: []].append(ref)
                }
            }
        }
    }

    /// A block's bytes, rounded to 8.
    static func size(_ fieldLength: Int) -> Int { (Block.field + fieldLength + 7) & ~7 }

    func retainOne(_ field: UnsafeRawBufferPointer, _ index: inout Index) -> UInt32 {
        let hash = hasher.hash(field)
        let mask = index.slots.count - 1
        var i = Int(truncatingIfNeeded: hash) & mask
        while index.slots[i] != 0 {
            let b = block(index.slots[i])
            if b.load(fromByteOffset: Block.hash, as: UInt64.self) == hash && LabelPairs.field(b).elementsEqual(field) {
                b.storeBytes(of: b.load(fromByteOffset: Block.uses, as: Int32.self) + 1, toByteOffset: Block.uses, as: Int32.self)
                return index.slots[i]
            }
            i = (i + 1) & mask
        }
        let ref = allocate(LabelPairs.size(field.count), &index)
        let b = block(ref)
        b.storeBytes(of: 1, toByteOffset: Block.uses, as: Int32.self)
        b.storeBytes(of: Int32(field.count), toByteOffset: Block.fieldLength, as: Int32.self)
        b.storeBytes(of: hash, toByteOffset: Block.hash, as: UInt64.self)
        if field.count > 0 { (b + Block.field).copyMemory(from: field.baseAddress!, byteCount: field.count) }
        index.slots[i] = ref
        index.live += 1
        if index.live * 2 > index.slots.count { regrow(&index) }
        return ref
    }

    /// Space for a block: a freed one of the same size, the rest of the current chunk, a new
    /// chunk, or a chunk of its own for a large one.
    func allocate(_ size: Int, _ index: inout Index) -> UInt32 {
        index.bytes += size
        if let ref = index.free[size >> 3]?.popLast() { return ref }
        func newChunk(_ bytes: Int, _ index: inout Index) -> Int {
            let c: Int
            if let reused = index.freeChunks.popLast() {
                c = reused
            } else {
                c = index.chunkCount
                precondition(c < LabelPairs.maxChunks, "label pair table full")
                index.chunkCount += 1
            }
            guard let memory = malloc(bytes) else { fatalError("out of memory for label pairs") }
            chunks[c] = memory
            return c
        }
        if size > LabelPairs.chunkBytes {
            return UInt32(newChunk(size, &index) << LabelPairs.offsetBits)
        }
        if index.fill + size > LabelPairs.chunkBytes {
            index.current = newChunk(LabelPairs.chunkBytes, &index)
            index.fill = 0
        }
        let ref = UInt32(index.current << LabelPairs.offsetBits | index.fill >> 3)
        index.fill += size
        return ref
    }

    /// Removes a reference from the open-addressing index, re-placing the run that follows it.
    func remove(_ ref: UInt32, _ index: inout Index) {
        let mask = index.slots.count - 1
        var i = Int(truncatingIfNeeded: block(ref).load(fromByteOffset: Block.hash, as: UInt64.self)) & mask
        while index.slots[i] != ref { i = (i + 1) & mask }
        index.slots[i] = 0
        index.live -= 1
        var j = (i + 1) & mask
        while index.slots[j] != 0 {
            let moved = index.slots[j]
            index.slots[j] = 0
            place(moved, in: &index.slots)
            j = (j + 1) & mask
        }
    }

    func place(_ ref: UInt32, in slots: inout [UInt32]) {
        let mask = slots.count - 1
        var k = Int(truncatingIfNeeded: block(ref).load(fromByteOffset: Block.hash, as: UInt64.self)) & mask
        while slots[k] != 0 { k = (k + 1) & mask }
        slots[k] = ref
    }

    func regrow(_ index: inout Index) {
        var slots = [UInt32](repeating: 0, count: index.slots.count * 2)
        for ref in index.slots where ref != 0 { place(ref, in: &slots) }
        index.slots = slots
    }
}
