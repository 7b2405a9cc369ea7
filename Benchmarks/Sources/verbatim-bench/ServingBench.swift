import ArgumentParser
import Foundation
import VerbatimBench
import VerbatimModel
#if canImport(Glibc)
import Glibc
#endif

/// `verbatim serve` and llama.cpp's C++ `llama-server` as processes, on the same GGUF and thread
/// count, under the same load sent by the same client (`baseline/serving_client.py`), in one run.
struct ServingBench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "serving",
        abstract: "verbatim serve beside llama-server: throughput and TTFT by concurrency, short requests among long documents, memory, determinism.",
        discussion: """
            Phases, in one run per server: idle (short requests alone), one level per concurrency (distinct prompts, \
            greedy), mixed (short requests sent while long documents are prefilled), determinism (identical sampled \
            requests among other traffic). The mixed phase runs again for each prefill order of verbatim serve. \
            Memory is each process's resident set: idle after one request, peak (VmHWM) over the load, idle after it.
            """)

    @Option(help: "GGUF model file.") var model: String = defaultModelPath()
    @Option(help: "Threads of both servers.") var threads = 2
    @Option(help: "Concurrent clients per level, comma-separated.") var concurrency = "1,4,16,32,64"
    @Option(help: "Requests per level at least (each client sends one or more).") var requestsPerLevel = 16
    @Option(help: "Requests each client of a level sends at least, one after another, so that a level measures the servers under steady load rather than one burst of first requests and its tail.")
    var requestsPerClient = 6
    @Option(help: "Prompt tokens of the concurrency levels (approximately: text cut by tokens, chat-formatted).") var promptTokens = 128
    @Option(help: "Tokens generated per request at the concurrency levels.") var newTokens = 64
    @Option(help: "mixed: long documents (tokens) and how many clients send them.") var documentTokens = 900
    @Option(help: "mixed: clients sending long documents, two each.") var documentClients = 3
    @Option(help: "Prefill orders of verbatim serve for the mixed phase, comma-separated (the first runs every phase).")
    var policies = "shortest-first,arrival,round-robin"
    @Option(help: "The verbatim binary (built with: swift build -c release --package-path Tools --product verbatim).") var verbatim: String = defaultVerbatimBinary()
    @Option(help: "verbatim serve --max-batch-tokens.") var maxBatchTokens = 64
    @Option(help: "verbatim serve --kv-memory (MiB).") var kvMemory = 1024
    @Option(help: "KV storage of verbatim serve, comma-separated: the first runs every phase, the others the concurrency levels again (llama-server stores f16 by default).")
    var kvTypes = "f32,f16"
    @Flag(inversion: .prefixedNo, help: "Run llama.cpp's llama-server (C++, built once into .build-llamacpp/cpp) beside it.")
    var baseline = true
    @Option(help: "Speculation from the request's own text in both servers (0: none): verbatim serve --draft-tokens N, llama-server --spec-type ngram-simple (3-token lookup, N-token drafts).")
    var draftTokens = 0
    @Option(help: "Write every request's figures as JSON here.") var json: String?
    @Option(help: "Rounds of the concurrency levels: after the first, each round runs verbatim serve (first order and KV type) and then llama-server again, and the medians over the rounds are reported (a shared machine drifts between one server's run and the other's).")
    var rounds = 1

    func validate() throws {
        guard rounds >= 1 else { throw ValidationError("--rounds must be at least 1") }
        guard requestsPerLevel >= 1, requestsPerClient >= 1 else { throw ValidationError("--requests-per-level and --requests-per-client must be at least 1") }
        guard draftTokens >= 0, draftTokens <= 64 else { throw ValidationError("--draft-tokens must be between 0 and 64") }
        guard rounds == 1 || baseline else { throw ValidationError("--rounds compares with llama-server: drop --no-baseline") }
    }

    func run() async throws {
        let file = try GGUFFile(path: model)
        let tokenizer = try Tokenizer(file: file)
        let plan = LoadPlan(tokenizer: tokenizer, levels: concurrency.split(separator: ",").compactMap { Int($0) },
                            requestsPerLevel: requestsPerLevel, requestsPerClient: requestsPerClient,
                            promptTokens: promptTokens, newTokens: newTokens,
                            documentTokens: documentTokens, documentClients: documentClients)
        let orders = policies.split(separator: ",").map(String.init)
        print("model \(model), \(threads) threads, levels \(concurrency), \(promptTokens)-token prompts, \(newTokens) new tokens\n")

        var runs: [ServerRun] = []
        let kvs = kvTypes.split(separator: ",").map(String.init)
        func verbatimRun(_ order: String, kv: String, _ phases: [[LoadPhase]], index: Int) throws -> ServerRun {
            let folder = NSTemporaryDirectory() + "verbatim-serving-\(getpid())-\(index)"
            defer { try? FileManager.default.removeItem(atPath: folder) }
            let port = try freePort()
            let server = try ServerProcess(
                name: "verbatim serve (\(order)\(kv == kvs.first ? "" : ", \(kv) KV")\(draftTokens > 0 ? ", \(draftTokens) draft tokens" : ""))",
                executable: verbatim,
                arguments: ["serve", "--model", model, "--cache", folder, "--port", String(port), "--prefill-order", order,
                            "--max-batch-tokens", String(maxBatchTokens), "--kv-memory", String(kvMemory), "--kv-type", kv,
                            "--draft-tokens", String(draftTokens)],
                environment: ["VERBATIM_THREADS": String(threads)], port: port, health: "/health")
            return try server.measure(phases)
        }
        func serve(_ order: String, kv: String, _ phases: [[LoadPhase]], index: Int) throws {
            runs.append(try verbatimRun(order, kv: kv, phases, index: index))
        }
        let slots = max(plan.levels.max() ?? 16, 16)
        let speculation = draftTokens > 0
            ? ["--spec-type", "ngram-simple", "--spec-ngram-simple-size-n", "3", "--spec-ngram-simple-size-m", String(draftTokens)] : []
        func llamaRun(_ bin: String, _ phases: [[LoadPhase]]) throws -> ServerRun {
            let port = try freePort()
            let server = try ServerProcess(
                name: "llama-server -np \(slots)\(draftTokens > 0 ? ", ngram drafts \(draftTokens)" : "")", executable: bin + "/llama-server",
                arguments: ["-m", model, "-t", String(threads), "-tb", String(threads), "-np", String(slots), "--kv-unified",
                            "-c", String(slots * 1024), "--cache-reuse", "256", "--host", "127.0.0.1", "--port", String(port)] + speculation,
                environment: [:], port: port, health: "/health")
            return try server.measure(phases)
        }
        for (i, order) in orders.enumerated() {
            try serve(order, kv: kvs.first ?? "f32", i == 0 ? plan.all : plan.mixedOnly, index: i)
        }
        for (i, kv) in kvs.enumerated().dropFirst() {
            try serve(orders[0], kv: kv, plan.levelsOnly, index: orders.count + i)
        }
        var extra: [(verbatim: ServerRun, llama: ServerRun)] = [] // rounds 2...
        if baseline {
            guard let bin = llamaCppBinaries() else { throw ValidationError("llama-server could not be built (baseline/build-llama-cpp)") }
            runs.append(try llamaRun(bin, plan.all))
            // The memory target compares with a 16-slot server, idle after one request.
            let small = try freePort()
            let sixteen = try ServerProcess(
                name: "llama-server -np 16", executable: bin + "/llama-server",
                arguments: ["-m", model, "-t", String(threads), "-tb", String(threads), "-np", "16", "--kv-unified",
                            "-c", String(16 * 1024), "--cache-reuse", "256", "--host", "127.0.0.1", "--port", String(small)],
                environment: [:], port: small, health: "/health")
            runs.append(try sixteen.measure(plan.warmupOnly))
            for round in (1..<rounds).map({ $0 + 1 }) {
                print("round \(round) of \(rounds): verbatim serve, then llama-server …")
                var v = try verbatimRun(orders[0], kv: kvs.first ?? "f32", plan.levelsOnly, index: orders.count + kvs.count + round)
                var l = try llamaRun(bin, plan.levelsOnly)
                v.name += " round \(round)"
                l.name += " round \(round)"
                extra.append((v, l))
            }
        }
        report(runs, plan)
        if !extra.isEmpty { reportRounds(runs, extra, plan) }
        if let json {
            try JSONEncoder().encode(runs + extra.flatMap { [$0.verbatim, $0.llama] }).write(to: URL(fileURLWithPath: json))
            print("\nwrote \(json)")
        }
    }

    func report(_ runs: [ServerRun], _ plan: LoadPlan) {
        let first = runs[0]
        let llama = runs.first { $0.name.hasPrefix("llama-server -np") && $0.phases.count > 1 }
        // Every verbatim run with the concurrency levels: the first (every phase), then the other KV types.
        let levelRuns = runs.filter { !$0.name.hasPrefix("llama-server") && $0.phase("clients=\(plan.levels.first ?? 1)") != nil }
        print("### Throughput and TTFT by concurrency (greedy, distinct prompts)\n")
        print("| clients | " + levelRuns.map { "\($0.name) tok/s | ratio | " }.joined() + "llama-server tok/s | "
              + "verbatim TTFT p50 / p99 | llama-server TTFT p50 / p99 |")
        print("|---|" + String(repeating: "---|---|", count: levelRuns.count) + "---|---|---|")
        for level in plan.levels {
            let name = "clients=\(level)"
            guard let v = first.phase(name) else { continue }
            let l = llama?.phase(name)
            var row = "| \(level) | "
            for run in levelRuns {
                let t = run.phase(name)?.tokensPerSecond ?? 0
                row += "\(f0(t)) | \(l.map { String(format: "%.2f×", t / $0.tokensPerSecond) } ?? "–") | "
            }
            print(row + "\(l.map { f0($0.tokensPerSecond) } ?? "–") | "
                  + "\(ms(v.ttft(50))) / \(ms(v.ttft(99))) | \(l.map { "\(ms($0.ttft(50))) / \(ms($0.ttft(99)))" } ?? "–") |")
        }
        print("\n### Short requests among long documents (TTFT of the short ones)\n")
        print("| server | short alone p50 | short among documents p50 / p99 | ratio p50 to alone | documents done in |")
        print("|---|---|---|---|---|")
        for run in runs where run.phase("mixed") != nil {
            let idle = run.phase("idle")!, mixed = run.phase("mixed")!
            let short = mixed.requests.filter { $0.tag == "short" }
            let long = mixed.requests.filter { $0.tag == "document" }
            let p50 = Percentile.of(short.compactMap(\.ttft), 50)
            print("| \(run.name) | \(ms(idle.ttft(50))) | \(ms(p50)) / \(ms(Percentile.of(short.compactMap(\.ttft), 99))) | "
                  + "\(String(format: "%.1f×", p50 / idle.ttft(50))) | \(String(format: "%.1f s", long.map(\.endToEnd).max() ?? 0)) |")
        }
        print("\n### Memory (resident set)\n")
        print("| server | idle after one request | peak under load | idle after the load |")
        print("|---|---|---|---|")
        for run in runs {
            print("| \(run.name) | \(mib(run.idleRSS)) | \(run.phases.count > 2 ? mib(run.peakRSS) : "–") | \(run.phases.count > 2 ? mib(run.afterRSS) : "–") |")
        }
        print("\n### Determinism (identical sampled requests among other traffic)\n")
        for run in runs {
            guard let d = run.phase("determinism") else { continue }
            for tag in ["identical greedy", "identical sampled"] {
                let same = d.requests.filter { $0.tag == tag }
                print("- \(run.name), \(tag.dropFirst(10)) (T = \(tag.hasSuffix("greedy") ? "0" : "0.8, seed 42")): "
                      + "\(Set(same.map(\.text)).count) distinct completions of \(same.count) identical requests")
            }
        }
        let failed = runs.flatMap { run in run.phases.flatMap { $0.requests.filter { $0.status != 200 }.map { (run.name, $0) } } }
        if !failed.isEmpty { print("\n\(failed.count) requests failed, first: \(failed[0].0): \(failed[0].1.status) \(failed[0].1.error ?? "")") }
    }

    /// The levels' throughput in every round (round 1: the runs above), and the medians.
    func reportRounds(_ runs: [ServerRun], _ extra: [(verbatim: ServerRun, llama: ServerRun)], _ plan: LoadPlan) {
        guard let v1 = runs.first, let l1 = runs.first(where: { $0.name.hasPrefix("llama-server -np") && $0.phases.count > 1 }) else { return }
        let pairs = [(v1, l1)] + extra.map { ($0.verbatim, $0.llama) }
        print("\n### Rounds: the levels again, each round verbatim serve then llama-server (\(v1.name))\n")
        print("| clients | " + (1...pairs.count).map { "round \($0) tok/s (ratio) | " }.joined()
              + "median verbatim tok/s | median llama-server tok/s | median ratio |")
        print("|---|" + String(repeating: "---|", count: pairs.count) + "---|---|---|")
        for level in plan.levels {
            let name = "clients=\(level)"
            let got = pairs.compactMap { p -> (Double, Double)? in
                guard let v = p.0.phase(name), let l = p.1.phase(name) else { return nil }
                return (v.tokensPerSecond, l.tokensPerSecond)
            }
            guard got.count == pairs.count else { continue }
            let cells = got.map { "\(f0($0.0)) / \(f0($0.1)) (\(String(format: "%.2f×", $0.0 / $0.1))) | " }.joined()
            print("| \(level) | " + cells + "\(f0(median(got.map(\.0)))) | \(f0(median(got.map(\.1)))) | "
                  + "\(String(format: "%.2f×", median(got.map { $0.0 / $0.1 }))) |")
        }
    }

    func f0(_ x: Double) -> String { String(format: "%.0f", x) }
    func ms(_ seconds: Double) -> String { seconds < 1 ? String(format: "%.0f ms", seconds * 1000) : String(format: "%.2f s", seconds) }
    func mib(_ bytes: Int) -> String { "\(bytes >> 20) MiB" }
}

