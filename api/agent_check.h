// HAProxy's agent-check protocol on its own TCP port (`tailor serve --agent-port P`): each
// connection gets one line describing the replica and is closed. HAProxy (`server ... agent-check
// agent-port P agent-inter 1s`) reads it to mark the server ready, drain it, or set its weight:
//   loading:  "down #loading"
//   serving:  "ready up W%"  W = 100 when nothing waits, down to 1 as the queue grows (a replica
//                            with a long queue gets proportionally fewer new connections)
//   draining: "drain #shutting down"
// Thread-safety: the server runs one accept thread; `status` is called on it.
#ifndef TAILOR_API_AGENT_CHECK_H_
#define TAILOR_API_AGENT_CHECK_H_

#include <atomic>
#include <functional>
#include <memory>
#include <string>
#include <thread>

#include "absl/status/statusor.h"

namespace tailor {

// The agent line for a replica: `ready` (the package is loaded), `draining`, and its queue:
// sequences waiting beyond `running_capacity` (the largest batch).
std::string AgentStatusLine(bool ready, bool draining, int64_t waiting, int64_t running_capacity);

class AgentCheckServer {
 public:
  // Listens on host:port (0: any free port). `status` returns the line to send (without "\n").
  static absl::StatusOr<std::unique_ptr<AgentCheckServer>> Start(const std::string& host, int port,
                                                                 std::function<std::string()> status);
  ~AgentCheckServer();  // stops and joins
  int port() const { return port_; }

 private:
  AgentCheckServer() = default;
  void Loop();

  int listen_fd_ = -1;
  int wake_[2] = {-1, -1};  // a pipe: writing to wake_[1] ends Loop()
  int port_ = 0;
  std::function<std::string()> status_;
  std::thread thread_;
};

}  // namespace tailor

#endif  // TAILOR_API_AGENT_CHECK_H_
