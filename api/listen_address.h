// Checking that `tailor serve` can listen where it was told to, before the HTTP server binds, so
// that a busy port or a foreign address is reported as the user's mistake (exit 2) in words.
#ifndef TAILOR_API_LISTEN_ADDRESS_H_
#define TAILOR_API_LISTEN_ADDRESS_H_

#include <string>

#include "absl/status/status.h"

namespace tailor {

// Binds (and at once closes) a TCP socket on every address `host` resolves to, at `port` (0: any
// port), as the server's own socket will be bound: SO_REUSEADDR, never SO_REUSEPORT, so a port
// another process listens on is refused. InvalidArgument naming --host or --port when it fails:
// "address already in use", "not an address of this machine", "not a host name or address".
// Thread-safe (no shared state).
absl::Status CheckListenAddress(const std::string& host, int port);

// The socket options the server's listening socket gets: SO_REUSEADDR only (cpp-httplib's
// default adds SO_REUSEPORT, which lets a second server listen on a port in use).
void SetListenSocketOptions(int fd);

}  // namespace tailor

#endif  // TAILOR_API_LISTEN_ADDRESS_H_
