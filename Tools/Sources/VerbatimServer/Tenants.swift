import Foundation
import Verbatim
import VerbatimCache

/// API keys and the tenants they belong to, from a JSON file:
/// `{"tenants": [{"id": "acme", "keys": ["sk-acme-1", ...]}, ...],
///   "shared_prefixes": [{"system": "You are a helpful assistant."}, {"text": "..."}]}`.
/// The cache salt is derived here from the tenant id, never taken from a request.
/// `shared_prefixes` (optional) are public: leaking that someone sent them is harmless.
public struct TenantDirectory: Sendable {
    public let tenantOfKey: [String: String]
    public let sharedPrefixes: [SharedPrefix]

    public init(tenantOfKey: [String: String], sharedPrefixes: [SharedPrefix] = []) {
        self.tenantOfKey = tenantOfKey
        self.sharedPrefixes = sharedPrefixes
    }

    public init(file: String) throws(APIError) {
        guard let data = FileManager.default.contents(atPath: file) else {
            throw APIError(500, "cannot read the tenants file \(file)", type: "server_error")
        }
        guard let json = try? JSONSerialization.jsonObject(with: data) as? [String: Any], let list = json["tenants"] as? [[String: Any]] else {
            throw APIError(500, "\(file): expected {\"tenants\": [{\"id\": ..., \"keys\": [...]}]}", type: "server_error")
        }
        var map: [String: String] = [:]
        for (i, t) in list.enumerated() {
            guard let id = t["id"] as? String, !id.isEmpty, let keys = t["keys"] as? [String], !keys.isEmpty else {
                throw APIError(500, "\(file): tenants[\(i)] needs a non-empty string 'id' and a non-empty 'keys' array", type: "server_error")
            }
            for key in keys {
                if let other = map[key], other != id {
                    throw APIError(500, "\(file): key listed for both \(other) and \(id)", type: "server_error")
                }
                map[key] = id
            }
        }
        tenantOfKey = map
        do {
            sharedPrefixes = try json["shared_prefixes"].map(SharedPrefix.list(fromJSON:)) ?? []
        } catch {
            throw APIError(500, "\(file): \(error)", type: "server_error")
        }
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

    static func salt(tenant: String) -> [UInt8] { ContentAddress.tenantSalt(tenant) }
}
