import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// A loopback TCP proxy to a local port, for taking a server away from one client mid-test:
/// `stop()` closes the listener and every connection, as a dead server or network would.
final class TCPProxy: @unchecked Sendable {
    // Sendable: the socket list is behind `lock`.
    let port: Int
    private let listener: Int32
    private let lock = NSLock()
    private var sockets: [Int32] = []
    private var stopped = false

    init(to target: Int) throws {
        let listener = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        self.listener = listener
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        address.sin_port = 0
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let bound = withUnsafePointer(to: &address) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(listener, $0, length) } }
        guard bound == 0, listen(listener, 16) == 0 else { throw POSIXError(.EADDRINUSE) }
        _ = withUnsafeMutablePointer(to: &address) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(listener, $0, &length) } }
        port = Int(UInt16(bigEndian: address.sin_port))
        Thread.detachNewThread { [self] in
            while true {
                let client = accept(listener, nil, nil)
                guard client >= 0 else { return }
                let server = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
                var to = sockaddr_in()
                to.sin_family = sa_family_t(AF_INET)
                to.sin_addr.s_addr = inet_addr("127.0.0.1")
                to.sin_port = UInt16(target).bigEndian
                let connected = withUnsafePointer(to: &to) {
                    $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(server, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
                }
                guard connected == 0, track([client, server]) else { close(client); close(server); continue }
                Thread.detachNewThread { Self.pump(from: client, to: server) }
                Thread.detachNewThread { Self.pump(from: server, to: client) }
            }
        }
    }

    private func track(_ fds: [Int32]) -> Bool {
        lock.withLock {
            guard !stopped else { return false }
            sockets += fds
            return true
        }
    }

    private static func pump(from: Int32, to: Int32) {
        var buffer = [UInt8](repeating: 0, count: 65536)
        while true {
            let n = buffer.withUnsafeMutableBytes { recv(from, $0.baseAddress, $0.count, 0) }
            guard n > 0 else { shutdown(to, Int32(SHUT_RDWR)); return }
            var sent = 0
            while sent < n {
                let m = buffer.withUnsafeBytes { send(to, $0.baseAddress! + sent, n - sent, Int32(MSG_NOSIGNAL)) }
                guard m > 0 else { shutdown(from, Int32(SHUT_RDWR)); return }
                sent += m
            }
        }
    }

    /// Closes the listener and every proxied connection.
    func stop() {
        lock.withLock {
            stopped = true
            shutdown(listener, Int32(SHUT_RDWR))
            close(listener)
            for fd in sockets { shutdown(fd, Int32(SHUT_RDWR)) }
        }
    }

    deinit { stop() }
}
