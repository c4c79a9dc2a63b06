// Collectives (train/communicator.h), the launcher (train/launch.h) and sharded evaluation
// (train/eval_shard.h). The same suite runs over TCP between threads, over TCP between processes
// spawned by launch(), and over MPI: the hidden [mpi] cases run under `mpirun -np 2` (tests/CMakeLists.txt).
#include <unistd.h>

#include <atomic>
#include <set>
#include <chrono>
#include <cstdlib>
#include <thread>

#include <netinet/in.h>
#include <sys/socket.h>

#include "free_port.h"
#include "harness.h"
#include "kernels/cast.h"
#include "train/args.h"
#include "train/communicator.h"
#include "train/eval_shard.h"
#include "train/grad_reducer.h"
#include "train/launch.h"
#include "train/step.h"

using namespace br;

namespace {

using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point t) {
  return std::chrono::duration<double>(Clock::now() - t).count();
}

using test::free_port;

// Collects failures instead of asserting, so it can run on threads and on every rank.
struct Failures {
  std::string text;
  void check(bool ok, const std::string& what) {
    if (!ok) text += what + "\n";
  }
};

// Rank r's value at index i; integers small enough that every dtype (bf16 included) sums exactly.
double value(DType d, int r, int64_t i) {
  if (d == DType::i64) return double((int64_t(1) << 40) + i * 3 + r * 1000003);
  if (d == DType::i32) return double(i * 3 + r * 1000);
  return double((i * 7 + r * 13) % 101 - 50) * (d == DType::bf16 ? 1.0 : 0.25);
}

Tensor filled(DType d, int r, int64_t n) {
  std::vector<double> v(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) v[size_t(i)] = value(d, r, i);
  Tensor t = Tensor::from_host(v, {n});
  if (d == DType::f64) return t;
  Tensor out = Tensor::empty({n}, d);
  if (d == DType::i64) {
    int64_t* p = out.data<int64_t>();
    for (int64_t i = 0; i < n; ++i) p[i] = int64_t(v[size_t(i)]);
  } else if (d == DType::i32) {
    int32_t* p = out.data<int32_t>();
    for (int64_t i = 0; i < n; ++i) p[i] = int32_t(v[size_t(i)]);
  } else {
    cast(out, t);
  }
  return out;
}

std::vector<double> as_doubles(const Tensor& t) {
  if (t.dtype() == DType::i64) {
    std::vector<int64_t> v = t.to_vector<int64_t>();
    return std::vector<double>(v.begin(), v.end());
  }
  if (t.dtype() == DType::i32) {
    std::vector<int32_t> v = t.to_vector<int32_t>();
    return std::vector<double>(v.begin(), v.end());
  }
  return test::to_doubles(t);
}

bool same_bytes(const Tensor& a, const Tensor& b) {
  std::vector<uint8_t> x(a.nbytes()), y(b.nbytes());
  a.copy_to_host(x.data(), x.size());
  b.copy_to_host(y.data(), y.size());
  return x == y;
}

