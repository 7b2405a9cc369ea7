import Foundation

/// Passes of one workload under several configurations, compared with the first pass (the
/// baseline, normally "no cache"). Differences are paired by request label and given with
/// 95% bootstrap intervals; one whose interval contains zero is marked not significant.
public struct Comparison: Sendable {
    public let workload: Workload
    public let passes: [PassResult]
    /// Other systems measured on the same workload (e.g. llama.cpp's server).
    public var externals: [ExternalResult] = []
    public var resamples = 2000

    public init(workload: Workload, passes: [PassResult]) {
        precondition(!passes.isEmpty, "a comparison needs at least one pass")
        self.workload = workload
        self.passes = passes
    }

    public var baseline: PassResult { passes[0] }

    // MARK: Markdown

    public func markdown() -> String {
        var out = "### \(workload.name)\n\n\(workload.summary); \(workload.requestCount) requests per pass.\n\n"
        let hasIdentical = passes.contains { !$0.uniqueOutputs.isEmpty }
        var headers = ["configuration", "token hit rate", "request hit rate", "TTFT p50", "p90", "p99", "TPOT p50", "p90", "p99",
                       "end-to-end p50", "p90", "p99", "throughput", "stored", "evictions"]
        if hasIdentical { headers.append("unique completions / logprob vectors") }
        var table = MarkdownTable(headers: headers, alignments: [.left] + Array(repeating: .right, count: headers.count - 1))
        for p in passes {
            let ttft = LatencySummary(seconds: p.records.map(\.ttft))
            let tpot = LatencySummary(seconds: p.records.compactMap(\.tpot))
            let e2e = LatencySummary(seconds: p.records.map(\.endToEnd))
            var row = [p.label, Format.percent(p.tokenHitRate), Format.percent(p.requestHitRate),
                       Format.seconds(ttft.p50), Format.seconds(ttft.p90), Format.seconds(ttft.p99),
                       tpot.count == 0 ? "-" : Format.seconds(tpot.p50), tpot.count == 0 ? "-" : Format.seconds(tpot.p90),
                       tpot.count == 0 ? "-" : Format.seconds(tpot.p99),
                       Format.seconds(e2e.p50), Format.seconds(e2e.p90), Format.seconds(e2e.p99),
                       String(format: "%.1f tok/s", p.throughput),
                       p.configuration.usesCache ? "\(p.cacheEntries) entries, \(Format.bytes(p.cacheBytes))" : "-",
                       p.configuration.usesCache ? String(p.evictions) : "-"]
            if hasIdentical {
                row.append(p.uniqueOutputs.sorted { $0.key < $1.key }.map { "\($0.value.completions) / \($0.value.logprobVectors)" }.joined(separator: ", "))
            }
            table.add(row)
        }
        out += table.render()
        if passes.count > 1 {
            out += "\nAgainst **\(baseline.label)** (paired by request, 95% bootstrap intervals over \(resamples) resamples; n.s. = not significant):\n\n"
            var diff = MarkdownTable(headers: ["configuration", "Δ TTFT median", "TTFT median ratio", "Δ end-to-end mean", "Δ token hit rate"],
                                     alignments: [.left, .right, .right, .right, .right])
            for d in differences() {
                diff.add([d.label, Format.difference(d.ttftMedian, unit: Format.seconds), Format.difference(d.ttftMedianRatio, unit: Format.ratio),
                          Format.difference(d.endToEndMean, unit: Format.seconds), Format.difference(d.tokenHitRate, unit: Format.percent)])
            }
            out += diff.render()
        }
        if !externals.isEmpty {
            out += "\nSame workload against other servers (same GGUF, same thread count):\n\n"
            var ext = MarkdownTable(headers: ["system", "TTFT p50", "p90", "p99", "end-to-end p50", "throughput", "unique completions"],
                                    alignments: [.left, .right, .right, .right, .right, .right, .right])
            for e in externals {
                let ttft = LatencySummary(seconds: e.ttft), e2e = LatencySummary(seconds: e.endToEnd)
                ext.add([e.name, Format.seconds(ttft.p50), Format.seconds(ttft.p90), Format.seconds(ttft.p99), Format.seconds(e2e.p50),
                         String(format: "%.1f tok/s", e.throughput), e.uniqueCompletions.map(String.init) ?? "-"])
            }
            out += ext.render()
        }
        return out
    }

    // MARK: Differences

    public struct PassDifference: Sendable, Codable {
        public var label: String
        public var ttftMedian: Difference
        public var ttftMedianRatio: Difference
        public var endToEndMean: Difference
        public var tokenHitRate: Difference
    }