func defaultVerbatimBinary() -> String {
    let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().deletingLastPathComponent()
    return root.appendingPathComponent("Tools/.build/release/verbatim").path
}

/// A port no one listens on now.
func freePort() throws -> Int {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    guard fd >= 0 else { throw ValidationError("socket() failed") }
    defer { close(fd) }
    var address = sockaddr_in()
    address.sin_family = sa_family_t(AF_INET)
    address.sin_addr.s_addr = inet_addr("127.0.0.1")
    address.sin_port = 0
    var length = socklen_t(MemoryLayout<sockaddr_in>.size)
    let bound = withUnsafeMutablePointer(to: &address) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, length) == 0 && getsockname(fd, $0, &length) == 0 }
    }
    guard bound else { throw ValidationError("cannot bind a free port") }
    return Int(UInt16(bigEndian: address.sin_port))
}

// MARK: - The load

/// One request as the client script sends it.
struct LoadRequest: Codable {
    struct Message: Codable { var role: String; var content: String }
    var messages: [Message]
    var max_tokens: Int
    var temperature: Double = 0
    var seed: Int = 0
    var delay: Double = 0
    var tag: String
}

struct LoadPhase: Codable {
    var name: String
    var clients: [[LoadRequest]]
}

/// Every phase of the load, built once so both servers get the same requests.
struct LoadPlan {
    let levels: [Int]
    let warmup: LoadPhase, idle: LoadPhase, byLevel: [LoadPhase], mixed: LoadPhase, determinism: LoadPhase

