import Foundation
import Testing
@testable import Verbatim
import VerbatimModel
import VerbatimKernels

@Suite("Engine")
struct EngineTests {
    @Test("every request error is typed and thrown before the stream starts")
    func errors() async throws {
        // 10 KV blocks of 16 tokens (8 KiB each on the tiny model): less than one full context.
        let engine = try tinyEngine { $0.kvMemoryBytes = 80 << 10; $0.maxQueuedRequests = 2 }
        #expect(engine.stats.kvBlocksTotal == 10)
        func code(_ prompt: Prompt, _ p: GenerateParameters = GenerateParameters(maxTokens: 4)) -> EngineError.Code? {
            do { _ = try engine.generate(prompt, parameters: p); return nil } catch { return error.code }
        }
        let ctx = engine.model.config.contextLength
        #expect(code(.tokens([])) == .emptyPrompt)
        #expect(code(.text("")) == .emptyPrompt)
        #expect(code(.tokens([1, TokenID(engine.tokenizer.count)])) == .invalidToken)
        #expect(code(.tokens([-3])) == .invalidToken)
        #expect(code(.tokens(Array(repeating: 5, count: ctx - 3))) == .contextExceeded)
        #expect(code(.tokens([5]), GenerateParameters(maxTokens: ctx)) == .contextExceeded)
        #expect(code(.chat([])) == .invalidPrompt)
        // Text is plain by default: a user cannot forge a turn; the application may opt in for its own text.
        let marker = try engine.tokens(of: .text("<|im_start|>"), parameters: GenerateParameters(maxTokens: 4))
        #expect(!marker.contains { engine.tokenizer.isControl($0) })
        var trusted = GenerateParameters(maxTokens: 4)
        trusted.parseSpecialTokens = true
        let parsed = try engine.tokens(of: .text("<|im_start|>"), parameters: trusted)
        #expect(parsed.count == 1 && engine.tokenizer.isControl(parsed[0]))
        let alternating = try ChatTemplate(source: "{% for m in messages %}{% if (m.role == 'user') != (loop.index0 % 2 == 0) %}"
            + "{{ raise_exception('roles must alternate user/assistant') }}{% endif %}{{ m.content }}{% endfor %}")
        let twoUsers = [ChatMessage(role: .user, content: "a"), ChatMessage(role: .user, content: "b")]
        #expect(code(.chat(twoUsers, options: ChatOptions(template: alternating))) == .invalidPrompt)
        #expect(code(.chat([twoUsers[0]], options: ChatOptions(template: alternating))) == nil)
        let changes: [(inout GenerateParameters) -> Void] = [
            { $0.maxTokens = 0 }, { $0.temperature = -1 }, { $0.temperature = .nan }, { $0.topK = -1 }, { $0.topP = 0 },
            { $0.topP = 1.5 }, { $0.minP = 2 }, { $0.logprobs = true; $0.topLogprobs = 21 }, { $0.stopTokens = [99999] },
            { $0.stopStrings = [""] },
        ]
        for (i, change) in changes.enumerated() {
            var bad = GenerateParameters(maxTokens: 4)
            change(&bad)
            #expect(code(.tokens([5]), bad) == .invalidParameters, "change \(i)")
        }
        // More KV blocks than the engine has in all: refused, never queued forever.
        #expect(code(.tokens([5]), GenerateParameters(maxTokens: 200)) == .outOfKVMemory)
        // Fill the memory with one long request, then the queue (2 places), then refuse.
        let big = GenerateParameters(maxTokens: 150, stopAtEOS: false)
        let running = try engine.generate(.tokens([5]), parameters: big)
        #expect(await eventually { engine.stats.runningRequests == 1 })
        let q1 = try engine.generate(.tokens([6]), parameters: big)
        let q2 = try engine.generate(.tokens([7]), parameters: big)
        #expect(await eventually { engine.stats.queuedRequests == 2 })
        #expect(code(.tokens([8]), big) == .queueFull)
        running.cancel(); q1.cancel(); q2.cancel()
        await engine.shutdown()
        #expect(code(.tokens([5])) == .shutDown)
        await #expect(throws: EngineError.self) { _ = try await engine.score([1, 2]) }
    }