    /// Every pass after the first against the first, paired by request label.
    public func differences() -> [PassDifference] {
        let base = Dictionary(baseline.records.map { ($0.label, $0) }, uniquingKeysWith: { a, _ in a })
        return passes.dropFirst().enumerated().map { offset, p in
            let pairs = p.records.compactMap { r in base[r.label].map { ($0, r) } }
            let a = pairs.map(\.0), b = pairs.map(\.1)
            let seed = UInt64(offset + 1)
            return PassDifference(
                label: p.label,
                ttftMedian: Bootstrap.difference(a.map(\.ttft), b.map(\.ttft), paired: true, resamples: resamples, seed: seed, statistic: Statistic.median),
                ttftMedianRatio: Bootstrap.ratio(a.map(\.ttft), b.map(\.ttft), paired: true, resamples: resamples, seed: seed, statistic: Statistic.median),
                endToEndMean: Bootstrap.difference(a.map(\.endToEnd), b.map(\.endToEnd), paired: true, resamples: resamples, seed: seed,
                                                   statistic: Statistic.mean),
                tokenHitRate: Bootstrap.differenceOfRatios(aNum: a.map { Double($0.cachedPromptTokens) }, aDen: a.map { Double($0.promptTokens) },
                                                           bNum: b.map { Double($0.cachedPromptTokens) }, bDen: b.map { Double($0.promptTokens) },
                                                           paired: true, resamples: resamples, seed: seed))
        }
    }

    // MARK: JSON

    public struct PassSummary: Sendable, Codable {
        public var label: String
        public var configuration: BenchConfiguration
        public var pass: String
        public var requests: Int
        public var tokenHitRate: Double
        public var requestHitRate: Double
        public var ttft: LatencySummary
        public var tpot: LatencySummary
        public var endToEnd: LatencySummary
        public var throughputTokensPerSecond: Double
        public var wallSeconds: Double
        public var cacheEntries: Int
        public var cacheBytes: Int
        public var evictions: UInt64
        public var uniqueCompletions: [String: Int]
        public var uniqueLogprobVectors: [String: Int]
        public var records: [RequestRecord]
    }

    public struct Document: Sendable, Codable {
        public var workload: String
        public var summary: String
        public var passes: [PassSummary]
        public var differences: [PassDifference]
        public var externals: [ExternalResult]
    }

    public func document() -> Document {
        Document(workload: workload.name, summary: workload.summary, passes: passes.map { p in
            PassSummary(label: p.label, configuration: p.configuration, pass: p.pass, requests: p.records.count, tokenHitRate: p.tokenHitRate,
                        requestHitRate: p.requestHitRate, ttft: LatencySummary(seconds: p.records.map(\.ttft)),
                        tpot: LatencySummary(seconds: p.records.compactMap(\.tpot)), endToEnd: LatencySummary(seconds: p.records.map(\.endToEnd)),
                        throughputTokensPerSecond: p.throughput, wallSeconds: p.wallSeconds, cacheEntries: p.cacheEntries,
                        cacheBytes: p.cacheBytes, evictions: p.evictions,
                        uniqueCompletions: p.uniqueOutputs.mapValues(\.completions), uniqueLogprobVectors: p.uniqueOutputs.mapValues(\.logprobVectors),
                        records: p.records)
        }, differences: passes.count > 1 ? differences() : [], externals: externals)
    }

    // MARK: Charts

    /// Token hit rate against block size, one line per kind of cache and pass.
    public func hitRateChart() -> String? {
        var series: [String: [(x: Double, y: Double)]] = [:]
        var order: [String] = []
        for p in passes where p.configuration.usesCache {
            var kind = p.configuration.completionCache ? "prefix+completion" : "prefix"
            if let budget = p.configuration.byteBudget { kind += " (budget \(Format.bytes(budget)))" }
            let name = "\(kind), \(p.pass)"
            if series[name] == nil { order.append(name) }
            series[name, default: []].append((Double(p.configuration.blockSize), p.tokenHitRate))
        }
        guard series.values.contains(where: { Set($0.map(\.x)).count > 1 }) else { return nil }
        return SVGChart.lines(title: "\(workload.name): token hit rate vs block size", xLabel: "block size (tokens)", yLabel: "token hit rate",
                              series: order.map { ($0, series[$0]!) }, xLog2: true, yRange: 0...1)
    }

    /// Time to first token of every request, one row per pass.
    public func ttftChart() -> String {
        SVGChart.distributions(title: "\(workload.name): time to first token", unit: "ms",
                               series: passes.map { ($0.label, $0.records.map { $0.ttft * 1000 }) }
                                   + externals.map { ($0.name, $0.ttft.map { $0 * 1000 }) })
    }
}

/// A workload replayed against another server.
public struct ExternalResult: Sendable, Codable {
    public var name: String
    public var ttft: [Double]
    public var endToEnd: [Double]
    public var throughput: Double
    public var uniqueCompletions: Int?

    public init(name: String, ttft: [Double], endToEnd: [Double], throughput: Double, uniqueCompletions: Int?) {
        self.name = name
        self.ttft = ttft
        self.endToEnd = endToEnd
        self.throughput = throughput
        self.uniqueCompletions = uniqueCompletions
    }
}

extension Format {
    /// Bytes in binary units: "512 B", "3.2 KiB", "41.0 MiB".
    public static func bytes(_ n: Int) -> String {
        let units = ["B", "KiB", "MiB", "GiB", "TiB"]
        var value = Double(n), unit = 0
        while abs(value) >= 1024 && unit < units.count - 1 { value /= 1024; unit += 1 }
        return unit == 0 ? "\(n) B" : String(format: "%.1f %@", value, units[unit])
    }
}
