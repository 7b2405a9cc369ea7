import Foundation
#if canImport(FoundationXML)
import FoundationXML
#endif
import Testing
@testable import VerbatimBench

/// Collects what an SVG document contains, as an XML parser sees it.
final class SVGInspector: NSObject, XMLParserDelegate {
    var root = ""
    var counts: [String: Int] = [:]
    var text = ""
    var polylinePoints: [[(x: Double, y: Double)]] = []

    func parser(_ parser: XMLParser, didStartElement elementName: String, namespaceURI: String?,
                qualifiedName qName: String?, attributes attributeDict: [String: String] = [:]) {
        if root.isEmpty { root = elementName }
        counts[elementName, default: 0] += 1
        if elementName == "polyline", let points = attributeDict["points"] {
            polylinePoints.append(points.split(separator: " ").map { pair in
                let xy = pair.split(separator: ",").map { Double($0)! }
                return (xy[0], xy[1])
            })
        }
    }

    func parser(_ parser: XMLParser, foundCharacters string: String) { text += string }
}

/// Parses `svg` and checks what every chart must satisfy; nil when it is not well-formed XML.
func wellFormed(_ svg: String, sourceLocation: SourceLocation = #_sourceLocation) -> SVGInspector? {
    let parser = XMLParser(data: Data(svg.utf8))
    let inspector = SVGInspector()
    parser.delegate = inspector
    let ok = parser.parse()
    #expect(ok, "not well-formed: \(String(describing: parser.parserError))", sourceLocation: sourceLocation)
    #expect(inspector.root == "svg", sourceLocation: sourceLocation)
    #expect(svg.contains(#"xmlns="http://www.w3.org/2000/svg""#), sourceLocation: sourceLocation)
    #expect(svg.contains("viewBox=") && svg.contains("width=") && svg.contains("height="), sourceLocation: sourceLocation)
    #expect(!svg.lowercased().contains("<script"), sourceLocation: sourceLocation)
    #expect(!svg.lowercased().contains("nan"), "NaN in output", sourceLocation: sourceLocation)
    #expect(!svg.lowercased().contains("inf"), "infinity in output", sourceLocation: sourceLocation)
    return ok ? inspector : nil
}

@Suite("SVGChart")
struct ChartTests {
    @Test("lines: well-formed SVG, one polyline and one marker per point per series, escaped title and names survive")
    func lines() throws {
        let svg = SVGChart.lines(
            title: "a < b & c", xLabel: "block size \"tokens\"", yLabel: "hit rate",
            series: [("LRU <x>", [(16, 0.2), (32, 0.3), (64, 0.35)]),
                     ("O'Neil & co", [(16, 0.25), (32, 0.4), (64, 0.5)]),
                     ("third", [(16, 0.1), (64, 0.15)])])
        let doc = try #require(wellFormed(svg))
        #expect(doc.counts["polyline"] == 3)
        #expect(doc.counts["circle"] == 8 + 3)  // data points + one marker per legend entry
        #expect(doc.text.contains("a < b & c"))
        #expect(doc.text.contains("LRU <x>") && doc.text.contains("O'Neil & co"))
        #expect(doc.text.contains("block size \"tokens\""))
    }

    @Test("log2 x axis: ticks labelled at the data's x values, equally spaced octaves")
    func log2Axis() throws {
        let svg = SVGChart.lines(title: "hit rate vs block size", xLabel: "block size", yLabel: "hit rate",
                                 series: [("s", [(128, 0.1), (16, 0.4), (32, 0.3), (64, 0.2)])],
                                 xLog2: true, yRange: 0...1)
        let doc = try #require(wellFormed(svg))
        for label in ["16", "32", "64", "128", "0.0", "0.2", "1.0"] {
            #expect(doc.text.contains(label), "missing tick label \(label)")
        }
        let xs = try #require(doc.polylinePoints.first).map(\.x)
        #expect(xs.count == 4)
        let gaps = zip(xs.dropFirst(), xs).map { $0 - $1 }
        #expect(gaps.allSatisfy { $0 > 0 && abs($0 - gaps[0]) <= 0.2 }, "gaps \(gaps)")
    }

    @Test("degenerate inputs (no series, empty series, one point, constant values, NaN and infinite points) stay well-formed")
    func degenerateLines() {
        let empty: [(name: String, points: [(x: Double, y: Double)])] = []
        _ = wellFormed(SVGChart.lines(title: "none", xLabel: "x", yLabel: "y", series: empty))
        _ = wellFormed(SVGChart.lines(title: "empty", xLabel: "x", yLabel: "y", series: [("e", [])]))
        _ = wellFormed(SVGChart.lines(title: "one", xLabel: "x", yLabel: "y", series: [("o", [(3, 3)])]))
        _ = wellFormed(SVGChart.lines(title: "one", xLabel: "x", yLabel: "y", series: [("o", [(3, 3)])], xLog2: true))
        _ = wellFormed(SVGChart.lines(title: "flat", xLabel: "x", yLabel: "y",
                                      series: [("f", [(1, 0), (2, 0), (3, 0)])], yRange: 0...0))
        _ = wellFormed(SVGChart.lines(title: "bad", xLabel: "x", yLabel: "y",
                                      series: [("b", [(0, 1), (1, .nan), (2, .infinity), (4, 2)])], xLog2: true))
    }

