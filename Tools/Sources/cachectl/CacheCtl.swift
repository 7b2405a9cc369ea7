import ArgumentParser
import Foundation
import VerbatimCache
import VerbatimModel

@main
struct CacheCtl: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "cachectl",
        abstract: "Inspect and manage a Verbatim cache folder (safe beside a running service).",
        discussion: """
            Exit status: 0 success; 1 verification found bad entries (or inspect found no such entry); \
            2 the folder does not exist; \
            3 not a Verbatim cache; 4 written by a newer Verbatim (format version); 5 permission denied; \
            6 every LMDB reader slot is taken; 7 the cache is in use (compact beside a writer); \
            8 model file problem; 9 storage error; 10 the file is damaged (see salvage and reset); \
            64 bad arguments.
            """,
        subcommands: [Stats.self, List.self, Inspect.self, Verify.self, Evict.self, Compact.self, Warm.self, Salvage.self, Reset.self]
    )
}

/// `--path`, defaulting to the folder the demo and the service use.
struct PathOption: ParsableArguments {
    @Option(name: .long, help: ArgumentHelp(
        "The cache folder.",
        discussion: "Default: $VERBATIM_CACHE_DIR, else $XDG_CACHE_HOME/verbatim, else ~/.cache/verbatim."))
    var path: String?

    var resolved: String {
        path ?? CacheLocation.defaultFolder()
    }

    /// Opens an existing cache: read-only for inspection, writable for changes.
    func open(writable: Bool = false, create: Bool = false) throws -> CacheStore {
        var options = CacheOptions()
        options.createIfMissing = create
        options.readOnly = !writable
        // The map must cover the file; a reader never grows it.
        let size = (try? FileManager.default.attributesOfItem(atPath: resolved + "/data.mdb")[.size] as? Int) ?? 0
        options.mapSize = max(options.mapSize, size)
        do {
            return try CacheStore(directory: resolved, options: options)
        } catch {
            throw Failure(error)
        }
    }
}

/// A command that works on one cache folder (named in its errors).
protocol PathCommand {
    var folder: String { get }
}

/// A failure with its documented exit status; printed as one line on standard error.
struct Failure: Error, CustomStringConvertible {
    let description: String
    let status: Int32

    init(_ message: String, status: Int32) {
        description = message
        self.status = status
    }

    init(_ error: CacheError) {
        let status: Int32 = switch error.code {
        case .notFound: 2
        case .notAVerbatimCache: 3
        case .newerFormat: 4
        case .permissionDenied: 5
        case .readersFull: 6
        case .inUse: 7
        case .cannotCreate, .storage: 9
        case .damaged: 10
        }
        self.init("cachectl: \(error.message)", status: status)
    }

    static let mismatch: Int32 = 1
    static let model: Int32 = 8
    static let storage: Int32 = 9
}

extension ParsableCommand {
    /// Runs `body`, turning failures into their message and exit status.
    func guarded(_ body: () throws -> Void) throws {
        do {
            try body()
        } catch let f as Failure {
            FileHandle.standardError.write(Data((f.description + "\n").utf8))
            throw ExitCode(f.status)
        } catch let e as CacheError {
            let f = Failure(e)
            FileHandle.standardError.write(Data((f.description + "\n").utf8))
            throw ExitCode(f.status)
        } catch let e as ExitCode {
            throw e
        } catch {
            if let damage = CacheError.damage(error, (self as? any PathCommand)?.folder ?? "the cache folder") {
                let f = Failure(damage)
                FileHandle.standardError.write(Data((f.description + "\n").utf8))
                throw ExitCode(f.status)
            }
            FileHandle.standardError.write(Data("cachectl: \(error)\n".utf8))
            throw ExitCode(Failure.storage)
        }
    }
}

extension AsyncParsableCommand {
    /// `guarded` for async work.
    func guardedAsync(_ body: () async throws -> Void) async throws {
        do {
            try await body()
        } catch let e as ExitCode {
            throw e
        } catch {
            try guarded { throw error }
        }
    }
}

// MARK: - Formatting

enum Format {
    static func bytes(_ n: Int) -> String {
        let units = ["B", "KiB", "MiB", "GiB", "TiB"]
        var value = Double(n)
        var unit = 0
        while value >= 1024 && unit < units.count - 1 { value /= 1024; unit += 1 }
        return unit == 0 ? "\(n) B" : String(format: "%.1f %@", value, units[unit])
    }

