import Dispatch

/// Runs blocking work (a subprocess waited for, a long synchronous computation, a blocking
/// socket) on a Dispatch thread, so it never holds one of the few cooperative threads that every
/// test's servers and clients share: two such waits at once on a 2-core machine would stall them all.
public func blocking<T: Sendable>(_ work: @escaping @Sendable () throws -> T) async throws -> T {
    try await withCheckedThrowingContinuation { continuation in
        DispatchQueue.global().async { continuation.resume(with: Result { try work() }) }
    }
}
