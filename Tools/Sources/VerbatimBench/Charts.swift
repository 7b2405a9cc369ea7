// Static SVG charts, Markdown tables and number formatting for the benchmark report.
// The SVG is plain SVG 1.1 text (no scripts, no CSS files, no fonts to fetch) so it
// renders the same when opened directly, embedded with <img>, or shown on GitHub.

import Foundation

// MARK: - SVG charts

public enum SVGChart {
    /// Okabe–Ito colours, reordered so the weakest on white (yellow) comes last.
    /// Beyond eight series the colours repeat with a dashed stroke.
    static let palette = ["#0072B2", "#D55E00", "#009E73", "#CC79A7",
                          "#E69F00", "#56B4E9", "#000000", "#F0E442"]

    /// One polyline with circle markers per series (points sorted by x).
    /// With `xLog2`, x is plotted on a log₂ scale with a tick at each distinct data x
    /// (e.g. block sizes 16, 32, 64, 128); points with x ≤ 0 cannot be placed and are
    /// dropped, as are non-finite points. `yRange` fixes the y axis (e.g. 0...1 for a
    /// hit rate); data outside it is clipped.
    public static func lines(
        title: String, xLabel: String, yLabel: String,
        series: [(name: String, points: [(x: Double, y: Double)])],
        xLog2: Bool = false, yRange: ClosedRange<Double>? = nil
    ) -> String {
        let cleaned = series.map { s in
            (name: s.name,
             points: s.points.filter { $0.x.isFinite && $0.y.isFinite && (!xLog2 || $0.x > 0) }
                .sorted { $0.x < $1.x })
        }
        let all = cleaned.flatMap(\.points)

        let xAxis: Axis
        if xLog2 {
            xAxis = Axis.log2(values: all.map(\.x))
        } else {
            xAxis = Axis.linear(all.map(\.x))
        }
        let yAxis = yRange.map { Axis.fixed($0) } ?? Axis.linear(all.map(\.y))

        let legend = legendWidth(cleaned.map(\.name))
        var frame = Frame(width: 76 + 540 + legend, height: 460, left: 76, top: 52, right: legend, bottom: 60)
        frame.title = title
        var svg = SVG(frame)
        svg.axes(x: xAxis, y: yAxis, xLabel: xLabel, yLabel: yLabel)
        svg.beginClip()
        for (i, s) in cleaned.enumerated() where !s.points.isEmpty {
            let style = Style(index: i)
            let pts = s.points.map { (frame.px(xAxis.position($0.x)), frame.py(yAxis.position($0.y))) }
            svg.polyline(pts, style: style)
            for p in pts { svg.marker(p, style: style) }
        }
        svg.endClip()
        svg.legend(cleaned.map { $0.points.isEmpty ? $0.name + " (no data)" : $0.name }, markers: true)
        return svg.finish()
    }

    /// One horizontal box plot per series on a shared linear x axis:
    /// box p25–p75, thick line at the median, whiskers p5–p95, diamond at p99
    /// (stated in a key under the title). Percentiles are `Percentile.of` (type 7).
    /// Whiskers stop at p5/p95 rather than min/max so one outlier does not stretch
    /// the axis; p99 shows the tail. `unit` is the x-axis title, e.g. "TTFT (ms)".
    public static func distributions(title: String, unit: String, series: [(name: String, samples: [Double])]) -> String {
        let rows = series.map { s -> (name: String, q: [Double], n: Int) in
            let sorted = s.samples.filter(\.isFinite).sorted()
            let q = sorted.isEmpty ? [] : [5, 25, 50, 75, 95, 99].map { Percentile.ofSorted(sorted, $0) }
            return (s.name, q, sorted.count)
        }
        let xAxis = Axis.linear(rows.flatMap(\.q))
        let rowHeight = 36.0
        let longest = min(legendCharacters, max(8, rows.map(\.name.count).max() ?? 0))
        let left = 24 + 7 * Double(longest)
        var frame = Frame(width: left + 540 + 84, height: 52 + 26 + rowHeight * Double(max(rows.count, 1)) + 60,
                          left: left, top: 52 + 26, right: 84, bottom: 60)
        frame.title = title
        frame.subtitle = "box: p25–p75 · thick line: median · whiskers: p5–p95 · ◆: p99"
        var svg = SVG(frame)
        svg.axes(x: xAxis, y: nil, xLabel: unit, yLabel: nil)
        for (i, row) in rows.enumerated() {
            let style = Style(index: i)
            let cy = frame.top + rowHeight * (Double(i) + 0.5)
            svg.text(frame.left - 10, cy + 4, shortened(row.name), anchor: "end")
            guard row.q.count == 6 else {
                svg.text(frame.left + 8, cy + 4, "no data", anchor: "start", fill: "#777777")
                continue
            }
            let x = row.q.map { frame.px(xAxis.position($0)) }
            svg.boxPlot(p5: x[0], p25: x[1], p50: x[2], p75: x[3], p95: x[4], p99: x[5], cy: cy, style: style)
            svg.text(frame.left + frame.plotWidth + 10, cy + 4, "n=\(row.n)", anchor: "start", fill: "#555555")
        }
        return svg.finish()
    }