    init(tokenizer: Tokenizer, levels: [Int], requestsPerLevel: Int, requestsPerClient: Int, promptTokens: Int, newTokens: Int,
         documentTokens: Int, documentClients: Int) {
        self.levels = levels
        let text = tokenizer.encode(realText(), addBOS: false)
        var next = 0
        /// Text of about `count` tokens, each call from a different place (prompts never share a prefix but the template's).
        func passage(_ count: Int) -> String {
            let start = (next * 37) % max(1, text.count - count)
            next += 1
            return (try? tokenizer.decode(Array(text[start..<min(text.count, start + count)]))) ?? ""
        }
        func request(_ label: String, _ tokens: Int, _ maxTokens: Int, tag: String, delay: Double = 0) -> LoadRequest {
            LoadRequest(messages: [.init(role: "user", content: "\(label) Summarise: " + passage(tokens))], max_tokens: maxTokens,
                        delay: delay, tag: tag)
        }
        warmup = LoadPhase(name: "warmup", clients: [[request("Warm-up.", 32, 8, tag: "warmup")]])
        idle = LoadPhase(name: "idle", clients: [(0..<6).map { request("Question \($0).", 24, 8, tag: "short") }])
        var phases: [LoadPhase] = []
        for (l, c) in levels.enumerated() {
            let each = max(1, requestsPerClient, (requestsPerLevel + c - 1) / c)
            phases.append(LoadPhase(name: "clients=\(c)", clients: (0..<c).map { client in
                (0..<each).map { r in request("Level \(l), client \(client), request \(r).", promptTokens, newTokens, tag: "level") }
            }))
        }
        byLevel = phases
        // Long documents from several clients; one client sends short requests while they prefill.
        var clients = (0..<documentClients).map { d in
            (0..<2).map { i in request("Document \(d).\(i).", documentTokens, 16, tag: "document") }
        }
        clients.append((0..<12).map { i in request("Short \(i).", 24, 8, tag: "short", delay: i == 0 ? 0.5 : 0.25) })
        mixed = LoadPhase(name: "mixed", clients: clients)
        // 16 clients: three identical greedy and three identical sampled (seeded) requests each,
        // between distinct ones of other lengths.
        let message = [LoadRequest.Message(role: "user", content: "Write one sentence about the sea.")]
        let greedy = LoadRequest(messages: message, max_tokens: 32, temperature: 0, seed: 42, tag: "identical greedy")
        let sampled = LoadRequest(messages: message, max_tokens: 32, temperature: 0.8, seed: 42, tag: "identical sampled")
        determinism = LoadPhase(name: "determinism", clients: (0..<16).map { c in
            (0..<3).flatMap { r in
                [greedy, request("Other \(c).\(r).", 16 + 24 * ((c + r) % 8), 16, tag: "other"), sampled]
            }
        })
    }