    @Test("distributions: one box, median and p99 marker per series; degenerate samples stay well-formed")
    func distributions() throws {
        var v = Variates(seed: 11)
        let a = (0..<500).map { _ in 0.040 + v.exponential(rate: 100) }
        let b = (0..<500).map { _ in 0.030 + v.exponential(rate: 150) }
        let svg = SVGChart.distributions(title: "TTFT <per> config", unit: "seconds",
                                         series: [("baseline", a), ("prefix cache", b)])
        let doc = try #require(wellFormed(svg))
        #expect(doc.counts["rect"] == 1 + 2)  // background + one box per series
        #expect(doc.counts["path"] == 2)      // one p99 diamond per series
        #expect(doc.text.contains("TTFT <per> config") && doc.text.contains("p5–p95"))
        #expect(doc.text.contains("n=500"))

        _ = wellFormed(SVGChart.distributions(title: "none", unit: "s", series: []))
        let odd = try #require(wellFormed(SVGChart.distributions(
            title: "odd", unit: "s",
            series: [("empty", []), ("single", [0.5]), ("constant", [2, 2, 2]), ("non-finite", [.nan, .infinity])])))
        #expect(odd.text.contains("no data"))
    }

    @Test("ecdf: one rising polyline from 0 to 1 per non-empty series, small output for 100 000 samples")
    func ecdf() throws {
        var v = Variates(seed: 12)
        let big = (0..<100_000).map { _ in v.exponential() }
        let svg = SVGChart.ecdf(title: "TTFT", unit: "ms", series: [("big", big), ("tiny", [1, 2, 3]), ("none", [])])
        let doc = try #require(wellFormed(svg))
        #expect(doc.counts["polyline"] == 2)
        #expect(svg.utf8.count < 150_000, "\(svg.utf8.count) bytes")
        for line in doc.polylinePoints {
            // SVG y grows downwards: the CDF never falls, i.e. y never increases along the line.
            #expect(zip(line.dropFirst(), line).allSatisfy { $0.y <= $1.y && $0.x >= $1.x })
            #expect(line.first!.y > line.last!.y)
        }
        #expect(doc.text.contains("none (no data)"))
        _ = wellFormed(SVGChart.ecdf(title: "constant", unit: "ms", series: [("c", [5, 5, 5])]))
    }

    @Test("axis ticks are round 1/2/5 × 10^k values covering the data")
    func niceTicks() {
        #expect(Axis.niceStep(0.3) == 0.5)
        #expect(Axis.niceStep(1) == 1)
        #expect(Axis.niceStep(0.021) == 0.05)
        #expect(Axis.niceStep(7) == 10)
        let a = Axis.linear([0.0, 0.93])
        #expect(a.ticks.map(\.label) == ["0.0", "0.2", "0.4", "0.6", "0.8", "1.0"])
        let b = Axis.linear([3, 97])
        #expect(b.ticks.map(\.label) == ["0", "20", "40", "60", "80", "100"])
        let c = Axis.linear([-0.013, 0.004])
        #expect(c.ticks.map(\.label) == ["-0.015", "-0.010", "-0.005", "0.000", "0.005"])
        let flat = Axis.linear([5, 5])
        #expect(flat.domain.lowerBound < 5 && 5 < flat.domain.upperBound)
        #expect(flat.position(5).isFinite)
    }
}

@Suite("MarkdownTable and Format")
struct TextTests {
    @Test("MarkdownTable renders aligned GitHub markup with escaped pipes and padded short rows")
    func table() {
        var t = MarkdownTable(headers: ["Config", "p50", "Hit rate"], alignments: [.left, .right, .center])
        t.add(["base", "812 µs", "41.2%"])
        t.add(["a|b", "1.24 s"])
        #expect(t.render() == """
            | Config |    p50 | Hit rate |
            | :----- | -----: | :------: |
            | base   | 812 µs |  41.2%   |
            | a\\|b   | 1.24 s |          |

            """)
        var plain = MarkdownTable(headers: ["a", "b"])
        plain.add(["1", "2"])
        #expect(plain.render() == "| a   | b   |\n| --- | --- |\n| 1   | 2   |\n")
    }

    @Test("Format.seconds uses three significant digits in µs, ms or s")
    func seconds() {
        #expect(Format.seconds(0.000812) == "812 µs")
        #expect(Format.seconds(0.0123) == "12.3 ms")
        #expect(Format.seconds(1.2399) == "1.24 s")
        #expect(Format.seconds(-0.0412) == "−41.2 ms")
        #expect(Format.seconds(0.0009996) == "1.00 ms")
        #expect(Format.seconds(5e-7) == "0.500 µs")
        #expect(Format.seconds(123.4) == "123 s")
        #expect(Format.percent(0.4123) == "41.2%")
        #expect(Format.percent(-0.031) == "−3.1%")
        #expect(Format.ratio(1.8427) == "1.84×")
    }

    @Test("Format.difference shows estimate, interval without repeated unit, and n.s. when the interval contains no change")
    func difference() {
        let faster = Difference(estimate: -0.0412, low: -0.045, high: -0.0379, confidence: 0.95)
        #expect(Format.difference(faster, unit: Format.seconds) == "−41.2 ms [−45.0, −37.9]")
        let unclear = Difference(estimate: 0.0021, low: -0.0011, high: 0.0052, confidence: 0.95)
        #expect(Format.difference(unclear, unit: Format.seconds) == "+2.10 ms [−1.10, 5.20] (n.s.)")
        let mixed = Difference(estimate: 0.002, low: 0.0005, high: 0.0035, confidence: 0.95)
        #expect(Format.difference(mixed, unit: Format.seconds) == "+2.00 ms [500 µs, 3.50 ms]")
        let speedup = Difference(estimate: 0.54, low: 0.5, high: 0.58, confidence: 0.95, noEffect: 1)
        #expect(Format.difference(speedup, unit: Format.ratio) == "0.540× [0.500×, 0.580×]")
    }
}
