// TCP transport for `bertrazor launch` (torchrun-style environment, no MPI needed). Rank 0 listens on
// MASTER_PORT; every other rank connects once. Each collective is a star through rank 0: the ranks
// send a header naming the op, its sequence number and size (so mismatched calls are caught) and
// their payload; rank 0 combines in rank order and sends the result back. Every socket wait is a
// poll() with the deadline; a closed peer is reported at once.
#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <thread>

#include "train/communicator.h"

namespace br {

namespace {

using Clock = std::chrono::steady_clock;

constexpr uint32_t kMagic = 0x62724463;  // "brDc"

enum class Op : uint32_t { hello = 1, all_reduce, broadcast, all_gather, barrier };

const char* op_name(Op op) {
  switch (op) {
    case Op::hello: return "rendezvous";
    case Op::all_reduce: return "all_reduce_sum";
    case Op::broadcast: return "broadcast";
    case Op::all_gather: return "all_gather";
    case Op::barrier: return "barrier";
  }
  return "?";
}

struct Header {
  uint32_t magic;
  uint32_t op;
  uint64_t seq;
  uint64_t bytes;
  int32_t a;  // hello: rank; all_reduce: dtype; broadcast: root
  int32_t b;  // hello: world size
};

struct Fd {
  int fd = -1;
  Fd() = default;
  explicit Fd(int f) : fd(f) {}
  Fd(Fd&& o) noexcept : fd(o.fd) { o.fd = -1; }
  Fd& operator=(Fd&& o) noexcept {
    std::swap(fd, o.fd);
    return *this;
  }
  ~Fd() {
    if (fd >= 0) ::close(fd);
  }
};

template <typename T>
void add_into(void* acc, const void* x, int64_t n) {
  T* a = static_cast<T*>(acc);
  const T* b = static_cast<const T*>(x);
  for (int64_t i = 0; i < n; ++i) a[i] += b[i];
}

class TcpCommunicator final : public Communicator {
 public:
  TcpCommunicator(const TcpOptions& o, bool use_nccl)
      : Communicator(o.rank, o.world_size, o.local_rank, o.local_world_size, o.timeout_s),
        timeout_s_(o.timeout_s),
        peers_(size_t(o.world_size)) {
    if (world_size() > 1) {
      const auto until = deadline();
      if (rank() == 0) accept_all(o, until);
      else connect_master(o, until);
    }
    if (use_nccl) enable_nccl();
  }

 protected:
  std::string transport() const override { return "tcp"; }

  void host_all_reduce_sum(void* data, int64_t n, DType dtype) override {
    ++seq_;
    const size_t bytes = size_t(n) * dtype_size(dtype);
    Header h = header(Op::all_reduce, bytes, int32_t(dtype));
    if (rank() != 0) {
      send_msg(0, h, data, bytes);
      recv_msg(0, h, data);
      return;
    }
    std::vector<char> tmp(bytes);
    for (int r = 1; r < world_size(); ++r) {
      recv_msg(r, h, tmp.data());
      switch (dtype) {
        case DType::f32: add_into<float>(data, tmp.data(), n); break;
        case DType::f64: add_into<double>(data, tmp.data(), n); break;
        case DType::i32: add_into<int32_t>(data, tmp.data(), n); break;
        case DType::i64: add_into<int64_t>(data, tmp.data(), n); break;
        default: fail("tcp all_reduce_sum: cannot sum {}", dtype_name(dtype));
      }
    }
    for (int r = 1; r < world_size(); ++r) send_msg(r, h, data, bytes);
  }

  void host_broadcast(void* data, size_t bytes, int root) override {
    ++seq_;
    Header h = header(Op::broadcast, bytes, root);
    if (rank() == 0) {
      if (root != 0) recv_msg(root, h, data);
      for (int r = 1; r < world_size(); ++r)
        if (r != root) send_msg(r, h, data, bytes);
    } else if (rank() == root) {
      send_msg(0, h, data, bytes);
    } else {
      recv_msg(0, h, data);
    }
  }

