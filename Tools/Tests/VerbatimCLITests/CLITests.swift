import Foundation
import Testing
import VerbatimCache
import VerbatimKernels
import VerbatimModel

/// Runs the built `verbatim` binary, as a user would.
struct CLI {
    static let binary = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent()
        .appendingPathComponent("verbatim").path
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()   // Tools/Tests/VerbatimCLITests/CLITests.swift

    struct Result { let status: Int32; let stdout: Data; let stderr: String }

    static let cachectl = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent()
        .appendingPathComponent("cachectl").path

    /// The real model, found as the `verbatim` command finds it.
    static var modelPath: String {
        ModelLocation.path(modelsFolder: root.path + "/models")
    }

    static func run(_ arguments: [String], stdin: Data? = nil, binary: String = binary) throws -> Result {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: binary)
        process.arguments = arguments
        process.currentDirectoryURL = root
        let out = Pipe(), err = Pipe(), input = Pipe()
        process.standardOutput = out
        process.standardError = err
        process.standardInput = input
        try process.run()
        if let stdin { input.fileHandleForWriting.write(stdin) }
        try input.fileHandleForWriting.close()
        let stdout = out.fileHandleForReading.readDataToEndOfFile()
        let stderr = String(decoding: err.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        process.waitUntilExit()
        return Result(status: process.terminationStatus, stdout: stdout, stderr: stderr)
    }

    static func tokens(_ result: Result) throws -> [Int] {
        let object = try JSONSerialization.jsonObject(with: result.stdout) as? [String: Any]
        return try #require(object?["tokens"] as? [Int], "stdout: \(String(decoding: result.stdout, as: UTF8.self))")
    }
}

