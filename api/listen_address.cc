#include "api/listen_address.h"

#include <netdb.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "absl/strings/str_cat.h"

namespace tailor {

void SetListenSocketOptions(int fd) {
  int yes = 1;
  setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &yes, sizeof(yes));
}

absl::Status CheckListenAddress(const std::string& host, int port) {
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
  addrinfo* found = nullptr;
  const std::string service = std::to_string(port);
  if (int rc = getaddrinfo(host.empty() ? nullptr : host.c_str(), service.c_str(), &hints, &found); rc != 0) {
    return absl::InvalidArgumentError(absl::StrCat("--host ", host, ": not a host name or address of this machine (",
                                                   gai_strerror(rc), ")"));
  }
  int last_errno = 0;
  bool bound = false;
  for (addrinfo* a = found; a != nullptr && !bound; a = a->ai_next) {
    const int fd = socket(a->ai_family, a->ai_socktype, a->ai_protocol);
    if (fd < 0) {
      last_errno = errno;
      continue;
    }
    SetListenSocketOptions(fd);
    if (bind(fd, a->ai_addr, a->ai_addrlen) == 0) {
      bound = true;
    } else {
      last_errno = errno;
    }
    close(fd);
  }
  freeaddrinfo(found);
  if (bound) return absl::OkStatus();
  switch (last_errno) {
    case EADDRINUSE:
      return absl::InvalidArgumentError(absl::StrCat("--port ", port, ": address already in use (another process listens on ",
                                                     host, ":", port, "; choose another --port, or 0 for any free one)"));
    case EADDRNOTAVAIL:
      return absl::InvalidArgumentError(
          absl::StrCat("--host ", host, ": not an address of this machine (cannot assign requested address)"));
    case EACCES:
      return absl::InvalidArgumentError(absl::StrCat("--port ", port, ": permission denied (ports below 1024 need privileges)"));
    default:
      return absl::InvalidArgumentError(absl::StrCat("--host ", host, " --port ", port, ": cannot bind (",
                                                     std::strerror(last_errno), ")"));
  }
}

}  // namespace tailor