  void host_all_gather(const void* send, size_t bytes, void* recv) override {
    ++seq_;
    const size_t total = bytes * size_t(world_size());
    if (rank() != 0) {
      send_msg(0, header(Op::all_gather, bytes, 0), send, bytes);
      recv_msg(0, header(Op::all_gather, total, 0), recv);
      return;
    }
    std::memcpy(recv, send, bytes);
    for (int r = 1; r < world_size(); ++r)
      recv_msg(r, header(Op::all_gather, bytes, 0), static_cast<char*>(recv) + bytes * size_t(r));
    for (int r = 1; r < world_size(); ++r)
      send_msg(r, header(Op::all_gather, total, 0), recv, total);
  }

  void host_barrier() override {
    ++seq_;
    Header h = header(Op::barrier, 0, 0);
    if (rank() != 0) {
      send_msg(0, h, nullptr, 0);
      recv_msg(0, h, nullptr);
      return;
    }
    for (int r = 1; r < world_size(); ++r) recv_msg(r, h, nullptr);
    for (int r = 1; r < world_size(); ++r) send_msg(r, h, nullptr, 0);
  }

 private:
  Header header(Op op, uint64_t bytes, int32_t a) const {
    return Header{kMagic, uint32_t(op), seq_, bytes, a, 0};
  }

  Clock::time_point deadline() const {
    return Clock::now() +
           std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(timeout_s_));
  }

  // Waits for `events` on the peer's socket until the deadline.
  void wait_fd(int peer, short events, Clock::time_point until, const char* what) {
    for (;;) {
      auto left = std::chrono::duration_cast<std::chrono::milliseconds>(until - Clock::now());
      if (left.count() <= 0)
        fail("tcp {}: rank {} timed out after {} s waiting for rank {} (did it exit or never "
             "reach this call? BERTRAZOR_DIST_TIMEOUT sets the limit)",
             what, rank(), timeout_s_, peer);
      pollfd p{peers_[size_t(peer)].fd, events, 0};
      int rc = ::poll(&p, 1, int(std::min<int64_t>(left.count(), 1000)));
      if (rc < 0 && errno == EINTR) continue;
      BR_CHECK(rc >= 0, "tcp {}: poll on rank {}'s socket failed: {}", what, peer,
               std::strerror(errno));
      if (rc > 0) return;
    }
  }

  void send_bytes(int peer, const void* buf, size_t n, Clock::time_point until, const char* what) {
    const char* p = static_cast<const char*>(buf);
    while (n > 0) {
      wait_fd(peer, POLLOUT, until, what);
      ssize_t k = ::send(peers_[size_t(peer)].fd, p, n, MSG_NOSIGNAL);
      if (k < 0 && (errno == EINTR || errno == EAGAIN)) continue;
      BR_CHECK(k > 0, "tcp {}: rank {} could not send to rank {}: {} (did it exit?)", what, rank(),
               peer, std::strerror(errno));
      p += k;
      n -= size_t(k);
    }
  }

  void recv_bytes(int peer, void* buf, size_t n, Clock::time_point until, const char* what) {
    char* p = static_cast<char*>(buf);
    while (n > 0) {
      wait_fd(peer, POLLIN, until, what);
      ssize_t k = ::recv(peers_[size_t(peer)].fd, p, n, 0);
      if (k < 0 && (errno == EINTR || errno == EAGAIN)) continue;
      BR_CHECK(k != 0, "tcp {}: rank {} closed the connection to rank {} (did it exit or fail?)",
               what, peer, rank());
      BR_CHECK(k > 0, "tcp {}: rank {} could not receive from rank {}: {}", what, rank(), peer,
               std::strerror(errno));
      p += k;
      n -= size_t(k);
    }
  }

  void send_msg(int peer, const Header& h, const void* data, size_t bytes) {
    const char* what = op_name(Op(h.op));
    auto until = deadline();
    send_bytes(peer, &h, sizeof h, until, what);
    if (bytes) send_bytes(peer, data, bytes, until, what);
  }