    /// Empirical CDF per series (step function: fraction of samples ≤ x), shared
    /// linear x axis, y from 0 to 1. `unit` is the x-axis title.
    public static func ecdf(title: String, unit: String, series: [(name: String, samples: [Double])]) -> String {
        let sortedSeries = series.map { (name: $0.name, sorted: $0.samples.filter(\.isFinite).sorted()) }
        let xAxis = Axis.linear(sortedSeries.flatMap(\.sorted))
        let yAxis = Axis.fixed(0...1)
        let legend = legendWidth(sortedSeries.map(\.name))
        var frame = Frame(width: 76 + 540 + legend, height: 460, left: 76, top: 52, right: legend, bottom: 60)
        frame.title = title
        var svg = SVG(frame)
        svg.axes(x: xAxis, y: yAxis, xLabel: unit, yLabel: "fraction of samples ≤ x")
        svg.beginClip()
        for (i, s) in sortedSeries.enumerated() where !s.sorted.isEmpty {
            let n = Double(s.sorted.count)
            // Start on the axis at y = 0, rise by 1/n at each sample, run to the right edge at y = 1.
            var pts: [(Double, Double)] = [(xAxis.domain.lowerBound, 0)]
            for (k, v) in s.sorted.enumerated() {
                pts.append((v, Double(k) / n))
                pts.append((v, Double(k + 1) / n))
            }
            pts.append((xAxis.domain.upperBound, 1))
            let pixels = pts.map { (frame.px(xAxis.position($0.0)), frame.py(yAxis.position($0.1))) }
            svg.polyline(simplify(pixels), style: Style(index: i))
        }
        svg.endClip()
        svg.legend(sortedSeries.map { $0.sorted.isEmpty ? $0.name + " (no data)" : $0.name }, markers: false)
        return svg.finish()
    }

    // MARK: Layout helpers

    /// Longer series names are cut with "…" so the chart keeps a sane width.
    static let legendCharacters = 40

    static func shortened(_ name: String) -> String {
        name.count > legendCharacters ? String(name.prefix(legendCharacters - 1)) + "…" : name
    }

    /// Room right of the plot for swatch + name (≈ 7 px per character at 12 px sans-serif).
    private static func legendWidth(_ names: [String]) -> Double {
        56 + 7 * Double(min(legendCharacters, max(8, names.map(\.count).max() ?? 0)))
    }