// Every collective on this rank; the same calls in the same order on every rank, which is why
// it is one long function: every rank must walk the same straight line of calls.
std::string collective_suite(Communicator& c) {
  Failures f;
  const int W = c.world_size(), r = c.rank();
  for (DType d : {DType::f32, DType::f64, DType::i32, DType::i64, DType::bf16}) {
    for (int64_t n : {int64_t(1), int64_t(7), int64_t(1000003)}) {
      Tensor t = filled(d, r, n);
      c.all_reduce_sum(t);
      std::vector<double> got = as_doubles(t);
      int64_t bad = -1;
      for (int64_t i = 0; i < n && bad < 0; ++i) {
        double want = 0;
        for (int q = 0; q < W; ++q) want += value(d, q, i);
        if (got[size_t(i)] != want) bad = i;
      }
      f.check(bad < 0, fmt::format("all_reduce_sum {} n={}: wrong at {}", dtype_name(d), n, bad));
    }
  }
  // Bucketing (small buckets, an oversized tensor, dtype changes) equals tensor-by-tensor.
  std::vector<Tensor> ts, ref;
  const int64_t sizes[] = {7, 33, 1000, 1, 127, 5000, 3, 2};
  const DType types[] = {DType::f32, DType::f32, DType::f32, DType::f64,
                         DType::f64, DType::f32, DType::i64, DType::f32};
  for (int k = 0; k < 8; ++k) {
    ts.push_back(filled(types[k], r + k, sizes[k]));
    ref.push_back(ts.back().clone());
  }
  c.all_reduce_sum(ts, 4096);
  for (const Tensor& t : ref) c.all_reduce_sum(t);
  for (int k = 0; k < 8; ++k)
    f.check(same_bytes(ts[size_t(k)], ref[size_t(k)]), fmt::format("bucketed tensor {} differs", k));
  // Averaging.
  Tensor g = filled(DType::f64, r, 33);
  c.average_gradients({g}, 64);
  std::vector<double> gv = g.to_vector<double>();
  for (int64_t i = 0; i < 33; ++i) {
    double want = 0;
    for (int q = 0; q < W; ++q) want += value(DType::f64, q, i);
    f.check(gv[size_t(i)] == want / W, fmt::format("average_gradients at {}", i));
  }
  // GradientReducer: buckets of whole groups, started as groups are announced, equal the averaged
  // gradients bit for bit, step after step; a group out of order is refused.
  for (DType d : {DType::f32, DType::f64}) {
    const std::vector<int64_t> offsets = {0, 5, 5, 300, 1301, 1302, 4000};
    Tensor flat = filled(d, r, offsets.back());
    Tensor expect = flat.clone();
    c.average_gradients({expect});
    for (size_t cap : {size_t(1), size_t(1200 * dtype_size(d)), size_t(1) << 30}) {
      Tensor work = flat.clone();
      GradientReducer red(c, work, offsets, cap);
      const auto& bk = red.buckets();
      bool tiles = !bk.empty() && bk.front().first == 0 && bk.back().second == offsets.back();
      for (size_t k = 1; k < bk.size(); ++k) tiles &= bk[k].first == bk[k - 1].second;
      f.check(tiles, fmt::format("reducer buckets tile the buffer (cap {})", cap));
      for (int step = 0; step < 2; ++step) {
        work.copy_from(flat);
        for (int g = 0; g + 1 < int(offsets.size()); ++g) red.group_ready(g);
        red.finish();
        f.check(same_bytes(work, expect),
                fmt::format("reducer {} cap {} step {} differs from average_gradients",
                            dtype_name(d), cap, step));
        f.check(red.buckets_started_early() == bk.size(),
                fmt::format("reducer cap {}: {} of {} buckets started during backward", cap,
                            red.buckets_started_early(), bk.size()));
      }
      // cap 1: one bucket per group, the empty group joining the next.
      if (cap == 1) f.check(bk.size() == offsets.size() - 2, "cap 1: one bucket per non-empty group");
      if (cap == size_t(1) << 30) f.check(bk.size() == 1, "a large cap: one bucket");
      // finish() alone (no announcements, as with a backward that has no hook) is the same.
      work.copy_from(flat);
      red.finish();
      f.check(same_bytes(work, expect), "reducer finish() without announcements");
      bool threw = false;
      try {
        red.group_ready(1);
      } catch (const Error& e) {
        threw = std::string(e.what()).find("expected group 0") != std::string::npos;
      }
      f.check(threw, "reducer refuses a group out of order");
    }
  }
  // Broadcast from the last rank.
  Tensor b = filled(DType::f32, r, 1001);
  c.broadcast(b, W - 1);
  f.check(same_bytes(b, filled(DType::f32, W - 1, 1001)), "broadcast from the last rank");
  // Gathers in rank order, lengths differing by rank.
  std::vector<double> mine;
  for (int k = 0; k <= r; ++k) mine.push_back(r * 10 + k);
  std::vector<double> all = c.all_gather(mine), want;
  for (int q = 0; q < W; ++q)
    for (int k = 0; k <= q; ++k) want.push_back(q * 10 + k);
  f.check(all == want, "all_gather order");
  std::vector<std::string> bytes = c.all_gather_bytes(std::string(size_t(r) * 3, char('a' + r)));
  for (int q = 0; q < W; ++q)
    f.check(bytes[size_t(q)] == std::string(size_t(q) * 3, char('a' + q)), "all_gather_bytes");
  f.check(c.all_reduce_sum(double(r) + 0.5) == W * (W - 1) / 2.0 + 0.5 * W, "all_reduce_sum(double)");
  // Consistency: equal passes; a difference throws on every rank, naming the rank and its value.
  try {
    c.check_consistent("config", "hidden=768 world=" + std::to_string(W));
  } catch (const Error& e) {
    f.check(false, std::string("check_consistent threw on equal values: ") + e.what());
  }
  if (W > 1) {
    std::string msg;
    try {
      c.check_consistent("model config", r == 1 ? "hidden=512" : "hidden=768");
    } catch (const Error& e) {
      msg = e.what();
    }
    f.check(msg.find("check_consistent(model config)") != std::string::npos &&
                msg.find("rank 1 has 'hidden=512'") != std::string::npos &&
                msg.find("'hidden=768'") != std::string::npos,
            "check_consistent mismatch message: '" + msg + "'");
  }
  // Sharded evaluation restores dataset order: output of example i is (i, 2i).
  const int64_t n = 23, batch = 4;
  std::vector<double> local;
  for (int64_t i : shard_eval_indices(n, batch, W, r)) {
    local.push_back(double(i));
    local.push_back(double(2 * i));
  }
  std::vector<double> merged = gather_eval_outputs(c, local, n, batch, 2), expect;
  for (int64_t i = 0; i < n; ++i) {
    expect.push_back(double(i));
    expect.push_back(double(2 * i));
  }
  f.check(merged == expect, "gather_eval_outputs order");
  c.barrier();
  return f.text;
}