  // Receives a header that must match `expect` (op, sequence number, size, argument) and its payload.
  void recv_msg(int peer, const Header& expect, void* data) {
    const char* what = op_name(Op(expect.op));
    auto until = deadline();
    Header h{};
    recv_bytes(peer, &h, sizeof h, until, what);
    BR_CHECK(h.magic == kMagic, "tcp {}: rank {} sent a malformed message to rank {}", what, peer,
             rank());
    BR_CHECK(h.op == expect.op && h.seq == expect.seq && h.bytes == expect.bytes && h.a == expect.a,
             "tcp: ranks called different collectives: rank {} is in {} #{} ({} bytes, arg {}), "
             "rank {} is in {} #{} ({} bytes, arg {})",
             rank(), what, expect.seq, expect.bytes, expect.a, peer, op_name(Op(h.op)), h.seq,
             h.bytes, h.a);
    if (h.bytes) recv_bytes(peer, data, h.bytes, until, what);
  }

  static void set_nodelay(int fd) {
    int one = 1;
    BR_CHECK(::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one) == 0,
             "tcp: setsockopt(TCP_NODELAY) failed: {}", std::strerror(errno));
  }

  void accept_all(const TcpOptions& o, Clock::time_point until) {
    Fd listener(::socket(AF_INET6, SOCK_STREAM, 0));
    bool v6 = listener.fd >= 0;
    if (!v6) listener = Fd(::socket(AF_INET, SOCK_STREAM, 0));
    BR_CHECK(listener.fd >= 0, "tcp rendezvous: socket() failed: {}", std::strerror(errno));
    int one = 1, zero = 0;
    BR_CHECK(::setsockopt(listener.fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) == 0,
             "tcp rendezvous: setsockopt(SO_REUSEADDR) failed: {}", std::strerror(errno));
    int rc;
    if (v6) {
      ::setsockopt(listener.fd, IPPROTO_IPV6, IPV6_V6ONLY, &zero, sizeof zero);
      sockaddr_in6 a{};
      a.sin6_family = AF_INET6;
      a.sin6_addr = in6addr_any;
      a.sin6_port = htons(uint16_t(o.master_port));
      rc = ::bind(listener.fd, reinterpret_cast<sockaddr*>(&a), sizeof a);
    } else {
      sockaddr_in a{};
      a.sin_family = AF_INET;
      a.sin_addr.s_addr = htonl(INADDR_ANY);
      a.sin_port = htons(uint16_t(o.master_port));
      rc = ::bind(listener.fd, reinterpret_cast<sockaddr*>(&a), sizeof a);
    }
    BR_CHECK(rc == 0, "tcp rendezvous: rank 0 cannot listen on port {}: {} (MASTER_PORT in use?)",
             o.master_port, std::strerror(errno));
    BR_CHECK(::listen(listener.fd, 128) == 0, "tcp rendezvous: listen() failed: {}",
             std::strerror(errno));
    int joined = 1;
    while (joined < world_size()) {
      auto left = std::chrono::duration_cast<std::chrono::milliseconds>(until - Clock::now());
      if (left.count() <= 0) {
        std::string missing;
        for (int r = 1; r < world_size(); ++r)
          if (peers_[size_t(r)].fd < 0) missing += fmt::format(" {}", r);
        fail("tcp rendezvous: rank 0 timed out after {} s on port {}; ranks{} never joined", timeout_s_,
             o.master_port, missing);
      }
      pollfd p{listener.fd, POLLIN, 0};
      rc = ::poll(&p, 1, int(std::min<int64_t>(left.count(), 1000)));
      if (rc < 0 && errno == EINTR) continue;
      BR_CHECK(rc >= 0, "tcp rendezvous: poll failed: {}", std::strerror(errno));
      if (rc == 0) continue;
      Fd conn(::accept(listener.fd, nullptr, nullptr));
      if (conn.fd < 0) continue;
      set_nodelay(conn.fd);
      Header h{};
      // A connection is read as a peer before its rank is known: park it in slot 0 meanwhile.
      std::swap(peers_[0], conn);
      try {
        recv_bytes(0, &h, sizeof h, until, "rendezvous");
      } catch (const Error&) {
        std::swap(peers_[0], conn);
        continue;
      }
      std::swap(peers_[0], conn);
      BR_CHECK(h.magic == kMagic && h.op == uint32_t(Op::hello),
               "tcp rendezvous: a connection to port {} is not a bertrazor rank", o.master_port);
      BR_CHECK(h.b == world_size(),
               "tcp rendezvous: rank {} has WORLD_SIZE={}, rank 0 has WORLD_SIZE={}", h.a, h.b,
               world_size());
      BR_CHECK(h.a >= 1 && h.a < world_size() && peers_[size_t(h.a)].fd < 0,
               "tcp rendezvous: a second process claims RANK={} (world size {})", h.a,
               world_size());
      peers_[size_t(h.a)] = std::move(conn);
      ++joined;
    }
    Header ack{kMagic, uint32_t(Op::hello), 0, 0, 0, world_size()};
    for (int r = 1; r < world_size(); ++r) send_bytes(r, &ack, sizeof ack, until, "rendezvous");
  }