    /// Drops points that lie on a straight horizontal or vertical run after rounding
    /// to 0.1 px, so an ECDF of 100 000 samples stays a few kilobytes.
    static func simplify(_ points: [(Double, Double)]) -> [(Double, Double)] {
        let rounded = points.map { (($0.0 * 10).rounded() / 10, ($0.1 * 10).rounded() / 10) }
        var out: [(Double, Double)] = []
        out.reserveCapacity(rounded.count)
        for p in rounded {
            if let last = out.last, last == p { continue }
            if out.count >= 2 {
                let a = out[out.count - 2], b = out[out.count - 1]
                if (a.0 == b.0 && b.0 == p.0 && (b.1 - a.1) * (p.1 - b.1) >= 0)
                    || (a.1 == b.1 && b.1 == p.1 && (b.0 - a.0) * (p.0 - b.0) >= 0) {
                    out[out.count - 1] = p
                    continue
                }
            }
            out.append(p)
        }
        return out
    }
}

/// A mapping from data values to [0, 1] along one axis, with its tick marks.
struct Axis {
    var domain: ClosedRange<Double>
    var ticks: [(value: Double, label: String)]
    var log2 = false

    /// 0 at the start of the axis, 1 at its end. The domain is never empty
    /// (the constructors widen degenerate ranges), so there is no division by zero.
    func position(_ v: Double) -> Double {
        let t = log2 ? Foundation.log2(v) : v
        return (t - domain.lowerBound) / (domain.upperBound - domain.lowerBound)
    }

    /// A linear axis covering `values`, extended to round tick values.
    static func linear(_ values: [Double]) -> Axis {
        let finite = values.filter(\.isFinite)
        let (lo, hi) = widened(finite.min() ?? 0, finite.max() ?? 1)
        let step = niceStep((hi - lo) / 5)
        let start = (lo / step).rounded(.down), end = (hi / step).rounded(.up)
        return Axis(domain: start * step ... end * step,
                    ticks: ticks(from: start, to: end, step: step))
    }

    /// A linear axis showing exactly `range`, ticked at round values inside it.
    static func fixed(_ range: ClosedRange<Double>) -> Axis {
        guard range.lowerBound.isFinite, range.upperBound.isFinite else { return linear([]) }
        let (lo, hi) = widened(range.lowerBound, range.upperBound)
        let step = niceStep((hi - lo) / 5)
        let start = (lo / step - 1e-9).rounded(.up), end = (hi / step + 1e-9).rounded(.down)
        return Axis(domain: lo...hi, ticks: ticks(from: start, to: end, step: step))
    }

    /// A log₂ axis ticked at the distinct positive values given, padded by half an octave.
    static func log2(values: [Double]) -> Axis {
        var distinct = Array(Set(values.filter { $0 > 0 && $0.isFinite })).sorted()
        if distinct.isEmpty { distinct = [1, 2] }
        let logs = distinct.map { Foundation.log2($0) }
        let lo = logs.first! - 0.5, hi = logs.last! + 0.5
        // Keep at most ~12 labels so they do not overlap.
        let stride = max(1, (distinct.count + 11) / 12)
        let ticks = distinct.enumerated().filter { $0.offset % stride == 0 }.map { ($0.element, Format.number($0.element)) }
        return Axis(domain: lo...hi, ticks: ticks, log2: true)
    }

    /// The smallest of 1, 2, 5 × 10^k that is ≥ `raw`.
    static func niceStep(_ raw: Double) -> Double {
        guard raw > 0, raw.isFinite else { return 1 }
        let magnitude = pow(10, (log10(raw)).rounded(.down))
        // The slack keeps e.g. 0.2 / 0.1 = 2.0000000000000004 at 2 instead of jumping to 5.
        let normalized = raw / magnitude * (1 - 1e-9)
        let factor: Double = normalized <= 1 ? 1 : normalized <= 2 ? 2 : normalized <= 5 ? 5 : 10
        return factor * magnitude
    }

    /// Ticks at start·step … end·step, computed from integer multiples to avoid drift.
    private static func ticks(from start: Double, to end: Double, step: Double) -> [(value: Double, label: String)] {
        guard end >= start, end - start <= 100 else { return [] }
        let decimals = max(0, Int(-(log10(step) + 1e-9).rounded(.down)))
        return (0...Int(end - start)).map { k in
            var v = (start + Double(k)) * step
            if abs(v) < step * 1e-6 { v = 0 }  // no "-0.0"
            return (v, String(format: "%.\(decimals)f", v))
        }
    }