// Runs fn(rank) on `world` threads, each with its own TCP communicator.
std::vector<std::string> on_tcp_threads(int world, double timeout_s,
                                        const std::function<std::string(Communicator&)>& fn,
                                        std::vector<TcpOptions> opts = {}) {
  const int port = free_port();
  std::vector<std::string> out(static_cast<size_t>(world));
  std::vector<std::thread> threads;
  for (int r = 0; r < world; ++r) {
    TcpOptions o;
    if (!opts.empty()) o = opts[size_t(r)];
    o.master_port = port;
    o.rank = r;
    if (opts.empty()) o.world_size = world;
    o.local_rank = r;
    o.local_world_size = world;
    o.timeout_s = timeout_s;
    threads.emplace_back([&out, o, r, &fn] {
      try {
        auto c = make_tcp_communicator(o, false);
        out[size_t(r)] = fn(*c);
      } catch (const std::exception& e) {
        out[size_t(r)] = std::string("error: ") + e.what();
      }
    });
  }
  for (auto& t : threads) t.join();
  return out;
}

// Runs this test binary's hidden case `spec` as `world` processes through launch().
int launch_self(int world, const std::string& spec) {
  LaunchOptions o;
  o.nproc_per_node = world;
  o.master_port = free_port();
  o.command = {spec};
  return launch(o);
}

int env_rank() { return std::atoi(std::getenv("RANK") ? std::getenv("RANK") : "0"); }

}  // namespace

TEST_CASE("communicator: single process is the identity", "[communicator]") {
  auto c = make_single_communicator();
  REQUIRE(c->world_size() == 1);
  REQUIRE(c->backend() == "single");
  REQUIRE(collective_suite(*c).empty());
}

TEST_CASE("communicator: TCP collectives between 3 threads", "[communicator]") {
  for (const std::string& s : on_tcp_threads(3, 20, collective_suite)) {
    INFO(s);
    CHECK(s.empty());
  }
}

TEST_CASE("communicator: TCP rendezvous rejects a rank with another WORLD_SIZE", "[communicator]") {
  std::vector<TcpOptions> opts(2);
  opts[0].world_size = 2;
  opts[1].world_size = 3;
  auto t0 = Clock::now();
  std::vector<std::string> out = on_tcp_threads(2, 5, [](Communicator&) { return std::string(); }, opts);
  INFO(out[0] << " | " << out[1]);
  CHECK(out[0].find("rank 1 has WORLD_SIZE=3, rank 0 has WORLD_SIZE=2") != std::string::npos);
  CHECK(out[1].rfind("error: ", 0) == 0);
  CHECK(seconds_since(t0) < 4.5);
}

