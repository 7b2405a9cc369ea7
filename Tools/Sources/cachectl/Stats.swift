import ArgumentParser
import Foundation
import VerbatimCache
import VerbatimModel

/// `cachectl stats`: what the cache holds, how well it serves, and how the file is doing.
struct Stats: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Entries, bytes, hit rates, tokens saved, evictions, file and reader use.",
        discussion: "JSON keys are stable; see the cachectl section of docs/GUIDE.md for each one.")

    @OptionGroup var path: PathOption
    @Flag(help: "Print JSON instead of a table.") var json = false

    /// Age buckets (upper bounds in seconds) and reuse buckets (hits).
    static let ageBuckets: [(String, Int)] = [("<1h", 3600), ("<1d", 86400), ("<7d", 604_800), (">=7d", .max)]
    static let reuseBuckets: [(String, ClosedRange<UInt64>)] = [("0", 0...0), ("1", 1...1), ("2-9", 2...9), ("10+", 10...UInt64.max)]

    func run() throws {
        try guarded {
            let store = try path.open()
            let s = try store.stats()
            let entries = try store.entries()
            let c = s.counters
            func n(_ key: String) -> UInt64 { c[key] ?? 0 }

            // By model and numerics profile.
            struct ModelRow { var kvBlocks = 0, completions = 0, bytes = 0 }
            var models: [String: ModelRow] = [:]
            var ages = [Int](repeating: 0, count: Self.ageBuckets.count)
            var reuse = [Int](repeating: 0, count: Self.reuseBuckets.count)
            let now = Int(Date().timeIntervalSince1970)
            for e in entries {
                let id = "\(e.model)|\(e.profile)"
                if e.kind == .kvBlock { models[id, default: ModelRow()].kvBlocks += 1 } else { models[id, default: ModelRow()].completions += 1 }
                models[id, default: ModelRow()].bytes += e.payloadBytes
                let age = now - Int(e.created)
                ages[Self.ageBuckets.firstIndex { age < $0.1 } ?? Self.ageBuckets.count - 1] += 1
                reuse[Self.reuseBuckets.firstIndex { $0.1.contains(e.hits) } ?? 0] += 1
            }
            // Profiles recorded by engines that opened the cache, even with no entries left.
            for m in s.models where models["\(m.digest)|\(m.profile)"] == nil { models["\(m.digest)|\(m.profile)"] = ModelRow() }
            let modelRows = models.sorted { $0.key < $1.key }.map { (id, row) -> (digest: String, profile: String, row: ModelRow) in
                let parts = id.split(separator: "|", maxSplits: 1).map(String.init)
                return (parts[0], parts.count > 1 ? parts[1] : "", row)
            }
            let secondsPerToken = n("compute.tokens") > 0 ? Double(n("compute.ns")) / 1e9 / Double(n("compute.tokens")) : 0
            let secondsSaved = Double(n("tokens_saved")) * secondsPerToken
            let freeBytes = s.freePages * s.pageSize
            let rate = { (hits: UInt64, lookups: UInt64) -> Any in lookups == 0 ? NSNull() : Double(hits) / Double(lookups) }
            // Entries served per tier: "local" (this folder's LMDB) and each shared tier by name,
            // with that tier's corrupt, mismatched and failed reads and its write-behind.
            var tiers: [String: [String: UInt64]] = [:]
            for (key, value) in c where key.hasPrefix("tier.") {
                let parts = key.split(separator: ".", maxSplits: 2).map(String.init)
                if parts.count == 3 { tiers[parts[1], default: [:]][parts[2]] = value }
            }
            if tiers["local"] == nil { tiers["local"] = ["entries_hit": 0] }

            if json {
                try printJSON([
                    "path": store.directory,
                    "format": Int(CacheStore.formatVersion),
                    "entries.kv_blocks": s.kvBlocks,
                    "entries.completions": s.completions,
                    "bytes.payload": s.payloadBytes,
                    "bytes.file": s.fileBytes,
                    "bytes.map": s.mapBytes,
                    "bytes.used": s.usedBytes,
                    "bytes.free_pages": freeBytes,
                    "lookups.prefix_tokens": n("lookups.prefix_tokens"),
                    "hits.prefix_tokens": n("hits.prefix_tokens"),
                    "hit_rate.prefix_tokens": rate(n("hits.prefix_tokens"), n("lookups.prefix_tokens")),
                    "hits.partial_blocks": n("hits.partial_blocks"),
                    "lookups.completions": n("lookups.completions"),
                    "hits.completions": n("hits.completions"),
                    "hit_rate.completions": rate(n("hits.completions"), n("lookups.completions")),
                    "tokens_saved": n("tokens_saved"),
                    "seconds_saved_estimate": secondsSaved,
                    "evictions": ["budget": n("evictions.budget"), "corruption": n("evictions.corruption"), "explicit": n("evictions.explicit")],
                    "writes": ["committed": n("writes.committed"), "dropped": n("writes.dropped"), "failed": n("writes.failed")],
                    "readers": ["in_use": s.readersInUse, "max": s.maxReaders],
                    "tiers": tiers,
                    "models": modelRows.map {
                        ["digest": $0.digest, "profile": $0.profile, "kv_blocks": $0.row.kvBlocks,
                         "completions": $0.row.completions, "bytes": $0.row.bytes, "entries": $0.row.kvBlocks + $0.row.completions]
                    },
                    "age": Dictionary(uniqueKeysWithValues: zip(Self.ageBuckets.map(\.0), ages)),
                    "reuse": Dictionary(uniqueKeysWithValues: zip(Self.reuseBuckets.map(\.0), reuse)),
                ] as [String: Any])
                return
            }

            var rows: [[String]] = [
                ["entries", "\(s.kvBlocks + s.completions)", "\(s.kvBlocks) KV blocks, \(s.completions) completions"],
                ["payload", Format.bytes(s.payloadBytes), ""],
                ["file", Format.bytes(s.fileBytes), "\(Format.bytes(s.usedBytes)) used, \(Format.bytes(freeBytes)) on the free list"],
                ["map", Format.bytes(s.mapBytes), ""],
                ["prefix hit rate", Format.percent(n("hits.prefix_tokens"), of: n("lookups.prefix_tokens")),
                 "\(n("hits.prefix_tokens")) of \(n("lookups.prefix_tokens")) prompt tokens (\(n("hits.partial_blocks")) hits ended inside a block)"],
                ["completion hit rate", Format.percent(n("hits.completions"), of: n("lookups.completions")),
                 "\(n("hits.completions")) of \(n("lookups.completions")) requests"],
                ["tokens saved", "\(n("tokens_saved"))", secondsPerToken > 0 ? String(format: "about %.1f s of compute", secondsSaved) : ""],
                ["evictions", "\(n("evictions.budget") + n("evictions.corruption") + n("evictions.explicit"))",
                 "budget \(n("evictions.budget")), corruption \(n("evictions.corruption")), explicit \(n("evictions.explicit"))"],
                ["writes", "\(n("writes.committed"))", "dropped \(n("writes.dropped")), failed \(n("writes.failed"))"],
                ["readers", "\(s.readersInUse)", "of \(s.maxReaders) slots"],
            ] + tiers.sorted { $0.key < $1.key }.map { name, t in
                ["\(name) tier hits", "\(t["entries_hit"] ?? 0)",
                 t.filter { $0.key != "entries_hit" }.sorted { $0.key < $1.key }.map { "\($0.key.replacingOccurrences(of: "_", with: " ")) \($0.value)" }
                    .joined(separator: ", ")]
            } + [
                ["age", "", zip(Self.ageBuckets.map(\.0), ages).map { "\($0) \($1)" }.joined(separator: ", ")],
                ["reuse (hits)", "", zip(Self.reuseBuckets.map(\.0), reuse).map { "\($0): \($1)" }.joined(separator: ", ")],
            ]
            if let failure = s.writeFailure { rows.append(["write failure", "", failure]) }
            print("cache \(store.directory)")
            print(Format.table(rows, right: [1]))
            if !modelRows.isEmpty {
                print("")
                print(Format.table(modelRows.map {
                    [$0.digest, $0.profile, "\($0.row.kvBlocks)", "\($0.row.completions)", Format.bytes($0.row.bytes)]
                }, header: ["model", "profile", "kv_blocks", "completions", "bytes"], right: [2, 3, 4]))
            }
        }
    }
}
