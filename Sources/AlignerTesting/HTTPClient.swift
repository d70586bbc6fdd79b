import AlignerCore
import CAlignerCurl
import Foundation

/// A blocking HTTP/1.1 client over libcurl, for tests against a real server on loopback.
public enum HTTPClient {
    /// A response: status, headers with lower-cased names, body.
    public struct Response: Sendable {
        public var status: Int
        public var headers: [String: String]
        public var body: [UInt8]

        public var text: String { String(decoding: body, as: UTF8.self) }
    }

    public struct Failure: Error, CustomStringConvertible {
        public var description: String
        public init(description: String) { self.description = description }
    }

    /// Sends one request; every call is bounded by `timeout`. `onData` sees each piece of the
    /// body as it arrives (a stream's events), and ends the transfer by returning false.
    public static func send(
        _ method: String, _ url: String, headers: [String: String] = [:], body: [UInt8]? = nil,
        timeout: Duration = .seconds(10), partialOnTimeout: Bool = false,
        onData: ((UnsafeRawBufferPointer) -> Bool)? = nil
    ) throws -> Response {
        curlGlobalInit
        guard let curl = curl_easy_init() else { throw Failure(description: "curl_easy_init failed") }
        defer { curl_easy_cleanup(curl) }
        let box = Box()
        let context = Unmanaged.passUnretained(box).toOpaque()
        aligner_curl_setopt_string(curl, CURLOPT_URL, url)
        aligner_curl_setopt_string(curl, CURLOPT_CUSTOMREQUEST, method)
        aligner_curl_setopt_long(curl, CURLOPT_TIMEOUT_MS, Int(timeout.milliseconds))
        aligner_curl_setopt_long(curl, CURLOPT_NOSIGNAL, 1)
        aligner_curl_setopt_string(curl, CURLOPT_NOPROXY, "*")
        box.onData = onData
        aligner_curl_setopt_write_function(curl) { data, size, count, context in
            let box = Unmanaged<Box>.fromOpaque(context!).takeUnretainedValue()
            let bytes = UnsafeRawBufferPointer(start: data, count: size * count)
            box.body.append(contentsOf: bytes)
            if let onData = box.onData, !onData(bytes) { return 0 }  // curl ends the transfer
            return size * count
        }
        aligner_curl_setopt_pointer(curl, CURLOPT_WRITEDATA, context)
        aligner_curl_setopt_header_function(curl) { data, size, count, context in
            let box = Unmanaged<Box>.fromOpaque(context!).takeUnretainedValue()
            let line = String(decoding: UnsafeRawBufferPointer(start: data, count: size * count), as: UTF8.self)
            if let colon = line.firstIndex(of: ":") {
                let name = line[..<colon].lowercased()
                let value = line[line.index(after: colon)...].trimmingCharacters(in: .whitespacesAndNewlines)
                box.headers[name] = value
            }
            return size * count
        }
        aligner_curl_setopt_pointer(curl, CURLOPT_HEADERDATA, context)
        var list: UnsafeMutablePointer<curl_slist>?
        for (name, value) in headers { list = curl_slist_append(list, "\(name): \(value)") }
        list = curl_slist_append(list, "Expect:")
        defer { curl_slist_free_all(list) }
        aligner_curl_setopt_pointer(curl, CURLOPT_HTTPHEADER, UnsafeMutableRawPointer(list))
        let payload = body ?? []
        let code: CURLcode = payload.withUnsafeBytes { raw in
            if body != nil {
                aligner_curl_setopt_off(curl, CURLOPT_POSTFIELDSIZE_LARGE, curl_off_t(raw.count))
                aligner_curl_setopt_pointer(curl, CURLOPT_POSTFIELDS, UnsafeMutableRawPointer(mutating: raw.baseAddress ?? UnsafeRawPointer(bitPattern: 1)!))
            }
            return curl_easy_perform(curl)
        }
        let stopped = onData != nil && code == CURLE_WRITE_ERROR
        guard code == CURLE_OK || stopped || (partialOnTimeout && code == CURLE_OPERATION_TIMEDOUT) else {
            throw Failure(description: "\(method) \(url): \(String(cString: curl_easy_strerror(code)))")
        }
        var status = 0
        aligner_curl_getinfo_long(curl, CURLINFO_RESPONSE_CODE, &status)
        return Response(status: status, headers: box.headers, body: box.body)
    }

    final class Box {
        var onData: ((UnsafeRawBufferPointer) -> Bool)?
        var body: [UInt8] = []
        var headers: [String: String] = [:]
    }

    static let curlGlobalInit: Void = { curl_global_init(Int(CURL_GLOBAL_DEFAULT)) }()
}

extension HTTPClient {
    /// `send` on a Dispatch thread, so a test's blocking call never holds a cooperative thread.
    public static func request(
        _ method: String, _ url: String, headers: [String: String] = [:], body: [UInt8]? = nil,
        timeout: Duration = .seconds(10), partialOnTimeout: Bool = false
    ) async throws -> Response {
        try await blocking {
            try send(method, url, headers: headers, body: body, timeout: timeout, partialOnTimeout: partialOnTimeout)
        }
    }
}