TEST_CASE("communicator: TCP rank that never joins times out with a clear error", "[communicator]") {
  auto t0 = Clock::now();
  std::vector<TcpOptions> opts(2);
  opts[0].world_size = opts[1].world_size = 3;  // rank 2 never starts
  std::vector<std::string> out =
      on_tcp_threads(2, 1.5, [](Communicator&) { return std::string(); }, opts);
  double dt = seconds_since(t0);
  INFO(out[0]);
  CHECK(out[0].find("ranks 2 never joined") != std::string::npos);
  CHECK(dt >= 1.4);
  CHECK(dt < 6);
}

TEST_CASE("communicator: BERTRAZOR_DIST_TIMEOUT is validated", "[communicator]") {
  ::setenv("BERTRAZOR_DIST_TIMEOUT", "soon", 1);
  CHECK_THROWS_WITH(dist_timeout_seconds(), Catch::Contains("BERTRAZOR_DIST_TIMEOUT='soon'"));
  ::setenv("BERTRAZOR_DIST_TIMEOUT", "2.5", 1);
  CHECK(dist_timeout_seconds() == 2.5);
  ::unsetenv("BERTRAZOR_DIST_TIMEOUT");
  CHECK(dist_timeout_seconds() == 300.0);
}

TEST_CASE("communicator: bad inputs name the op and the tensor", "[communicator]") {
  auto c = make_single_communicator();
  CHECK_THROWS_WITH(c->all_reduce_sum(Tensor::zeros({3}, DType::u8)),
                    Catch::Contains("all_reduce_sum: cannot sum u8[3]@cpu"));
  CHECK_THROWS_WITH(c->broadcast(Tensor::zeros({3}, DType::f32), 1),
                    Catch::Contains("broadcast: root 1 outside world of size 1"));
  CHECK_THROWS_WITH(c->average_gradients({Tensor::zeros({2}, DType::i32)}),
                    Catch::Contains("average_gradients: gradient i32[2]@cpu is not floating point"));
}

TEST_CASE("eval_shard: HF ShardSampler indices and merge", "[communicator]") {
  // n=10, batch 3, 2 ranks: padded to 12 = 0..9,0,1; blocks of 6.
  CHECK(shard_eval_indices(10, 3, 2, 0) == std::vector<int64_t>{0, 1, 2, 6, 7, 8});
  CHECK(shard_eval_indices(10, 3, 2, 1) == std::vector<int64_t>{3, 4, 5, 9, 0, 1});
  CHECK(shard_eval_indices(2, 4, 3, 2) == std::vector<int64_t>{0, 1, 0, 1});
  CHECK(shard_eval_indices(5, 2, 1, 0) == std::vector<int64_t>{0, 1, 2, 3, 4, 0});
  for (int64_t W : {1, 2, 3, 4})
    for (int64_t n : {1, 7, 33}) {
      std::vector<std::vector<double>> per(static_cast<size_t>(W));
      for (int64_t r = 0; r < W; ++r)
        for (int64_t i : shard_eval_indices(n, 5, W, r)) per[size_t(r)].push_back(double(i));
      std::vector<double> m = merge_eval_outputs(per, n, 5, 1);
      REQUIRE(int64_t(m.size()) == n);
      for (int64_t i = 0; i < n; ++i) CHECK(m[size_t(i)] == double(i));
    }
  CHECK_THROWS_WITH(shard_eval_indices(10, 3, 2, 2), Catch::Contains("shard_eval_indices"));
  // The order a rank runs its shard in: longest first, ties in shard order.
  CHECK(longest_first({}).empty());
  CHECK(longest_first({5}) == std::vector<size_t>{0});
  CHECK(longest_first({3, 9, 3, 7, 9, 1}) == std::vector<size_t>{1, 4, 3, 0, 2, 5});
  CHECK(longest_first({4, 4, 4}) == std::vector<size_t>{0, 1, 2});
  CHECK_THROWS_WITH(merge_eval_outputs({{1.0}}, 10, 3, 1), Catch::Contains("rank 0 has 1 values"));
}

