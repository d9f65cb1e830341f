#include "api/agent_check.h"

#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "api/listen_address.h"

namespace tailor {

std::string AgentStatusLine(bool ready, bool draining, int64_t waiting, int64_t running_capacity) {
  if (draining) return "drain #shutting down";
  if (!ready) return "down #loading";
  // Weight: full while nothing waits; each batch's worth of waiting sequences halves it.
  const double batches = static_cast<double>(std::max<int64_t>(0, waiting)) /
                         static_cast<double>(std::max<int64_t>(1, running_capacity));
  const int weight = std::clamp(static_cast<int>(100.0 / (1.0 + batches) + 0.5), 1, 100);
  return absl::StrCat("ready up ", weight, "%");
}

absl::StatusOr<std::unique_ptr<AgentCheckServer>> AgentCheckServer::Start(const std::string& host, int port,
                                                                          std::function<std::string()> status) {
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
  addrinfo* found = nullptr;
  if (int rc = getaddrinfo(host.c_str(), std::to_string(port).c_str(), &hints, &found); rc != 0) {
    return absl::InvalidArgumentError(absl::StrCat("--host ", host, ": ", gai_strerror(rc)));
  }
  std::unique_ptr<AgentCheckServer> s(new AgentCheckServer());
  int err = 0;
  for (addrinfo* a = found; a != nullptr && s->listen_fd_ < 0; a = a->ai_next) {
    const int fd = socket(a->ai_family, a->ai_socktype | SOCK_CLOEXEC, a->ai_protocol);
    if (fd < 0) continue;
    SetListenSocketOptions(fd);
    if (bind(fd, a->ai_addr, a->ai_addrlen) == 0 && listen(fd, 64) == 0) {
      s->listen_fd_ = fd;
    } else {
      err = errno;
      close(fd);
    }
  }
  freeaddrinfo(found);
  if (s->listen_fd_ < 0) {
    return absl::InvalidArgumentError(absl::StrCat("--agent-port ", port, ": cannot listen on ", host, " (",
                                                   std::strerror(err), ")"));
  }
  sockaddr_storage addr{};
  socklen_t len = sizeof addr;
  getsockname(s->listen_fd_, reinterpret_cast<sockaddr*>(&addr), &len);
  s->port_ = ntohs(addr.ss_family == AF_INET6 ? reinterpret_cast<sockaddr_in6*>(&addr)->sin6_port
                                               : reinterpret_cast<sockaddr_in*>(&addr)->sin_port);
  if (pipe2(s->wake_, O_CLOEXEC) != 0) return absl::InternalError("agent-check: pipe failed");
  s->status_ = std::move(status);
  s->thread_ = std::thread([raw = s.get()] { raw->Loop(); });
  return s;
}

void AgentCheckServer::Loop() {
  for (;;) {
    pollfd fds[2] = {{listen_fd_, POLLIN, 0}, {wake_[0], POLLIN, 0}};
    if (poll(fds, 2, -1) < 0) {
      if (errno == EINTR) continue;
      return;
    }
    if (fds[1].revents != 0) return;
    if ((fds[0].revents & POLLIN) == 0) continue;
    const int conn = accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
    if (conn < 0) continue;
    const std::string line = status_() + "\n";
    // One short line: a single send on a fresh connection; a client that is gone is ignored.
    (void)send(conn, line.data(), line.size(), MSG_NOSIGNAL);
    close(conn);
  }
}

AgentCheckServer::~AgentCheckServer() {
  if (wake_[1] >= 0) {
    const char c = 0;
    (void)write(wake_[1], &c, 1);
  }
  if (thread_.joinable()) thread_.join();
  for (int fd : {listen_fd_, wake_[0], wake_[1]}) {
    if (fd >= 0) close(fd);
  }
}

}  // namespace tailor