    var all: [[LoadPhase]] { [[warmup], [idle] + byLevel + [mixed, determinism]] }
    var mixedOnly: [[LoadPhase]] { [[warmup], [idle, mixed]] }
    var levelsOnly: [[LoadPhase]] { [[warmup], [idle] + byLevel] }
    var warmupOnly: [[LoadPhase]] { [[warmup], []] }
}

// MARK: - A server process and its measurement

struct RequestResult: Codable {
    var tag: String
    var status: Int
    var ttft: Double?
    var end_to_end: Double
    var tokens: Int
    var text: String
    var error: String?
    var endToEnd: Double { end_to_end }
}

struct PhaseResult: Codable {
    var name: String
    var wall_seconds: Double
    var requests: [RequestResult]
    var tokensPerSecond: Double { Double(requests.reduce(0) { $0 + $1.tokens }) / wall_seconds }
    /// TTFT percentile `p` (0...100) of this phase's requests.
    func ttft(_ p: Double) -> Double { Percentile.of(requests.compactMap(\.ttft), p) }
}

struct ServerRun: Codable {
    var name: String
    var phases: [PhaseResult] = []
    var idleRSS = 0, peakRSS = 0, afterRSS = 0
    func phase(_ name: String) -> PhaseResult? { phases.first { $0.name == name } }
}