    @Test("cancelling frees the request's KV blocks within a step, by break, by cancel() and by task cancellation")
    func cancellation() async throws {
        let engine = try tinyEngine()
        let long = GenerateParameters(maxTokens: 200, stopAtEOS: false)
        // Leaving the loop and dropping the stream.
        do {
            let stream = try engine.generate(.text("The quick brown fox"), parameters: long)
            let partial = await collect(stream, stopAfter: 3)
            #expect(partial.tokens.count == 3)
            #expect(engine.stats.kvBlocksInUse > 0)
        }
        #expect(await eventually { engine.stats.kvBlocksInUse == 0 && engine.stats.runningRequests == 0 })
        // Explicit cancel.
        let stream = try engine.generate(.text("the same bits"), parameters: long)
        #expect(await eventually { engine.stats.kvBlocksInUse > 0 })
        stream.cancel()
        #expect(await eventually { engine.stats.kvBlocksInUse == 0 })
        // Cancelling the consuming task.
        let task = Task {
            let s = try engine.generate(.text("whatever the batch"), parameters: long)
            var c = Completion()
            for await event in s {   // a slow reader, so the request is still running when cancelled
                if case .token(let t) = event { c.tokens.append(t.id) }
                if case .summary(let summary) = event { c.reason = summary.stopReason }
                try? await Task.sleep(for: .milliseconds(20))
            }
            return c
        }
        #expect(await eventually { engine.stats.kvBlocksInUse > 0 })
        task.cancel()
        let result = try await task.value
        #expect(result.tokens.count < 200 && result.reason == nil)
        #expect(await eventually { engine.stats.kvBlocksInUse == 0 })
        await engine.shutdown()
    }

    @Test("stats are fresh once the engine goes idle: KV blocks return to zero while the finished stream is still held")
    func statsWhenIdle() async throws {
        let engine = try tinyEngine()
        let stream = try engine.generate(.text("idle"), parameters: GenerateParameters(maxTokens: 5, stopAtEOS: false))
        let done = await collect(stream)
        #expect(done.tokens.count == 5 && done.reason == .length)
        // Nothing wakes the engine after its last step (the stream is not dropped, so no
        // cancellation): the snapshot must already be current.
        #expect(await eventually(2) { engine.stats.kvBlocksInUse == 0 && engine.stats.runningRequests == 0 })
        withExtendedLifetime(stream) {}
        await engine.shutdown()
    }

    @Test("per-engine thread count: an engine limited to one kernel thread gives the bits of one on the whole pool; zero is refused")
    func perEngineThreads() async throws {
        let saved = KernelConfig.threads
        KernelConfig.setThreads(3)
        defer { KernelConfig.setThreads(saved) }
        let whole = try tinyEngine(), one = try tinyEngine { $0.threads = 1 }
        let parameters = GenerateParameters(maxTokens: 12, temperature: 0.9, seed: 5, logprobs: true)
        let prompt = Prompt.text("the quick brown fox jumps over the lazy dog and keeps on running through the field")
        async let a = collect(try whole.generate(prompt, parameters: parameters))
        async let b = collect(try one.generate(prompt, parameters: parameters))
        let (x, y) = try await (a, b)   // both engines step at once, on one shared pool
        #expect(!x.tokens.isEmpty && x.tokens == y.tokens)
        #expect(x.logprobBits == y.logprobBits, "\(zip(x.logprobBits, y.logprobBits).filter { $0 != $1 }.count) logprobs differ")
        #expect(throws: EngineError.self) { try tinyEngine { $0.threads = 0 } }
        await whole.shutdown()
        await one.shutdown()
    }

