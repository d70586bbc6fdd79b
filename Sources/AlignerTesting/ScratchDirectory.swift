import Foundation

/// Folders for tests' files (rule files, data directories, SQLite stores): all under one folder
/// per test process, removed when the process exits, so repeated runs leave nothing in `/tmp`.
public enum ScratchDirectory {
    public static let root: URL = {
        let url = FileManager.default.temporaryDirectory
            .appendingPathComponent("aligner-tests-\(ProcessInfo.processInfo.processIdentifier)")
        try? FileManager.default.removeItem(at: url)
        atexit { try? FileManager.default.removeItem(at: ScratchDirectory.root) }
        return url
    }()

    /// A new, empty folder whose name starts with `prefix`.
    public static func make(_ prefix: String) throws -> URL {
        let url = root.appendingPathComponent("\(prefix)-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
        return url
    }

    /// A path for a folder that the code under test creates itself.
    public static func path(_ prefix: String) -> String {
        root.appendingPathComponent("\(prefix)-\(UUID().uuidString)").path
    }
}