@Suite("verbatim command line")
struct CLITests {
    @Test("template prints the rendered prompt exactly; --var, --now and --bos-token reach the template; a template error exits non-zero")
    func template() throws {
        let conversation = Data(#"{"messages": [{"role": "user", "content": "Hi"}], "add_generation_prompt": true}"#.utf8)
        let model = try CLI.run(["template", "--model", CLI.modelPath, "-"], stdin: conversation)
        #expect(model.status == 0, "\(model.stderr)")
        #expect(String(decoding: model.stdout, as: UTF8.self) == "<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n"
            + "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n")

        let folder = NSTemporaryDirectory() + "verbatim-template-\(UInt32.random(in: 0...UInt32.max))"
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: folder) }
        let source = "{{ bos_token }}{{ strftime_now('%Y-%m-%d') }} {{ mode }} {{ tools | length }}\n{% for m in messages %}"
            + "{% if m.role == 'assistant' and loop.first %}{{ raise_exception('assistant cannot speak first') }}{% endif %}[{{ m.role }}] {{ m.content }}\n{% endfor %}"
        try source.write(toFile: folder + "/t.jinja", atomically: true, encoding: .utf8)
        try conversation.write(to: URL(fileURLWithPath: folder + "/m.json"))
        let file = try CLI.run(["template", "--template", folder + "/t.jinja", "--bos-token", "<s>", "--var", "mode=fast",
                                "--var", #"tools=[{"name": "f"}, {"name": "g"}]"#, "--now", "2026-01-02", folder + "/m.json"])
        #expect(file.status == 0, "\(file.stderr)")
        #expect(String(decoding: file.stdout, as: UTF8.self) == "<s>2026-01-02 fast 2\n[user] Hi\n")

        let refused = try CLI.run(["template", "--template", folder + "/t.jinja", "-"],
                                  stdin: Data(#"{"messages": [{"role": "assistant", "content": "x"}]}"#.utf8))
        #expect(refused.status != 0 && refused.stdout.isEmpty)
        #expect(refused.stderr.contains("assistant cannot speak first"))
        let broken = try CLI.run(["template", "--template", folder + "/m.json", "-"], stdin: Data("not json".utf8))
        #expect(broken.status != 0 && broken.stderr.contains("invalid JSON"))
    }

    @Test("tokenize --json prints the model's ids; TEXT and standard input agree")
    func tokenizeText() throws {
        #expect(FileManager.default.isExecutableFile(atPath: CLI.binary), "missing \(CLI.binary)")
        let fromArgument = try CLI.run(["tokenize", "--json", "Hello world 123"])
        #expect(fromArgument.status == 0, "\(fromArgument.stderr)")
        #expect(try CLI.tokens(fromArgument) == [19556, 905, 216, 33, 34, 35])
        let fromStdin = try CLI.run(["tokenize", "--json"], stdin: Data("Hello world 123".utf8))
        #expect(try CLI.tokens(fromStdin) == [19556, 905, 216, 33, 34, 35])
    }

    @Test("standard input is read byte for byte: NUL and the trailing newline are tokens")
    func tokenizeStdinExactly() throws {
        let withNewline = try CLI.tokens(CLI.run(["tokenize", "--json"], stdin: Data("a\u{0}b\n".utf8)))
        let without = try CLI.tokens(CLI.run(["tokenize", "--json"], stdin: Data("a\u{0}b".utf8)))
        #expect(withNewline.count == without.count + 1)
        #expect(withNewline.last == 198)   // "\n"
        #expect(without.count == 3)         // a, NUL, b
    }

    @Test("--special turns control-token text into control tokens")
    func special() throws {
        let plain = try CLI.tokens(CLI.run(["tokenize", "--json", "<|im_start|>user"]))
        let special = try CLI.tokens(CLI.run(["tokenize", "--json", "--special", "<|im_start|>user"]))
        #expect(special == [1, 4093])
        #expect(plain.count > 2 && !plain.contains(1))
    }

    @Test("info reports the real model's shape and digest, as a table and as JSON")
    func info() throws {
        let table = try CLI.run(["info"])
        #expect(table.status == 0)
        let text = String(decoding: table.stdout, as: UTF8.self)
        #expect(text.contains("30 layers, width 576") && text.contains("9 query heads, 3 KV heads"))
        let json = try CLI.run(["info", "--json"])
        let object = try #require(try JSONSerialization.jsonObject(with: json.stdout) as? [String: Any])
        #expect(object["layers"] as? Int == 30 && object["vocab_size"] as? Int == 49152)
        let digest = try #require(object["digest"] as? String)
        #expect(digest.count == 32 && text.contains(digest))
    }

    @Test("a missing or corrupt model file is a one-line error and exit status 1")
    func errors() throws {
        let missing = try CLI.run(["info", "--model", "/nonexistent/model.gguf"])
        #expect(missing.status == 1)
        #expect(missing.stderr.contains("/nonexistent/model.gguf") && missing.stderr.contains("cannot open"))
        let path = NSTemporaryDirectory() + "verbatim-cli-corrupt-\(getpid()).gguf"
        #expect(FileManager.default.createFile(atPath: path, contents: Data("GGUF\u{3}\0\0\0".utf8)))
        defer { try? FileManager.default.removeItem(atPath: path) }
        let corrupt = try CLI.run(["tokenize", "--model", path, "x"])
        #expect(corrupt.status == 1)
        #expect(corrupt.stderr.contains("truncated") && corrupt.stderr.contains(path))
        // A bad cache folder is named as the cache folder, not blamed on the model.
        let badCache = try CLI.run(["generate", "--cache", path, "--max-tokens", "1", "--text", "x"])
        #expect(badCache.status == 1)
        #expect(badCache.stderr.contains("cache folder \(path)") && !badCache.stderr.contains(CLI.modelPath), "\(badCache.stderr)")
        // A FIFO as the model is refused at once (it used to wait forever for a writer).
        let fifo = path + ".fifo"
        try #require(mkfifo(fifo, 0o600) == 0)
        defer { try? FileManager.default.removeItem(atPath: fifo) }
        let pipe = try CLI.run(["info", "--model", fifo])
        #expect(pipe.status == 1 && pipe.stderr.contains("not a regular file"))
    }
}

@Suite("Cache across processes", .serialized)
struct CacheProcessTests {
    static func folder() -> String { NSTemporaryDirectory() + "verbatim-cli-cache-\(UInt32.random(in: 0...UInt32.max))" }

    static func generate(_ cache: String, _ extra: [String] = []) throws -> [String: Any] {
        let r = try CLI.run(["generate", "--cache", cache, "--json", "--logprobs", "--max-tokens", "12",
                             "--chat", "Name three rivers in Europe and one fact about each of them."] + extra)
        #expect(r.status == 0, "\(r.stderr)")
        return try #require(try JSONSerialization.jsonObject(with: r.stdout) as? [String: Any])
    }

    @Test("one process writes the cache, another process hits it with identical tokens and logprobs")
    func twoProcesses() throws {
        let cache = Self.folder()
        defer { try? FileManager.default.removeItem(atPath: cache) }
        let cold = try Self.generate(cache)
        #expect(cold["completion_from_cache"] as? Bool == false && cold["cached_prompt_tokens"] as? Int == 0)
        let warm = try Self.generate(cache)
        #expect(warm["completion_from_cache"] as? Bool == true)
        #expect(warm["tokens"] as? [Int] == cold["tokens"] as? [Int])
        #expect((warm["logprobs"] as? [Double]) == (cold["logprobs"] as? [Double]))
        let prefixOnly = try Self.generate(cache, ["--no-completion-cache"])
        #expect((prefixOnly["cached_prompt_tokens"] as? Int ?? 0) > 0)
        #expect(prefixOnly["tokens"] as? [Int] == cold["tokens"] as? [Int])
    }

    @Test("kill -9 of a writing process, 20 times at random moments: every committed entry survives and verifies, nothing half-written")
    func crashSafety() throws {
        let cache = Self.folder()
        defer { try? FileManager.default.removeItem(atPath: cache) }
        var committed = Set<Int>()
        var next = 0
        for round in 0..<20 {
            let process = Process()
            process.executableURL = URL(fileURLWithPath: CLI.binary)
            process.arguments = ["cache-stress", "--cache", cache, "--start", String(next)]
            let out = Pipe()
            process.standardOutput = out
            try process.run()
            usleep(UInt32.random(in: 150_000...600_000))
            kill(process.processIdentifier, SIGKILL)
            process.waitUntilExit()
            let lines = String(decoding: out.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self).split(separator: "\n")
            let reported = lines.compactMap { $0.hasPrefix("committed ") ? Int($0.dropFirst(10)) : nil }
            #expect(!reported.isEmpty || round > 0, "round \(round): the writer reported nothing")
            for i in reported { for j in (i - 3)...i { committed.insert(j) } }
            next = ((reported.max() ?? next) + 1000) / 4 * 4   // fresh keys each round; batches are i..<i+4 from a multiple of 4
        }
        #expect(committed.count >= 20)
        let store = try CacheStore(directory: cache)
        let (checked, corrupt) = try verify(store)
        #expect(corrupt.isEmpty, "\(corrupt.count) corrupt entries")
        #expect(checked >= committed.count)
        for i in committed {
            let (key, identity, payload) = CacheStress.entryForTests(i)
            let intact = store.read(key, expecting: identity, { $0.elementsEqual(payload) }) ?? false
            #expect(intact, "committed entry \(i) is missing or wrong")
        }
    }

    func verify(_ store: CacheStore) throws -> (Int, [Digest128]) { try store.verifyAll() }
}

/// The same entries the cache-stress command writes (its code is in the executable target).
enum CacheStress {
    static func entryForTests(_ i: Int) -> (Digest128, EntryIdentity, [UInt8]) {
        let tokens = (0..<32).map { TokenID(i * 32 + $0) }
        let model = Digest128(high: 0x5EED, low: 0x5EED)
        let key = ContentAddress.kvChain(model: model, profile: "stress", salt: [], blockSize: 32, tokens: tokens, count: 1)[0]
        let identity = EntryIdentity(kind: .kvBlock, model: model, profile: "stress", saltDigest: EntryIdentity.saltDigest([]),
                                     parent: nil, tokens: tokens, sampling: [])
        var rng = SplitMix64(seed: UInt64(i))
        return (key, identity, (0..<(64 << 10)).map { _ in UInt8(truncatingIfNeeded: rng.next()) })
    }
}

@Suite("verbatim cut and crosscheck")
struct CrossCheckCLITests {
    @Test("cut keeps the first N layers of the real model byte for byte; crosscheck gives one digest pair on every path and thread count, and another seed another pair")
    func cutAndCrossCheck() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("verbatim-cut-\(getpid())")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let cutPath = dir.appendingPathComponent("cut2.gguf").path
        let cut = try CLI.run(["cut", "--layers", "2", "--output", cutPath])
        #expect(cut.status == 0, "\(cut.stderr)")
        let file = try GGUFFile(path: cutPath)
        let whole = try GGUFFile(path: CLI.modelPath)
        #expect(try LlamaConfig(file: file).layerCount == 2)
        #expect(file.tensors.filter { $0.name.hasPrefix("blk.") }.allSatisfy { $0.name.hasPrefix("blk.0.") || $0.name.hasPrefix("blk.1.") })
        // Every kept tensor has the whole model's bytes.
        for t in file.tensors {
            let original = try #require(whole.tensor(named: t.name), "\(t.name) is not in the whole model")
            #expect(Array(file.data(of: t)) == Array(whole.data(of: original)), "\(t.name)")
        }
        #expect(try CLI.run(["cut", "--layers", "31", "--output", cutPath]).status == 1, "more layers than the model has")

        let check = try CLI.run(["crosscheck", "--model", cutPath, "--threads", "1,3", "--prompt", "40", "--new", "6",
                                 "--runs", "1", "--digests-only"])
        #expect(check.status == 0, "\(check.stderr)")
        let lines = String(decoding: check.stdout, as: UTF8.self).split(separator: "\n")
        #expect(lines.count == 2 * KernelConfig.supportedISAs.count, "\(lines)")
        let digests = Set(lines.map { $0.split(separator: " ").dropFirst(2).joined(separator: " ") })
        #expect(digests.count == 1, "\(lines)")
        #expect(digests.first?.split(separator: " ").count == 2)
        // Another seed draws other tokens: the generation digest is not a constant.
        let other = try CLI.run(["crosscheck", "--model", cutPath, "--threads", "1", "--prompt", "40", "--new", "6",
                                 "--runs", "1", "--seed", "8", "--digests-only"])
        #expect(other.status == 0, "\(other.stderr)")
        let otherDigests = String(decoding: other.stdout, as: UTF8.self).split(separator: "\n").map { $0.split(separator: " ").dropFirst(2).joined(separator: " ") }
        if let first = digests.first, let second = otherDigests.first { #expect(first != second) }
    }
}

@Suite("verbatim serve as a process")
struct ServeCommandTests {
    /// Starts `verbatim serve` on a free port; returns the process and its URL from the banner.
    func start(_ arguments: [String]) throws -> (Process, String, String) {
        let server = Process()
        server.executableURL = URL(fileURLWithPath: CLI.binary)
        server.arguments = ["serve", "--model", CLI.modelPath, "--port", "0"] + arguments
        let out = Pipe()
        server.standardOutput = out
        server.standardError = FileHandle.nullDevice
        try server.run()
        var banner = ""
        while !banner.contains("\n") {
            let chunk = out.fileHandleForReading.availableData
            if chunk.isEmpty { break }
            banner += String(decoding: chunk, as: UTF8.self)
        }
        let url = try #require(banner.split(separator: " ").first { $0.hasPrefix("http://") }.map(String.init), "banner: \(banner)")
        return (server, url, banner)
    }

    /// POSTs `body` to `url` with curl; returns the decoded JSON object.
    func post(_ url: String, _ body: String) throws -> [String: Any] {
        let r = try CLI.run(["-s", "-H", "Content-Type: application/json", "-d", body, url], binary: "/usr/bin/curl")
        return try #require(try JSONSerialization.jsonObject(with: r.stdout) as? [String: Any], "\(String(decoding: r.stdout, as: UTF8.self))")
    }

    @Test("serve --kv-type f16: its fingerprint and cache entries name the f16 profile, apart from f32's; its completion repeats bit for bit from another process; an unknown type is a one-line error")
    func serveHalfKV() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("verbatim-kvtype-\(UInt32.random(in: 0...UInt32.max))")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let body = #"{"prompt": "The three primary colours are", "max_tokens": 12, "temperature": 0, "logprobs": 1}"#
        var answers: [[String: Any]] = []
        for (kv, folder) in [("f16", "a"), ("f32", "a"), ("f16", "b")] {
            let (server, url, banner) = try start(["--kv-type", kv, "--cache", dir.appendingPathComponent(folder).path])
            defer { server.terminate(); server.waitUntilExit() }
            #expect(banner.contains("kv=\(kv)"), "banner: \(banner)")
            let answer = try post(url + "/v1/completions", body)
            #expect((answer["system_fingerprint"] as? String)?.hasSuffix("kv=\(kv)") == true, "\(answer)")
            answers.append(answer)
        }
        func logprobs(_ a: [String: Any]) -> [Double] {
            (((a["choices"] as? [[String: Any]])?.first?["logprobs"] as? [String: Any])?["token_logprobs"] as? [Double]) ?? []
        }
        // A fresh cache folder and a fresh process: the f16 bits again, not served from the first folder.
        #expect(!logprobs(answers[0]).isEmpty)
        #expect(logprobs(answers[0]).map(\.bitPattern) == logprobs(answers[2]).map(\.bitPattern))
        // f32 in the same folder as f16: its own entries (the profile is in every key), its own logprobs.
        #expect(logprobs(answers[0]).map(\.bitPattern) != logprobs(answers[1]).map(\.bitPattern))
        let stats = try CLI.run(["stats", "--path", dir.appendingPathComponent("a").path, "--json"], binary: CLI.cachectl)
        let models = (try JSONSerialization.jsonObject(with: stats.stdout) as? [String: Any])?["models"] as? [[String: Any]] ?? []
        #expect(Set(models.compactMap { ($0["profile"] as? String)?.split(separator: " ").last.map(String.init) }) == ["kv=f16", "kv=f32"], "\(models)")

        let bad = try CLI.run(["serve", "--model", CLI.modelPath, "--cache", dir.appendingPathComponent("c").path, "--kv-type", "q8"])
        #expect(bad.status != 0)
        #expect(bad.stderr.contains("--kv-type must be f32 or f16"), "\(bad.stderr)")
        #expect(bad.stderr.split(separator: "\n").count == 1, "\(bad.stderr)")
        let delay = try CLI.run(["serve", "--model", CLI.modelPath, "--cache", dir.appendingPathComponent("c").path, "--idle-memory-delay=-1"])
        #expect(delay.status != 0)
        #expect(delay.stderr.contains("--idle-memory-delay must be between 0 and 86400 seconds"), "\(delay.stderr)")
        let drafts = try CLI.run(["serve", "--model", CLI.modelPath, "--cache", dir.appendingPathComponent("c").path, "--draft-tokens", "65"])
        #expect(drafts.status != 0)
        #expect(drafts.stderr.contains("--draft-tokens must be between 0 and 64"), "\(drafts.stderr)")
    }

    @Test("serve: SIGTERM with a long generation and a hostile prompt in flight exits 0 within the request time limit and a few seconds")
    func serveStopsInTime() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("verbatim-sigterm-\(UInt32.random(in: 0...UInt32.max))")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let (server, url, _) = try start(["--cache", dir.appendingPathComponent("cache").path, "--request-timeout", "3"])
        // A generation far longer than the time limit, and a prompt that takes a while to tokenize.
        let hostile = dir.appendingPathComponent("hostile.json")
        try JSONSerialization.data(withJSONObject: ["prompt": String(repeating: "z", count: 600_000), "max_tokens": 4]).write(to: hostile)
        func curl(_ body: String) throws -> (Process, Pipe) {
            let p = Process(), pipe = Pipe()
            p.executableURL = URL(fileURLWithPath: "/usr/bin/curl")
            p.arguments = ["-s", "-o", "/dev/null", "-w", "%{http_code}", "-H", "Content-Type: application/json", "-d", body, url + "/v1/completions"]
            p.standardOutput = pipe
            try p.run()
            return (p, pipe)
        }
        let long = try curl(#"{"prompt": "1, 2, 3, 4,", "max_tokens": 3000, "temperature": 0, "ignore_eos": true}"#)
        let slow = try curl("@" + hostile.path)
        usleep(700_000)
        #expect(server.isRunning)
        kill(server.processIdentifier, SIGTERM)
        let signalled = ContinuousClock.now
        while server.isRunning && ContinuousClock.now - signalled < .seconds(30) { usleep(20_000) }
        let took = ContinuousClock.now - signalled
        #expect(!server.isRunning, "still running 30 s after SIGTERM")
        if server.isRunning { server.terminate() }
        server.waitUntilExit()
        #expect(server.terminationStatus == 0)
        #expect(took < .seconds(3 + 5), "stopped \(took) after SIGTERM (request limit 3 s)")
        // Each in-flight request got its answer: the generation cut off by the limit, the hostile prompt refused.
        for ((p, pipe), expected) in [(long, ["200", "504"]), (slow, ["400"])] {
            p.waitUntilExit()
            let code = String(decoding: pipe.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
            #expect(expected.contains(code), "HTTP \(code)")
        }
    }
}