  void connect_master(const TcpOptions& o, Clock::time_point until) {
    addrinfo hints{};
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    addrinfo* res = nullptr;
    std::string port = std::to_string(o.master_port);
    int gai = ::getaddrinfo(o.master_addr.c_str(), port.c_str(), &hints, &res);
    BR_CHECK(gai == 0, "tcp rendezvous: cannot resolve MASTER_ADDR '{}': {}", o.master_addr,
             gai_strerror(gai));
    std::string last_error = "no address";
    for (;;) {
      for (addrinfo* a = res; a; a = a->ai_next) {
        Fd s(::socket(a->ai_family, a->ai_socktype, a->ai_protocol));
        if (s.fd < 0) continue;
        if (::connect(s.fd, a->ai_addr, a->ai_addrlen) == 0) {
          peers_[0] = std::move(s);
          break;
        }
        last_error = std::strerror(errno);
      }
      if (peers_[0].fd >= 0) break;
      if (Clock::now() > until) {
        ::freeaddrinfo(res);
        fail("tcp rendezvous: rank {} could not reach rank 0 at {}:{} within {} s: {}", rank(),
             o.master_addr, o.master_port, timeout_s_, last_error);
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    ::freeaddrinfo(res);
    set_nodelay(peers_[0].fd);
    Header hello{kMagic, uint32_t(Op::hello), 0, 0, rank(), world_size()};
    send_bytes(0, &hello, sizeof hello, until, "rendezvous");
    Header ack{};
    recv_bytes(0, &ack, sizeof ack, until, "rendezvous");
    BR_CHECK(ack.magic == kMagic && ack.op == uint32_t(Op::hello) && ack.b == world_size(),
             "tcp rendezvous: rank 0 at {}:{} answered with world size {}, this rank has {}",
             o.master_addr, o.master_port, ack.b, world_size());
  }

  double timeout_s_;
  std::vector<Fd> peers_;  // rank 0: one socket per other rank; others: peers_[0] is rank 0
  uint64_t seq_ = 0;  // collectives so far; every rank counts the same calls
};

}  // namespace

std::unique_ptr<Communicator> make_tcp_communicator(const TcpOptions& opts, bool use_nccl) {
  BR_CHECK(opts.world_size >= 1 && opts.rank >= 0 && opts.rank < opts.world_size,
           "make_tcp_communicator: RANK={} outside WORLD_SIZE={}", opts.rank, opts.world_size);
  BR_CHECK(opts.timeout_s > 0, "make_tcp_communicator: timeout must be positive, got {}",
           opts.timeout_s);
  return std::make_unique<TcpCommunicator>(opts, use_nccl);
}

}  // namespace br