    @Test("KV memory and scratch are committed as they are used and given back when the engine goes idle; the bits do not change")
    func kvMemoryOnDemand() async throws {
        // About 1 400 prompt tokens: 60 MiB of KV (45 KiB a token) while it runs.
        let prompt = String(repeating: "The river flows past the old mill and under the bridge. ", count: 110)
        let parameters = GenerateParameters(maxTokens: 8, temperature: 0)
        // The kernels' per-thread buffers (about 1 MiB here) grow to the largest call the process
        // has made and stay: they are the process's, not an engine's. A first engine sizes them,
        // so that they are part of `before` (run alone, this test otherwise counted them).
        do {
            let first = try realEngine { $0.idleMemoryDelay = .zero }
            for await _ in try first.generate(.text(prompt), parameters: parameters) {}
            await first.shutdown()
        }
        let before = anonymous()
        let engine = try realEngine {
            $0.kvMemoryBytes = 512 << 20
            $0.idleMemoryDelay = .zero   // given back as soon as it is idle (the delay has its own test)
        }
        let reserved = anonymous() - before
        #expect(reserved < 32 << 20, "an idle engine with 512 MiB of KV memory holds \(reserved >> 20) MiB")
        var used = 0
        var tokens: [TokenID] = []
        for await event in try engine.generate(.text(prompt), parameters: parameters) {
            if case .token(let t) = event {
                tokens.append(t.id)
                used = max(used, anonymous() - before)
            }
        }
        #expect(used > reserved + (40 << 20), "KV memory in use: \(used >> 20) MiB (idle \(reserved >> 20) MiB)")
        var idle = Int.max
        for _ in 0..<100 where idle >= reserved + (16 << 20) {
            try await Task.sleep(for: .milliseconds(20))
            idle = anonymous() - before
        }
        #expect(idle < reserved + (16 << 20), "idle again: \(idle >> 20) MiB held (in use: \(used >> 20) MiB)")
        // The step's scratch (activations, 64 rows of logits: about 20 MiB here) goes back too:
        // an idle engine holds no more than a new one.
        #expect(idle <= reserved + (2 << 20), "idle \(idle >> 20) MiB, new engine \(reserved >> 20) MiB")
        // Blocks given back read as zeros and are written before they are read: same tokens again.
        var again: [TokenID] = []
        for await event in try engine.generate(.text(prompt), parameters: parameters) { if case .token(let t) = event { again.append(t.id) } }
        #expect(again == tokens)
        await engine.shutdown()
    }

    @Test("an engine idle for less than idleMemoryDelay keeps its KV pages; past it they go back, never before")
    func idleMemoryDelay() async throws {
        _ = try realLlama.get()
        let before = anonymous()
        let engine = try realEngine {
            $0.kvMemoryBytes = 512 << 20
            $0.idleMemoryDelay = .seconds(2)
        }
        let reserved = anonymous() - before
        let prompt = String(repeating: "The river flows past the old mill and under the bridge. ", count: 110)
        for await _ in try engine.generate(.text(prompt), parameters: GenerateParameters(maxTokens: 4, temperature: 0)) {}
        let finished = ContinuousClock.now
        try await Task.sleep(for: .milliseconds(300))
        let held = anonymous() - before
        #expect(held > reserved + (40 << 20), "0.3 s idle: \(held >> 20) MiB held (new engine \(reserved >> 20) MiB)")
        var idle = held
        while idle >= reserved + (16 << 20) && ContinuousClock.now - finished < .seconds(10) {
            try await Task.sleep(for: .milliseconds(20))
            idle = anonymous() - before
        }
        let after = ContinuousClock.now - finished
        #expect(idle < reserved + (16 << 20), "idle \(after): \(idle >> 20) MiB held")
        #expect(after >= .milliseconds(1900), "memory went back after \(after), before the 2 s delay")
        await engine.shutdown()
    }

    @Test("shutdown while a request runs returns once it is done, not after idleMemoryDelay")
    func shutdownDuringIdleDelay() async throws {
        let engine = try tinyEngine { $0.idleMemoryDelay = .seconds(60) }
        let stream = try engine.generate(.text("long enough"), parameters: GenerateParameters(maxTokens: 100, stopAtEOS: false))
        let reader = Task {   // read as it comes, so the request is never paused for a slow reader
            var tokens = 0
            for await event in stream { if case .token = event { tokens += 1 } }
            return tokens
        }
        let started = ContinuousClock.now
        await engine.shutdown()   // the request is still running: it finishes, then the engine is idle
        let took = ContinuousClock.now - started
        #expect(await reader.value == 100)
        #expect(took < .seconds(20), "shutdown took \(took)")
    }