    /// Gives an empty or single-point range some width so ticks and positions exist.
    private static func widened(_ lo: Double, _ hi: Double) -> (Double, Double) {
        var (lo, hi) = (min(lo, hi), max(lo, hi))
        if !(hi - lo).isFinite { return (-1, 1) }  // spans beyond Double; nothing sensible to draw
        if hi - lo <= abs(hi) * 1e-12 {
            let pad = lo == 0 ? 1 : abs(lo) * 0.1
            lo -= pad
            hi += pad
        }
        return (lo, hi)
    }
}

/// Plot area geometry: the plot is inset by the margins.
struct Frame {
    var width: Double, height: Double
    var left: Double, top: Double, right: Double, bottom: Double
    var title = ""
    var subtitle = ""

    var plotWidth: Double { width - left - right }
    var plotHeight: Double { height - top - bottom }
    /// Pixel coordinates of an axis fraction (0 = axis start, 1 = axis end).
    func px(_ t: Double) -> Double { left + t * plotWidth }
    func py(_ t: Double) -> Double { top + (1 - t) * plotHeight }
}

struct Style {
    var color: String
    var dash: String?
    init(index: Int) {
        color = SVGChart.palette[index % SVGChart.palette.count]
        dash = index >= SVGChart.palette.count ? "6 3" : nil
    }
}

/// Accumulates SVG elements; every attribute number passes through `n`, every text through `escapeXML`.
struct SVG {
    static let grid = "#e6e6e6", ink = "#333333", paper = "#ffffff"
    let frame: Frame
    private var body: [String] = []
    /// Unique per chart so several charts inlined into one HTML page keep their own clip.
    private var clipID: String {
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325  // FNV-1a of the title: deterministic across runs
        for byte in frame.title.utf8 { hash = (hash ^ UInt64(byte)) &* 0x100_0000_01b3 }
        return "plot-" + String(hash, radix: 16)
    }

    init(_ frame: Frame) {
        self.frame = frame
        if !frame.title.isEmpty {
            text(frame.width / 2, 26, frame.title, anchor: "middle", size: 16, bold: true)
        }
        if !frame.subtitle.isEmpty {
            text(frame.width / 2, 48, frame.subtitle, anchor: "middle", fill: "#444444")
        }
    }

