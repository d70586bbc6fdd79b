import HTTPTypes
import Hummingbird

/// Answers a request whose path names a route but whose method does not with `405 Method Not
/// Allowed` and the methods that route takes in `Allow` (RFC 9110 §15.5.6), as Prometheus does
/// (`GET /api/v1/write` is a 405 there too); paths no route names stay 404.
///
/// Added to the router after every route, it only wraps the router's not-found responder.
struct MethodNotAllowedMiddleware<Context: RequestContext>: RouterMiddleware {
    /// Each route path with the methods registered on it.
    let routes: [(path: RouterPath, allow: String)]

    init(routes: [Router<Context>.RouteDescription]) {
        var methods: [String: (path: RouterPath, methods: [String])] = [:]
        for route in routes {
            methods[route.path.description, default: (route.path, [])].methods.append(route.method.rawValue)
        }
        self.routes = methods.values.map { ($0.path, $0.methods.sorted().joined(separator: ", ")) }
    }

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        let components = request.uri.path.split(separator: "/", omittingEmptySubsequences: true)
        for route in routes where route.path.components.count == components.count {
            if zip(route.path.components, components).allSatisfy({ $0.0 ~= $0.1 }) {
                let body = #"{"status":"error","error":"method \#(request.method.rawValue) not allowed on \#(route.path); allowed: \#(route.allow)"}"#
                return Response(
                    status: .methodNotAllowed,
                    headers: [.allow: route.allow, .contentType: "application/json"],
                    body: ResponseBody(byteBuffer: ByteBuffer(string: body)))
            }
        }
        return try await next(request, context)
    }
}