TEST_CASE("predict: batches of similar lengths, predictions in dataset order", "[communicator]") {
  // Examples of lengths 3..9 in a scrambled order: batched longest first, every example's
  // prediction and loss equal those of a batch of one (which has no padding at all).
  BertConfig c;
  c.vocab_size = 30;
  c.hidden_size = 8;
  c.num_hidden_layers = 2;
  c.num_attention_heads = 2;
  c.intermediate_size = 12;
  c.max_position_embeddings = 16;
  c.initializer_range = 0.5;
  c.set_num_labels(3);
  BertForSequenceClassification model(c, Device::cpu, DType::f64);
  model.init_weights(11);
  Dataset ds;
  ds.name = "validation";
  const int lengths[] = {4, 9, 3, 9, 6, 5, 8, 3, 7, 4, 5};
  for (int i = 0; i < 11; ++i) {
    Example e;
    e.text_a = "x";
    e.label = i % 3;
    e.idx = i;
    Encoding enc;
    for (int t = 0; t < lengths[i]; ++t) {
      enc.input_ids.push_back(int32_t(2 + (7 * i + 3 * t) % 27));
      enc.token_type_ids.push_back(t > lengths[i] / 2 ? 1 : 0);
      enc.attention_mask.push_back(1);
    }
    ds.examples.push_back(e);
    ds.encodings.push_back(enc);
  }
  auto comm = make_single_communicator();
  EvalOptions one;
  one.batch_size = 1;
  EvalOptions four = one;
  four.batch_size = 4;
  const Predictions a = predict(model, ds, one, *comm), b = predict(model, ds, four, *comm);
  CHECK(a.preds == b.preds);
  CHECK(a.labels == b.labels);
  CHECK(a.labels == std::vector<double>{0, 1, 2, 0, 1, 2, 0, 1, 2, 0, 1});
  CHECK(std::abs(a.loss - b.loss) <= 1e-12 * std::abs(a.loss));
  CHECK(std::isfinite(a.loss));
  // the three classes all occur, so a wrong order would show
  CHECK(std::set<double>(a.preds.begin(), a.preds.end()).size() >= 2);
}

TEST_CASE("launch: options parse like torchrun", "[communicator]") {
  auto parse_launch_args = [](const std::vector<std::string>& argv) {
    return parse_command_args(Command::launch, argv).launch;
  };
  LaunchOptions o = parse_launch_args({"--nproc-per-node=4", "--nnodes", "2", "--node_rank=1",
                                       "--master_addr", "10.0.0.1", "--master-port", "1234",
                                       "train", "--seed", "3"});
  CHECK(o.nproc_per_node == 4);
  CHECK(o.nnodes == 2);
  CHECK(o.node_rank == 1);
  CHECK(o.master_addr == "10.0.0.1");
  CHECK(o.master_port == 1234);
  CHECK(o.command == std::vector<std::string>{"train", "--seed", "3"});
  CHECK(parse_launch_args({"--standalone", "train", "--help"}).command ==
        std::vector<std::string>{"train", "--help"});  // the command's own --help
  CHECK(parse_command_args(Command::launch, {"--nnodes", "2", "--help"}).help);
  CHECK_THROWS_WITH(parse_launch_args({"--nproc_per_node", "2"}), Catch::Contains("no command"));
  CHECK_THROWS_WITH(parse_launch_args({"--nnodes", "2", "train"}), Catch::Contains("--master_addr"));
  CHECK_THROWS_WITH(parse_launch_args({"--nproc_per_node", "x", "train"}),
                    Catch::Contains("--nproc_per_node expects an integer"));
  CHECK_THROWS_WITH(parse_launch_args({"--master_port", "70000", "train"}),
                    Catch::Contains("--master_port expects an integer in [1, 65535]"));
  CHECK_THROWS_WITH(parse_launch_args({"--bogus", "1", "train"}),
                    Catch::Contains("unrecognized argument --bogus"));
  CHECK_THROWS_WITH(parse_launch_args({"--seed", "1", "train"}),
                    Catch::Contains("--seed: bertrazor launch does not take it"));
}

// ---- processes spawned by launch(): TCP from the torchrun environment ----

TEST_CASE("launch: 2 processes run the collective suite over TCP", "[communicator]") {
  CHECK(launch_self(2, "[tcp_worker]") == 0);
}

TEST_CASE("tcp worker", "[.][tcp_worker]") {
  REQUIRE(std::getenv("LOCAL_WORLD_SIZE") != nullptr);
  REQUIRE(std::string(std::getenv("OMP_NUM_THREADS")) != "");
  auto c = make_communicator(Device::cpu);
  REQUIRE(c->backend() == "tcp");
  REQUIRE(c->world_size() == 2);
  REQUIRE(c->rank() == env_rank());
  std::string s = collective_suite(*c);
  INFO(s);
  REQUIRE(s.empty());
}