    mutating func axes(x: Axis, y: Axis?, xLabel: String, yLabel: String?) {
        let f = frame
        let bottom = f.top + f.plotHeight, right = f.left + f.plotWidth
        for t in x.ticks {
            let px = f.px(x.position(t.value))
            add(#"<line x1="\#(n(px))" y1="\#(n(f.top))" x2="\#(n(px))" y2="\#(n(bottom))" stroke="\#(Self.grid)"/>"#)
            add(#"<line x1="\#(n(px))" y1="\#(n(bottom))" x2="\#(n(px))" y2="\#(n(bottom + 5))" stroke="\#(Self.ink)"/>"#)
            text(px, bottom + 19, t.label, anchor: "middle")
        }
        if let y {
            for t in y.ticks {
                let py = f.py(y.position(t.value))
                add(#"<line x1="\#(n(f.left))" y1="\#(n(py))" x2="\#(n(right))" y2="\#(n(py))" stroke="\#(Self.grid)"/>"#)
                add(#"<line x1="\#(n(f.left - 5))" y1="\#(n(py))" x2="\#(n(f.left))" y2="\#(n(py))" stroke="\#(Self.ink)"/>"#)
                text(f.left - 8, py + 4, t.label, anchor: "end")
            }
            add(#"<line x1="\#(n(f.left))" y1="\#(n(f.top))" x2="\#(n(f.left))" y2="\#(n(bottom))" stroke="\#(Self.ink)"/>"#)
        }
        add(#"<line x1="\#(n(f.left))" y1="\#(n(bottom))" x2="\#(n(right))" y2="\#(n(bottom))" stroke="\#(Self.ink)"/>"#)
        text(f.left + f.plotWidth / 2, f.height - 16, xLabel, anchor: "middle", size: 13)
        if let yLabel {
            let cx = 20.0, cy = f.top + f.plotHeight / 2
            add(#"<text x="\#(n(cx))" y="\#(n(cy))" text-anchor="middle" font-size="13" transform="rotate(-90 \#(n(cx)) \#(n(cy)))">\#(escapeXML(yLabel))</text>"#)
        }
    }

    /// Clip the data to the plot area so out-of-range points never cover the axes.
    mutating func beginClip() {
        let f = frame
        add(#"<clipPath id="\#(clipID)"><rect x="\#(n(f.left))" y="\#(n(f.top - 4))" width="\#(n(f.plotWidth + 4))" height="\#(n(f.plotHeight + 8))"/></clipPath>"#)
        add(#"<g clip-path="url(#\#(clipID))">"#)
    }

    mutating func endClip() { add("</g>") }

    mutating func polyline(_ points: [(Double, Double)], style: Style) {
        let list = points.map { "\(n($0.0)),\(n($0.1))" }.joined(separator: " ")
        let dash = style.dash.map { #" stroke-dasharray="\#($0)""# } ?? ""
        add(#"<polyline points="\#(list)" fill="none" stroke="\#(style.color)" stroke-width="2"\#(dash) stroke-linejoin="round"/>"#)
    }

    mutating func marker(_ p: (Double, Double), style: Style) {
        add(#"<circle cx="\#(n(p.0))" cy="\#(n(p.1))" r="3.5" fill="\#(style.color)" stroke="\#(Self.paper)" stroke-width="1"/>"#)
    }

    mutating func boxPlot(p5: Double, p25: Double, p50: Double, p75: Double, p95: Double, p99: Double,
                          cy: Double, style: Style) {
        let c = style.color
        add(#"<line x1="\#(n(p5))" y1="\#(n(cy))" x2="\#(n(p25))" y2="\#(n(cy))" stroke="\#(c)" stroke-width="1.5"/>"#)
        add(#"<line x1="\#(n(p75))" y1="\#(n(cy))" x2="\#(n(p95))" y2="\#(n(cy))" stroke="\#(c)" stroke-width="1.5"/>"#)
        for x in [p5, p95] {
            add(#"<line x1="\#(n(x))" y1="\#(n(cy - 6))" x2="\#(n(x))" y2="\#(n(cy + 6))" stroke="\#(c)" stroke-width="1.5"/>"#)
        }
        add(#"<rect x="\#(n(p25))" y="\#(n(cy - 9))" width="\#(n(max(p75 - p25, 0)))" height="18" fill="\#(c)" fill-opacity="0.25" stroke="\#(c)" stroke-width="1.5"/>"#)
        add(#"<line x1="\#(n(p50))" y1="\#(n(cy - 9))" x2="\#(n(p50))" y2="\#(n(cy + 9))" stroke="\#(c)" stroke-width="3"/>"#)
        add(#"<path d="M \#(n(p99)) \#(n(cy - 5)) L \#(n(p99 + 5)) \#(n(cy)) L \#(n(p99)) \#(n(cy + 5)) L \#(n(p99 - 5)) \#(n(cy)) Z" fill="\#(c)"/>"#)
    }

    mutating func legend(_ names: [String], markers: Bool) {
        let x = frame.left + frame.plotWidth + 18
        for (i, name) in names.enumerated() {
            let style = Style(index: i)
            let y = frame.top + 10 + Double(i) * 20
            // A <line>, not a <polyline>, so polylines are exactly the data series.
            let dash = style.dash.map { #" stroke-dasharray="\#($0)""# } ?? ""
            add(#"<line x1="\#(n(x))" y1="\#(n(y))" x2="\#(n(x + 22))" y2="\#(n(y))" stroke="\#(style.color)" stroke-width="2"\#(dash)/>"#)
            if markers { marker((x + 11, y), style: style) }
            text(x + 30, y + 4, SVGChart.shortened(name), anchor: "start")
        }
    }

    mutating func text(_ x: Double, _ y: Double, _ s: String, anchor: String,
                       size: Double = 12, bold: Bool = false, fill: String = "#222222") {
        let weight = bold ? #" font-weight="bold""# : ""
        add(#"<text x="\#(n(x))" y="\#(n(y))" text-anchor="\#(anchor)" font-size="\#(n(size))" fill="\#(fill)"\#(weight)>\#(escapeXML(s))</text>"#)
    }

    private mutating func add(_ element: String) { body.append(element) }

    func finish() -> String {
        let w = n(frame.width), h = n(frame.height)
        var out = #"<?xml version="1.0" encoding="UTF-8"?>"# + "\n"
        out += #"<svg xmlns="http://www.w3.org/2000/svg" version="1.1" width="\#(w)" height="\#(h)" viewBox="0 0 \#(w) \#(h)" font-family="sans-serif">"# + "\n"
        if !frame.title.isEmpty { out += "<title>\(escapeXML(frame.title))</title>\n" }
        out += #"<rect x="0" y="0" width="\#(w)" height="\#(h)" fill="\#(Self.paper)"/>"# + "\n"
        for element in body { out += element + "\n" }
        out += "</svg>\n"
        return out
    }

    /// One decimal is plenty at screen resolution. Non-finite numbers cannot reach
    /// here through the public API, but if one did it is written as 0 rather than
    /// as "nan", which would make the whole file invalid.
    private func n(_ v: Double) -> String {
        guard v.isFinite else { return "0" }
        let r = (v * 10).rounded() / 10
        return r == r.rounded() ? String(Int(r)) : String(format: "%.1f", r)
    }
}

/// Escapes the five XML special characters and drops control characters that XML 1.0 forbids.
func escapeXML(_ s: String) -> String {
    var out = ""
    out.reserveCapacity(s.utf8.count)
    for scalar in s.unicodeScalars {
        switch scalar {
        case "&": out += "&amp;"
        case "<": out += "&lt;"
        case ">": out += "&gt;"
        case "\"": out += "&quot;"
        case "'": out += "&apos;"
        case "\t", "\n", "\r": out.unicodeScalars.append(scalar)
        case _ where scalar.value < 0x20 || scalar.value == 0xFFFE || scalar.value == 0xFFFF: continue
        default: out.unicodeScalars.append(scalar)
        }
    }
    return out
}

// MARK: - Markdown tables

/// A GitHub-flavoured Markdown table. Columns are padded so the raw text lines up.
public struct MarkdownTable: Sendable {
    public enum Alignment: Sendable { case left, center, right }

    private let headers: [String]
    private let alignments: [Alignment]?
    private var rows: [[String]] = []

    public init(headers: [String], alignments: [Alignment]? = nil) {
        precondition(!headers.isEmpty, "MarkdownTable: no columns")
        if let alignments {
            precondition(alignments.count == headers.count, "MarkdownTable: one alignment per column")
        }
        self.headers = headers
        self.alignments = alignments
    }

    /// Adds a row; a short row is padded with empty cells, a long one is an error.
    public mutating func add(_ row: [String]) {
        precondition(row.count <= headers.count, "MarkdownTable: row has \(row.count) cells, table has \(headers.count) columns")
        rows.append(row + Array(repeating: "", count: headers.count - row.count))
    }

    public func render() -> String {
        let head = headers.map(Self.escape)
        let body = rows.map { $0.map(Self.escape) }
        let widths = head.indices.map { c in max(3, ([head[c]] + body.map { $0[c] }).map(\.count).max()!) }
        func line(_ cells: [String]) -> String {
            let padded = cells.enumerated().map { c, cell in
                Self.pad(cell, to: widths[c], alignments?[c] ?? .left)
            }
            return "| " + padded.joined(separator: " | ") + " |"
        }
        let separator = widths.indices.map { c -> String in
            let w = widths[c]
            switch alignments?[c] {
            case nil: return String(repeating: "-", count: w)
            case .left: return ":" + String(repeating: "-", count: w - 1)
            case .right: return String(repeating: "-", count: w - 1) + ":"
            case .center: return ":" + String(repeating: "-", count: w - 2) + ":"
            }
        }
        var out = line(head) + "\n" + "| " + separator.joined(separator: " | ") + " |\n"
        for row in body { out += line(row) + "\n" }
        return out
    }

    /// Pipes would end the cell and newlines the row.
    private static func escape(_ cell: String) -> String {
        cell.replacingOccurrences(of: "|", with: "\\|")
            .replacingOccurrences(of: "\r\n", with: "<br>")
            .replacingOccurrences(of: "\n", with: "<br>")
    }

    private static func pad(_ s: String, to width: Int, _ alignment: Alignment) -> String {
        let gap = max(0, width - s.count)
        switch alignment {
        case .left: return s + String(repeating: " ", count: gap)
        case .right: return String(repeating: " ", count: gap) + s
        case .center:
            return String(repeating: " ", count: gap / 2) + s + String(repeating: " ", count: gap - gap / 2)
        }
    }
}

// MARK: - Number formatting

/// Human-readable numbers for the report. Negative numbers use the minus sign "−" (U+2212).
public enum Format {
    /// Three significant digits in µs, ms or s: "812 µs", "12.3 ms", "1.24 s".
    public static func seconds(_ s: Double) -> String {
        guard s.isFinite else { return s.isNaN ? "n/a" : (s > 0 ? "∞ s" : "−∞ s") }
        let magnitude = abs(s)
        // Choose the unit after rounding, so 999.96 µs prints as "1.00 ms", not "1000 µs".
        let (value, unit): (Double, String)
        if magnitude * 1e6 < 999.5 {
            (value, unit) = (magnitude * 1e6, "µs")
        } else if magnitude * 1e3 < 999.5 {
            (value, unit) = (magnitude * 1e3, "ms")
        } else {
            (value, unit) = (magnitude, "s")
        }
        return sign(s) + significant3(value) + " " + unit
    }

    /// A fraction as a percentage with one decimal: 0.4123 → "41.2%".
    public static func percent(_ f: Double) -> String {
        guard f.isFinite else { return "n/a" }
        return sign(f) + String(format: "%.1f", abs(f) * 100) + "%"
    }

    /// A ratio such as a speed-up: 1.8427 → "1.84×".
    public static func ratio(_ r: Double) -> String {
        guard r.isFinite else { return "n/a" }
        return sign(r) + significant3(abs(r)) + "×"
    }

    /// "−41.2 ms [−45.0, −37.9]", with " (n.s.)" appended when the interval contains no change.
    /// The interval bounds drop the unit when it is the same as the estimate's.
    /// A positive difference gets an explicit "+" so that the direction is always visible.
    public static func difference(_ d: Difference, unit: (Double) -> String) -> String {
        var estimate = unit(d.estimate)
        var low = unit(d.low), high = unit(d.high)
        if let space = estimate.lastIndex(of: " ") {
            let suffix = String(estimate[space...])
            if low.hasSuffix(suffix) && high.hasSuffix(suffix) {
                low.removeLast(suffix.count)
                high.removeLast(suffix.count)
            }
        }
        if d.noEffect == 0 && d.estimate > 0 && !estimate.hasPrefix("+") { estimate = "+" + estimate }
        return "\(estimate) [\(low), \(high)]" + (d.significant ? "" : " (n.s.)")
    }

    /// Integers as integers, otherwise three significant digits (axis labels on log scales).
    static func number(_ v: Double) -> String {
        if v == v.rounded() && abs(v) < 1e15 { return String(Int(v)) }
        return String(format: "%.3g", v)
    }

    private static func sign(_ v: Double) -> String { v < 0 ? "−" : "" }

    /// 3 significant digits for a non-negative value; thresholds are applied after rounding.
    private static func significant3(_ v: Double) -> String {
        let decimals = v >= 99.95 ? 0 : v >= 9.995 ? 1 : v >= 0.9995 ? 2 : 3
        return String(format: "%.\(decimals)f", v)
    }
}