final class ServerProcess {
    let name: String
    let process = Process()
    let port: Int

    init(name: String, executable: String, arguments: [String], environment: [String: String], port: Int, health: String) throws {
        self.name = name
        self.port = port
        guard FileManager.default.isExecutableFile(atPath: executable) else {
            throw ValidationError("\(name): \(executable) is not an executable (build it first)")
        }
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = arguments
        process.environment = ProcessInfo.processInfo.environment.merging(environment) { $1 }
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        try process.run()
        // Ready when its health endpoint answers 200 (the model is loaded).
        for _ in 0..<1200 {
            if !process.isRunning { throw ValidationError("\(name) exited with status \(process.terminationStatus) before it was ready") }
            if runCommand("/usr/bin/curl", ["-sf", "-o", "/dev/null", "http://127.0.0.1:\(port)\(health)"]) == 0 { return }
            usleep(100_000)
        }
        process.terminate()
        throw ValidationError("\(name) was not ready within 120 s")
    }

    deinit { stop() }

    /// SIGTERM, then SIGKILL if it is still running 5 s later (a server may wait on idle connections).
    func stop() {
        guard process.isRunning else { return }
        process.terminate()
        for _ in 0..<50 where process.isRunning { usleep(100_000) }
        if process.isRunning { kill(process.processIdentifier, SIGKILL) }
        process.waitUntilExit()
    }