    @Test("a consumer that stops reading pauses its request: the engine buffers at most the stream capacity")
    func backpressure() async throws {
        let engine = try tinyEngine { $0.streamBufferCapacity = 4 }
        let stream = try engine.generate(.text("a slow reader"), parameters: GenerateParameters(maxTokens: 150, stopAtEOS: false))
        #expect(await eventually { engine.stats.steps > 3 })
        try await Task.sleep(for: .milliseconds(100))
        let paused = engine.stats.steps
        try await Task.sleep(for: .milliseconds(200))
        // prefill + at most `capacity` tokens were produced; nothing more while nobody reads
        #expect(engine.stats.steps == paused)
        #expect(paused <= 1 + 4 + 1)
        let all = await collect(stream)
        #expect(all.tokens.count == 150 && all.reason == .length)
        await engine.shutdown()
    }

    @Test("shutdown lets running requests finish, or cancels them with a .cancelled summary")
    func shutdown() async throws {
        let engine = try tinyEngine()
        let stream = try engine.generate(.text("finish me"), parameters: GenerateParameters(maxTokens: 30, stopAtEOS: false))
        await engine.shutdown()
        let done = await collect(stream)
        #expect(done.tokens.count == 30 && done.reason == .length)

        let other = try tinyEngine()
        let s = try other.generate(.text("cancel me"), parameters: GenerateParameters(maxTokens: 150, stopAtEOS: false))
        let reader = Task {
            var c = Completion()
            for await event in s {   // a slow reader: the request cannot finish before the shutdown
                if case .token(let t) = event { c.tokens.append(t.id) }
                if case .summary(let summary) = event { c.reason = summary.stopReason }
                try? await Task.sleep(for: .milliseconds(20))
            }
            return c
        }
        #expect(await eventually { other.stats.steps > 0 })
        await other.shutdown(cancelRunning: true)
        let cancelled = await reader.value
        #expect(cancelled.reason == .cancelled)
        #expect(other.stats.kvBlocksInUse == 0)
    }

    @Test("stop strings cut the text before them and never leak a prefix; stop tokens end with .stop")
    func stops() async throws {
        let engine = try tinyEngine()
        let free = await collect(try engine.generate(.text("The quick brown fox"), parameters: GenerateParameters(maxTokens: 60, stopAtEOS: false)))
        #expect(free.text.count > 10)
        // Pick a stop string from the middle of what the model writes.
        let chars = Array(free.text)
        let stop = String(chars[(chars.count / 2)..<(chars.count / 2 + 3)])
        let stopped = await collect(try engine.generate(.text("The quick brown fox"),
                                                         parameters: GenerateParameters(maxTokens: 60, stopAtEOS: false, stopStrings: [stop])))
        #expect(stopped.reason == .stop)
        #expect(!stopped.text.contains(stop))
        #expect(free.text.hasPrefix(stopped.text))
        #expect(free.text.dropFirst(stopped.text.count).hasPrefix(stop))
        let token = free.tokens[5]
        let byToken = await collect(try engine.generate(.text("The quick brown fox"),
                                                         parameters: GenerateParameters(maxTokens: 60, stopTokens: [token], stopAtEOS: false)))
        #expect(byToken.reason == .stop && byToken.tokens.last == token && byToken.tokens.count == free.tokens.firstIndex(of: token)! + 1)
        await engine.shutdown()
    }

