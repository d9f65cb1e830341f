#include "bench/soak/http_client.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

namespace tailor::soak {
namespace {

int MillisLeft(Clock::time_point deadline) {
  const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
  return static_cast<int>(std::clamp<long long>(left, 0, 1 << 30));
}

std::string Lower(std::string s) {
  for (char& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

// The value of header `name` (lower case) in the header block `head`, or "".
std::string HeaderValue(const std::string& head, const std::string& name) {
  const std::string lower = Lower(head);
  size_t pos = 0;
  while ((pos = lower.find("\r\n" + name + ":", pos)) != std::string::npos) {
    size_t start = pos + 3 + name.size();
    size_t end = lower.find("\r\n", start);
    std::string v = head.substr(start, end == std::string::npos ? std::string::npos : end - start);
    v.erase(0, v.find_first_not_of(' '));
    while (!v.empty() && v.back() == ' ') v.pop_back();
    return v;
  }
  return "";
}

// Decodes the complete chunks at the front of `raw` into `out` (consuming them); true once the
// last (0-size) chunk was seen. False with `bad` set on a malformed chunk header.
bool Dechunk(std::string& raw, std::string& out, bool& bad) {
  for (;;) {
    const size_t eol = raw.find("\r\n");
    if (eol == std::string::npos) return false;
    char* end = nullptr;
    const unsigned long size = std::strtoul(raw.c_str(), &end, 16);
    if (end == raw.c_str()) {
      bad = true;
      return false;
    }
    if (size == 0) {
      // The last chunk; trailers (none from httplib) end with an empty line.
      return raw.find("\r\n\r\n", eol) != std::string::npos;
    }
    if (raw.size() < eol + 2 + size + 2) return false;
    out.append(raw, eol + 2, size);
    raw.erase(0, eol + 2 + size + 2);
  }
}

}  // namespace

std::string Connection::Open(int port, Clock::time_point deadline) {
  Close();
  fd_ = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (fd_ < 0) return std::string("socket: ") + std::strerror(errno);
  const int one = 1;
  setsockopt(fd_, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);  // loopback only, by construction
  if (connect(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0) return "";
  if (errno != EINPROGRESS) return std::string("connect: ") + std::strerror(errno);
  pollfd p{fd_, POLLOUT, 0};
  if (poll(&p, 1, MillisLeft(deadline)) <= 0) return "connect: timed out";
  int err = 0;
  socklen_t len = sizeof err;
  getsockopt(fd_, SOL_SOCKET, SO_ERROR, &err, &len);
  return err == 0 ? "" : std::string("connect: ") + std::strerror(err);
}

std::string Connection::Send(const std::string& data, Clock::time_point deadline) {
  size_t sent = 0;
  while (sent < data.size()) {
    const ssize_t n = send(fd_, data.data() + sent, data.size() - sent, MSG_NOSIGNAL);
    if (n > 0) {
      sent += static_cast<size_t>(n);
      continue;
    }
    if (n < 0 && errno != EAGAIN && errno != EINTR) return std::string("send: ") + std::strerror(errno);
    pollfd p{fd_, POLLOUT, 0};
    if (poll(&p, 1, MillisLeft(deadline)) <= 0) return "send: timed out";
  }
  return "";
}

bool Connection::ReadMore(std::string& buf, Clock::time_point deadline, std::string& error) {
  char tmp[16384];
  for (;;) {
    const ssize_t n = recv(fd_, tmp, sizeof tmp, 0);
    if (n > 0) {
      buf.append(tmp, static_cast<size_t>(n));
      return true;
    }
    if (n == 0) {
      error = "connection closed by the server";
      return false;
    }
    if (errno != EAGAIN && errno != EINTR) {
      error = std::string("recv: ") + std::strerror(errno);
      return false;
    }
    pollfd p{fd_, POLLIN, 0};
    const int left = MillisLeft(deadline);
    if (left == 0 || poll(&p, 1, left) == 0) {
      error = "timed out waiting for the response";
      return false;
    }
  }
}

HttpReply Connection::ReadReply(Clock::time_point deadline,
                                const std::function<bool(const std::string& body)>& on_body) {
  HttpReply reply;
  std::string raw;
  size_t head_end;
  while ((head_end = raw.find("\r\n\r\n")) == std::string::npos) {
    if (!ReadMore(raw, deadline, reply.error)) return reply;
  }
  const std::string head = raw.substr(0, head_end + 2);
  raw.erase(0, head_end + 4);
  if (head.compare(0, 5, "HTTP/") != 0 || head.find(' ') == std::string::npos) {
    reply.error = "malformed status line: " + head.substr(0, head.find("\r\n"));
    return reply;
  }
  reply.status = std::atoi(head.c_str() + head.find(' ') + 1);
  const bool chunked = Lower(HeaderValue(head, "transfer-encoding")) == "chunked";
  const std::string length_text = HeaderValue(head, "content-length");
  const long long length = length_text.empty() ? -1 : std::atoll(length_text.c_str());
  for (;;) {
    if (chunked) {
      bool bad = false;
      reply.complete = Dechunk(raw, reply.body, bad);
      if (bad) {
        reply.error = "malformed chunk header";
        return reply;
      }
    } else {
      reply.body += raw;
      raw.clear();
      reply.complete = length >= 0 && static_cast<long long>(reply.body.size()) >= length;
    }
    if (on_body && !reply.complete && !on_body(reply.body)) {
      reply.abandoned = true;  // the caller closes the connection as it likes
      return reply;
    }
    if (reply.complete) return reply;
    std::string error;
    if (!ReadMore(raw, deadline, error)) {
      // Without Content-Length or chunking, the body ends with the connection.
      if (!chunked && length < 0 && error == "connection closed by the server") {
        reply.complete = true;
      } else {
        reply.error = error;
      }
      return reply;
    }
  }
}

void Connection::Close(bool reset) {
  if (fd_ < 0) return;
  if (reset) {
    linger l{1, 0};
    setsockopt(fd_, SOL_SOCKET, SO_LINGER, &l, sizeof l);
  }
  close(fd_);
  fd_ = -1;
}

std::string PostRequest(const std::string& path, const std::string& body) {
  return "POST " + path + " HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n"
         "Content-Type: application/json\r\nContent-Length: " + std::to_string(body.size()) + "\r\n\r\n" + body;
}

std::string GetRequest(const std::string& path) {
  return "GET " + path + " HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n";
}

HttpReply Get(int port, const std::string& path, std::chrono::milliseconds timeout) {
  const auto deadline = Clock::now() + timeout;
  Connection c;
  HttpReply reply;
  if (std::string e = c.Open(port, deadline); !e.empty()) {
    reply.error = e;
    return reply;
  }
  if (std::string e = c.Send(GetRequest(path), deadline); !e.empty()) {
    reply.error = e;
    return reply;
  }
  return c.ReadReply(deadline);
}

}  // namespace tailor::soak