    static func percent(_ part: UInt64, of whole: UInt64) -> String {
        whole == 0 ? "-" : String(format: "%.1f%%", 100 * Double(part) / Double(whole))
    }

    static func age(_ seconds: Int) -> String {
        switch seconds {
        case ..<60: return "\(max(0, seconds))s"
        case ..<3600: return "\(seconds / 60)m"
        case ..<86400: return "\(seconds / 3600)h"
        default: return "\(seconds / 86400)d"
        }
    }

    /// Rows of cells, columns padded to their widest cell; the columns in `right` right-aligned.
    static func table(_ rows: [[String]], header: [String]? = nil, right: Set<Int> = []) -> String {
        let all = (header.map { [$0] } ?? []) + rows
        guard let columns = all.map(\.count).max() else { return "" }
        var widths = [Int](repeating: 0, count: columns)
        for row in all { for (i, cell) in row.enumerated() { widths[i] = max(widths[i], cell.count) } }
        func line(_ row: [String]) -> String {
            row.enumerated().map { i, cell in
                let pad = String(repeating: " ", count: widths[i] - cell.count)
                return right.contains(i) ? pad + cell : cell + pad
            }.joined(separator: "  ").replacingOccurrences(of: "\\s+$", with: "", options: .regularExpression)
        }
        var out = all.map(line)
        if header != nil { out.insert(widths.map { String(repeating: "-", count: $0) }.joined(separator: "  "), at: 1) }
        return out.joined(separator: "\n")
    }

    /// "30s", "15m", "2h", "7d" (also plain seconds).
    static func parseAge(_ text: String) -> Int? {
        let units: [Character: Int] = ["s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604_800]
        if let unit = text.last, let scale = units[unit], let n = Int(text.dropLast()), n >= 0 { return n * scale }
        return Int(text).flatMap { $0 >= 0 ? $0 : nil }
    }

    /// "500M", "2G", "1.5GiB", "4096" (bytes).
    static func parseSize(_ text: String) -> Int? {
        let lower = text.lowercased().replacingOccurrences(of: "ib", with: "").replacingOccurrences(of: "b", with: "")
        let scales: [Character: Double] = ["k": 1024, "m": 1_048_576, "g": 1_073_741_824, "t": 1_099_511_627_776]
        if let unit = lower.last, let scale = scales[unit], let n = Double(lower.dropLast()), n >= 0 { return Int(n * scale) }
        return Int(lower).flatMap { $0 >= 0 ? $0 : nil }
    }
}

/// A one-line progress bar on a terminal (standard error); silent when not a terminal.
struct ProgressBar {
    let total: Int
    let label: String
    private let enabled = isatty(2) != 0
    private var last = -1

    init(total: Int, label: String) {
        self.total = total
        self.label = label
    }

    mutating func update(_ done: Int) {
        guard enabled, total > 0 else { return }
        let percent = 100 * done / total
        guard percent != last else { return }
        last = percent
        let width = 30
        let filled = width * done / total
        let bar = String(repeating: "#", count: filled) + String(repeating: ".", count: width - filled)
        FileHandle.standardError.write(Data("\r\(label) [\(bar)] \(done)/\(total)".utf8))
        if done >= total { FileHandle.standardError.write(Data("\n".utf8)) }
    }
}

func printJSON(_ object: Any) throws {
    let data = try JSONSerialization.data(withJSONObject: object, options: [.sortedKeys, .withoutEscapingSlashes, .prettyPrinted])
    FileHandle.standardOutput.write(data)
    FileHandle.standardOutput.write(Data("\n".utf8))
}

/// Parses a 32-hex-digit key.
func parseKey(_ text: String) throws -> Digest128 {
    guard text.count == 32, let high = UInt64(text.prefix(16), radix: 16), let low = UInt64(text.suffix(16), radix: 16) else {
        throw Failure("cachectl: \(text) is not a cache key (32 hex digits, as `cachectl ls` prints them)", status: 64)
    }
    return Digest128(high: high, low: low)
}

extension EntryIdentity.Kind {
    var name: String { self == .kvBlock ? "kv_block" : "completion" }
}

extension Stats: PathCommand { var folder: String { path.resolved } }
extension List: PathCommand { var folder: String { path.resolved } }
extension Inspect: PathCommand { var folder: String { path.resolved } }
extension Verify: PathCommand { var folder: String { path.resolved } }
extension Evict: PathCommand { var folder: String { path.resolved } }
extension Compact: PathCommand { var folder: String { path.resolved } }
extension Warm: PathCommand { var folder: String { path.resolved } }