    @Test("seeded sampling replays exactly; different seeds differ; an unseeded request reports its seed, a greedy one none")
    func seeds() async throws {
        let engine = try realEngine()
        func run(_ seed: UInt64?) async throws -> Completion {
            await collect(try engine.generate(.text("Once upon a time"),
                                              parameters: GenerateParameters(maxTokens: 40, temperature: 0.9, topK: 50, topP: 0.95, seed: seed, stopAtEOS: false)))
        }
        let a = try await run(1), b = try await run(1), c = try await run(2)
        #expect(a.tokens == b.tokens && a.seed == 1)
        #expect(a.tokens != c.tokens)
        let random = try await run(nil)
        let replay = try await run(random.seed)
        #expect(random.tokens == replay.tokens)
        // A greedy request draws nothing: its summary has no seed.
        var greedySeed: UInt64?? = .none
        for await event in try engine.generate(.text("Once upon a time"), parameters: GenerateParameters(maxTokens: 2)) {
            if case .summary(let s) = event { greedySeed = .some(s.seed) }
        }
        #expect(greedySeed == .some(nil))
        await engine.shutdown()
    }

    @Test("generation logprobs equal teacher-forced scoring logprobs bit for bit")
    func scoringEqualsGeneration() async throws {
        let engine = try realEngine()
        for (i, params) in [GenerateParameters(maxTokens: 24, logprobs: true),
                            GenerateParameters(maxTokens: 24, temperature: 0.7, seed: 5, logprobs: true)].enumerated() {
            let prompt = try engine.tokens(of: .chat([ChatMessage(role: "user", content: "Tell me about the sea.")]))
            let completion = await collect(try engine.generate(.tokens(prompt), parameters: params))
            let scores = try await engine.score(prompt + completion.tokens)
            #expect(scores.count == prompt.count + completion.tokens.count && scores[0] == nil)
            #expect(scores[prompt.count...].map { $0!.bitPattern } == completion.logprobBits, "case \(i)")
        }
        await engine.shutdown()
    }

    @Test("scoring with alternatives reports the same top tokens and logprobs, bit for bit, as generating; a cancelled score throws .cancelled")
    func scoringAlternatives() async throws {
        let engine = try realEngine()
        let prompt = try engine.tokens(of: .text("The longest river in Africa is"))
        var generated: [GeneratedToken] = []
        for await event in try engine.generate(.tokens(prompt), parameters: GenerateParameters(maxTokens: 10, temperature: 0.8, seed: 9,
                                                                                               logprobs: true, topLogprobs: 5)) {
            if case .token(let t) = event { generated.append(t) }
        }
        let scored = try await engine.score(prompt + generated.map(\.id), topLogprobs: 5)
        #expect(scored.map(\.id) == prompt + generated.map(\.id))
        #expect(scored[0].logprob == nil && scored[0].topLogprobs.isEmpty)
        let tail = Array(scored.suffix(generated.count))
        let differing = zip(tail, generated).filter { s, g in
            s.logprob?.bitPattern != g.logprob?.bitPattern || s.topLogprobs.map(\.id) != g.topLogprobs.map(\.id)
                || s.topLogprobs.map(\.logprob.bitPattern) != g.topLogprobs.map(\.logprob.bitPattern)
        }.count
        #expect(differing == 0, "\(differing) of \(generated.count) positions differ")
        #expect(scored.dropFirst().allSatisfy { s in
            s.topLogprobs.count == 5 && zip(s.topLogprobs, s.topLogprobs.dropFirst()).allSatisfy { $0.logprob >= $1.logprob }
                && s.logprob! <= s.topLogprobs[0].logprob
        })
        await #expect(throws: EngineError.self) { _ = try await engine.score(prompt, topLogprobs: 21) }

        // Cancelled before it could run: .cancelled, and the engine goes on.
        let long = [TokenID](repeating: prompt[1], count: 1500)
        let task = Task { try await engine.score(long, topLogprobs: 0) }
        task.cancel()
        do {
            _ = try await task.value
            Issue.record("a cancelled score returned")
        } catch let error as EngineError {
            #expect(error.code == .cancelled)
        }
        #expect(try await engine.score(prompt).count == prompt.count)
        await engine.shutdown()
    }
}

/// RssAnon of this process, bytes (the memory tests).
private func anonymous() -> Int {
    let status = (try? String(contentsOfFile: "/proc/self/status", encoding: .utf8)) ?? ""
    let line = status.split(separator: "\n").first { $0.hasPrefix("RssAnon:") } ?? ""
    return (Int(line.split(separator: " ").dropFirst().first ?? "0") ?? 0) * 1024
}