    /// Resident and peak resident bytes of the process now.
    func memory() -> (rss: Int, peak: Int) {
        let status = (try? String(contentsOfFile: "/proc/\(process.processIdentifier)/status", encoding: .utf8)) ?? ""
        func field(_ key: String) -> Int {
            guard let line = status.split(separator: "\n").first(where: { $0.hasPrefix(key + ":") }) else { return 0 }
            return (Int(line.split(separator: " ").dropFirst().first ?? "") ?? 0) * 1024
        }
        return (field("VmRSS"), field("VmHWM"))
    }

    /// Runs the warm-up groups, then the measured ones; memory idle before and after, peak over the load.
    func measure(_ groups: [[LoadPhase]]) throws -> ServerRun {
        defer { stop() }
        var result = ServerRun(name: name)
        print("running \(name) …")
        _ = try send(groups[0])
        sleep(2)
        result.idleRSS = memory().rss
        if groups.count > 1, !groups[1].isEmpty {
            result.phases = try send(groups[1])
            result.peakRSS = memory().peak
            sleep(3)
            result.afterRSS = memory().rss
        }
        return result
    }

    private func send(_ phases: [LoadPhase]) throws -> [PhaseResult] {
        let here = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        let plan = NSTemporaryDirectory() + "verbatim-serving-plan-\(getpid()).json", output = plan + ".out"
        defer { try? FileManager.default.removeItem(atPath: plan); try? FileManager.default.removeItem(atPath: output) }
        struct Plan: Codable { var phases: [LoadPhase] }
        struct Output: Codable { var phases: [PhaseResult] }
        try JSONEncoder().encode(Plan(phases: phases)).write(to: URL(fileURLWithPath: plan))
        let status = runCommand("/usr/bin/env", ["python3", here.appendingPathComponent("baseline/serving_client.py").path,
                                          "http://127.0.0.1:\(port)", plan, output])
        guard status == 0, let data = FileManager.default.contents(atPath: output) else {
            throw ValidationError("the load client failed against \(name) (status \(status))")
        }
        return try JSONDecoder().decode(Output.self, from: data).phases
    }
}

/// Runs a command and returns its exit status.
@discardableResult
func runCommand(_ executable: String, _ arguments: [String]) -> Int32 {
    let p = Process()
    p.executableURL = URL(fileURLWithPath: executable)
    p.arguments = arguments
    p.standardOutput = FileHandle.nullDevice
    p.standardError = FileHandle.nullDevice
    guard (try? p.run()) != nil else { return -1 }
    p.waitUntilExit()
    return p.terminationStatus
}
