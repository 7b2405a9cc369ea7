import Foundation
import Verbatim

/// API keys and the tenants they belong to, from a JSON file:
/// `{"tenants": [{"id": "acme", "keys": ["sk-acme-1", ...]}, ...],
///   "shared_prefixes": [{"system": "You are a helpful assistant."}, {"text": "..."}]}`.
/// Requests run as their key's tenant (`Engine.generate(_:parameters:tenant:)`: the cache salt
/// comes from the tenant id, never from a request). `shared_prefixes` (optional) are public:
/// leaking that someone sent them is harmless; they go into `EngineConfiguration.sharedPrefixes`.
public struct TenantDirectory: Sendable {
    public let tenantOfKey: [String: String]
    public let sharedPrefixes: [SharedPrefix]

    public init(tenantOfKey: [String: String], sharedPrefixes: [SharedPrefix] = []) {
        self.tenantOfKey = tenantOfKey
        self.sharedPrefixes = sharedPrefixes
    }

    /// The tenants file as written (see the type's description).
    struct File: Decodable {
        struct Tenant: Decodable {
            var id: String
            var keys: [String]
        }
        var tenants: [Tenant]
        var sharedPrefixes: [SharedPrefix]?
        enum CodingKeys: String, CodingKey { case tenants, sharedPrefixes = "shared_prefixes" }
    }

    /// Reads a tenants file; a 500 naming the file and what is wrong with it otherwise.
    public init(file: String) throws(APIError) {
        func failure(_ message: String) -> APIError { APIError(500, "\(file): \(message)", type: "server_error") }
        guard let data = FileManager.default.contents(atPath: file) else {
            throw APIError(500, "cannot read the tenants file \(file)", type: "server_error")
        }
        let contents: File
        do {
            contents = try JSONDecoder().decode(File.self, from: data)
        } catch let error as SharedPrefix.ParseError {
            throw failure(error.description)
        } catch {
            throw failure("expected {\"tenants\": [{\"id\": ..., \"keys\": [...]}]}")
        }
        var map: [String: String] = [:]
        for (i, t) in contents.tenants.enumerated() {
            guard !t.id.isEmpty, !t.keys.isEmpty else {
                throw failure("tenants[\(i)] needs a non-empty string 'id' and a non-empty 'keys' array")
            }
            for key in t.keys {
                if let other = map[key], other != t.id { throw failure("key listed for both \(other) and \(t.id)") }
                map[key] = t.id
            }
        }
        tenantOfKey = map
        sharedPrefixes = contents.sharedPrefixes ?? []
    }

    /// The tenant of an `Authorization: Bearer KEY` header, or a 401.
    func tenant(authorization: String?) throws(APIError) -> String {
        guard let header = authorization, header.hasPrefix("Bearer ") else {
            throw APIError(401, "missing API key: send 'Authorization: Bearer KEY'", type: "invalid_request_error", code: "missing_api_key")
        }
        guard let tenant = tenantOfKey[String(header.dropFirst(7))] else {
            throw APIError(401, "unknown API key", type: "invalid_request_error", code: "invalid_api_key")
        }
        return tenant
    }
}