TEST_CASE("launch: a rank that exits makes the other fail at once", "[communicator]") {
  auto t0 = Clock::now();
  CHECK(launch_self(2, "[tcp_death]") == 0);
  CHECK(seconds_since(t0) < 20);
}

TEST_CASE("tcp death worker", "[.][tcp_death]") {
  auto c = make_communicator(Device::cpu);
  if (c->rank() == 1) std::_Exit(0);
  auto t0 = Clock::now();
  CHECK_THROWS_WITH(c->all_reduce_sum(Tensor::zeros({5}, DType::f32)),
                    Catch::Contains("rank 1 closed the connection"));
  CHECK(seconds_since(t0) < 10);
}

TEST_CASE("launch: a rank that never calls the collective times out", "[communicator]") {
  ::setenv("BERTRAZOR_DIST_TIMEOUT", "2", 1);
  auto t0 = Clock::now();
  int rc = launch_self(2, "[tcp_timeout]");
  ::unsetenv("BERTRAZOR_DIST_TIMEOUT");
  CHECK(rc == 0);
  CHECK(seconds_since(t0) < 15);
}

TEST_CASE("tcp timeout worker", "[.][tcp_timeout]") {
  auto c = make_communicator(Device::cpu);
  REQUIRE(c->timeout_seconds() == 2.0);
  if (c->rank() == 1) {
    std::this_thread::sleep_for(std::chrono::seconds(3));
    std::_Exit(0);
  }
  auto t0 = Clock::now();
  CHECK_THROWS_WITH(c->all_reduce_sum(Tensor::zeros({5}, DType::f32)),
                    Catch::Contains("rank 0 timed out after 2 s waiting for rank 1"));
  double dt = seconds_since(t0);
  CHECK(dt >= 1.9);
  CHECK(dt < 3);
}

TEST_CASE("launch: the first failing exit status is returned and the rest are stopped",
          "[communicator]") {
  auto t0 = Clock::now();
  CHECK(launch_self(2, "[exit_worker]") == 7);
  CHECK(seconds_since(t0) < 20);
}

TEST_CASE("exit worker", "[.][exit_worker]") {
  if (env_rank() == 1) std::_Exit(7);
  std::this_thread::sleep_for(std::chrono::seconds(60));
}

// ---- under mpirun -np 2 (tests/CMakeLists.txt) ----

TEST_CASE("mpi: collective suite", "[.][mpi]") {
  auto c = make_communicator(Device::cpu);
  REQUIRE(c->backend() == "mpi");
  REQUIRE(c->world_size() == 2);
  std::string s = collective_suite(*c);
  INFO("rank " << c->rank() << ": " << s);
  REQUIRE(s.empty());
}

// Rank 1 never reaches the all-reduce: rank 0 must throw within the timeout. The job is then
// aborted at exit (a request is left pending), which tears rank 1 down.
TEST_CASE("mpi: a rank that never joins times out", "[.][mpi_timeout]") {
  auto c = make_communicator(Device::cpu);
  REQUIRE(c->backend() == "mpi");
  if (c->rank() == 1) {
    std::this_thread::sleep_for(std::chrono::seconds(60));
    return;
  }
  auto t0 = Clock::now();
  std::string msg;
  try {
    c->all_reduce_sum(Tensor::zeros({1000}, DType::f32));
  } catch (const Error& e) {
    msg = e.what();
  }
  double dt = seconds_since(t0);
  INFO(msg);
  REQUIRE(msg.find("MPI all_reduce_sum: rank 0 of 2 timed out after") != std::string::npos);
  REQUIRE(dt < c->timeout_seconds() + 3);
  std::printf("BERTRAZOR_DIST_TIMEOUT_SEEN after %.1f s: %s\n", dt, msg.c_str());
  std::fflush(stdout);
}

// Rank 1 exits without finalizing: the job must end (non-zero) instead of hanging.
TEST_CASE("mpi: a rank that exits ends the job", "[.][mpi_death]") {
  auto c = make_communicator(Device::cpu);
  if (c->rank() == 1) std::_Exit(3);
  c->all_reduce_sum(Tensor::zeros({1000}, DType::f32));
}
