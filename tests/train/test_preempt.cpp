// Nothing lost: a stop signal (SIGTERM, SIGINT, SIGUSR1) at a random step, then a resume, ends
// bit-identical to a run never stopped (the real bertrazor binary, 1 rank and 2 ranks under
// `bertrazor launch`); a second signal exits at once and the previous checkpoint stays intact;
// a save that fails part-way (an injected failure at every 10% of a checkpoint's bytes, a real
// full tmpfs, a read-only folder) names the file, keeps the earlier checkpoints and leaves no tmp
// folder, and training stops or goes on as --save_on_error says.
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/inotify.h>
#include <sys/mount.h>
#include <sys/wait.h>
#include <unistd.h>

#include <netinet/in.h>
#include <sys/socket.h>

#include <catch2/catch.hpp>

#include "free_port.h"
#include <chrono>
#include <cstdio>
#include <fstream>
#include <random>
#include <regex>
#include <thread>

#include "harness.h"
#include "trainer_fixtures.h"
#include "core/text.h"
#include "models/bert_io.h"
#include "models/safetensors.h"
#include "train/args.h"
#include "train/checkpoint_io.h"
#include "train/optimizer.h"
#include "train/preempt.h"
#include "train/trainer.h"

using namespace br;
using Catch::Contains;
using test::make_data;
using test::TempDir;
using test::weights;
namespace fs = std::filesystem;

namespace {

// The model of every run here: H 32, F 64 (test::make_model).
fs::path make_model(const fs::path& root, int hidden = 32) { return test::make_model(root, hidden, 2 * hidden); }

// Flags of every run here: 40 examples, batch 8 (4 per rank on 2 ranks), a loss line per step.
std::vector<std::string> train_args(const fs::path& root, const fs::path& out, int64_t max_steps,
                                    int batch = 8, int save_steps = 7) {
  return {"train", "--model_name_or_path", (root / "model").string(), "--task_name", "rte",
          "--data_dir", (root / "RTE").string(), "--output_dir", out.string(), "--do_train",
          "--max_seq_length", "24", "--per_device_train_batch_size", std::to_string(batch),
          "--learning_rate", "1e-3", "--seed", "7", "--device", "cpu", "--disable_tqdm", "True",
          "--max_steps", std::to_string(max_steps), "--logging_steps", "1", "--save_steps", std::to_string(save_steps),
          "--weight_decay", "0.01", "--warmup_steps", "3", "--report_to", "none"};
}

// The per-step entries of trainer_state.json's history (loss, grad_norm, learning rate, epoch, step).
std::vector<std::string> loss_log(const fs::path& out) {
  nlohmann::json state = nlohmann::json::parse(read_file((out / "trainer_state.json").string()));
  std::vector<std::string> r;
  for (const auto& e : state.at("log_history"))
    if (e.contains("loss")) r.push_back(e.dump());
  return r;
}

// Folders named *.tmp-* in dir (what an interrupted or failed save could leave).
std::vector<std::string> tmp_folders(const fs::path& dir) {
  std::vector<std::string> r;
  for (const auto& e : fs::directory_iterator(dir))
    if (e.path().filename().string().find(".tmp-") != std::string::npos) r.push_back(e.path().string());
  return r;
}

// The real bertrazor binary as a child process, its stdout and stderr on one pipe.
struct Child {
  pid_t pid = -1;
  int fd = -1;
  std::string output;
  std::string pending;  // the part of the last line read so far

  explicit Child(const std::vector<std::string>& args) {
    int p[2];
    REQUIRE(::pipe(p) == 0);
    pid = ::fork();
    REQUIRE(pid >= 0);
    if (pid == 0) {
      ::dup2(p[1], 1);
      ::dup2(p[1], 2);
      ::close(p[0]);
      ::close(p[1]);
      std::vector<std::string> a = args;
      a.insert(a.begin(), BERTRAZOR_CLI);
      std::vector<char*> argv;
      for (std::string& s : a) argv.push_back(s.data());
      argv.push_back(nullptr);
      ::setenv("OMP_NUM_THREADS", "1", 1);
      ::execv(BERTRAZOR_CLI, argv.data());
      ::_exit(127);
    }
    ::close(p[1]);
    fd = p[0];
  }
  ~Child() {
    if (pid > 0) {
      ::kill(pid, SIGKILL);
      ::waitpid(pid, nullptr, 0);
    }
    if (fd >= 0) ::close(fd);
  }
  // The next complete output line, or nullopt at end of output.
  std::optional<std::string> line() {
    for (;;) {
      size_t nl = pending.find('\n');
      if (nl != std::string::npos) {
        std::string l = pending.substr(0, nl);
        pending.erase(0, nl + 1);
        output += l + "\n";
        return l;
      }
      char buf[4096];
      ssize_t n = ::read(fd, buf, sizeof buf);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) {
        output += pending;
        pending.clear();
        return std::nullopt;
      }
      pending.append(buf, size_t(n));
    }
  }
  // Reads the rest of the output, then the exit status (128 + signal when a signal ended it).
  int wait() {
    while (line()) {
    }
    int status = 0;
    REQUIRE(::waitpid(pid, &status, 0) == pid);
    pid = -1;
    if (WIFSIGNALED(status)) return 1000 + WTERMSIG(status);  // never what a clean exit gives
    return WEXITSTATUS(status);
  }
};

bool is_loss_line(const std::string& l) { return l.find("{'loss':") != std::string::npos; }

using test::free_port;

std::vector<std::string> launched(int nproc, std::vector<std::string> args) {
  std::vector<std::string> r = {"launch", "--nproc_per_node", std::to_string(nproc), "--master_port",
                                std::to_string(free_port())};
  r.insert(r.end(), args.begin(), args.end());
  return r;
}

// The pid of the launcher's child with RANK=rank (from /proc).
pid_t rank_pid(pid_t launcher, int rank) {
  for (int attempt = 0; attempt < 200; ++attempt) {
    std::ifstream kids(fmt::format("/proc/{}/task/{}/children", launcher, launcher));
    for (pid_t p; kids >> p;) {
      std::ifstream env(fmt::format("/proc/{}/environ", p), std::ios::binary);
      std::string e((std::istreambuf_iterator<char>(env)), std::istreambuf_iterator<char>());
      if (e.find(std::string("\0RANK=", 6) + std::to_string(rank) + '\0') != std::string::npos) return p;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  FAIL("no rank " << rank << " under launcher " << launcher);
  return -1;
}

// "checkpoint saved to <dir>" from the stop line; empty when there is none.
std::string stopped_checkpoint(const std::string& output) {
  std::smatch m;
  static const std::regex re("training stopped after step \\d+ of \\d+; checkpoint saved to (\\S+) ");
  return std::regex_search(output, m, re) ? m[1].str() : "";
}

// One trial: start `args`, after the k-th loss line `send(child pid)` the stop signal `sig`,
// expect exit status `want`, then resume with --resume_from_checkpoint True and compare with `ref`.
void stop_and_resume(const fs::path& out, const std::vector<std::string>& args,
                     const std::vector<std::string>& resume_args, int k, int sig,
                     const std::function<void(pid_t)>& send, int want, const fs::path& ref,
                     int64_t max_steps) {
  INFO("signal " << stop_signal_name(sig) << " after loss line " << k);
  std::string text;
  {
    Child c(args);
    int seen = 0;
    while (auto l = c.line())
      if (is_loss_line(*l) && ++seen == k) {
        send(c.pid);
        break;
      }
    const int status = c.wait();
    text = c.output;
    INFO(text);
    REQUIRE(status == want);
  }
  INFO(text);
  const std::string ckpt = stopped_checkpoint(text);
  REQUIRE(!ckpt.empty());
  const int64_t step = checkpoint_step(fs::path(ckpt)).value();
  CHECK(step >= k);
  REQUIRE(step < max_steps);  // the stop came before the end, so the resume has work to do
  CHECK(verify_checkpoint(ckpt).kind == CheckpointCheck::intact);
  CHECK(tmp_folders(out).empty());
  CHECK(!fs::exists(out / "model.safetensors"));  // a stopped run writes no final model
  Child r(resume_args);
  const int rstatus = r.wait();
  INFO(r.output);
  REQUIRE(rstatus == 0);
  CHECK_THAT(r.output, Contains("Loading model from " + ckpt));
  CHECK(loss_log(out) == loss_log(ref));
  CHECK(weights(out / "model.safetensors") == weights(ref / "model.safetensors"));
}

std::vector<std::string> with(std::vector<std::string> a, const std::vector<std::string>& extra) {
  a.insert(a.end(), extra.begin(), extra.end());
  return a;
}

}  // namespace

TEST_CASE("stop signals: recorded by the handler, the second exits at once", "[train][preempt]") {
  CHECK(stop_exit_status(SIGUSR1) == 0);
  CHECK(stop_exit_status(SIGTERM) == 128 + SIGTERM);
  CHECK(stop_exit_status(SIGINT) == 130);
  CHECK(std::string(stop_signal_name(SIGUSR1)) == "SIGUSR1");
  {
    StopSignals s;
    CHECK(StopSignals::pending() == 0);
    REQUIRE(::raise(SIGUSR1) == 0);  // recorded, not fatal
    CHECK(StopSignals::pending() == SIGUSR1);
    CHECK_THROWS_WITH(StopSignals(), Contains("already installed"));
  }
  {
    StopSignals s;  // a fresh one starts with no request
    CHECK(StopSignals::pending() == 0);
    StopSignals::request(SIGTERM);
    CHECK(StopSignals::pending() == SIGTERM);
  }
  // In a child: a first signal is recorded, a second ends the process with 128 + signal.
  pid_t pid = ::fork();
  REQUIRE(pid >= 0);
  if (pid == 0) {
    StopSignals s;
    ::raise(SIGTERM);
    if (StopSignals::pending() != SIGTERM) ::_exit(3);
    ::raise(SIGINT);
    ::_exit(4);  // not reached
  }
  int status = 0;
  REQUIRE(::waitpid(pid, &status, 0) == pid);
  REQUIRE(WIFEXITED(status));
  CHECK(WEXITSTATUS(status) == 128 + SIGINT);
}

TEST_CASE("stop signals: after a stop, the same request by its other path is ignored",
          "[train][preempt]") {
  // A rank whose stop came directly may get the launcher's forwarded copy after the training
  // loop has ended (or the reverse). The child plays the rank, this process its launcher.
  int ready[2], go[2];
  REQUIRE(::pipe(ready) == 0);
  REQUIRE(::pipe(go) == 0);
  pid_t pid = ::fork();
  REQUIRE(pid >= 0);
  if (pid == 0) {
    ::setenv("BERTRAZOR_LAUNCHER_PID", std::to_string(::getppid()).c_str(), 1);
    {
      StopSignals s;
      ::raise(SIGUSR1);  // the direct signal
      if (StopSignals::pending() != SIGUSR1) ::_exit(3);
    }  // the training loop is over
    char c = 'r';
    if (::write(ready[1], &c, 1) != 1) ::_exit(4);
    ssize_t n;
    while ((n = ::read(go[0], &c, 1)) < 0 && errno == EINTR) {
    }
    ::raise(SIGUSR1);  // a second direct one is a real second signal
    ::_exit(5);        // not reached
  }
  ::close(ready[1]);
  ::close(go[0]);
  char c = 0;
  REQUIRE(::read(ready[0], &c, 1) == 1);
  REQUIRE(::kill(pid, SIGUSR1) == 0);  // the launcher's copy, late
  REQUIRE(::write(go[1], &c, 1) == 1);
  int status = 0;
  REQUIRE(::waitpid(pid, &status, 0) == pid);
  ::close(ready[0]);
  ::close(go[1]);
  INFO("status " << status);
  REQUIRE(WIFEXITED(status));  // not ended by the late copy
  CHECK(WEXITSTATUS(status) == 128 + SIGUSR1);
}

TEST_CASE("a stop signal at a random step, then resume: bit-identical, 1 rank (real binary)",
          "[train][preempt][signal]") {
  TempDir t("preempt1");
  make_model(t.path);
  make_data(t.path);
  const int64_t max_steps = 36;
  {
    Child ref(train_args(t.path, t.path / "ref", max_steps));
    const int status = ref.wait();
    INFO(ref.output);
    REQUIRE(status == 0);
  }
  const uint64_t seed = test::fresh_seed();
  std::mt19937_64 rng(seed);
  INFO("seed " << seed << " (BERTRAZOR_TEST_SEED)");
  const int sigs[] = {SIGTERM, SIGINT, SIGUSR1};
  for (int trial = 0; trial < 3; ++trial) {
    const fs::path out = t.path / fmt::format("run{}", trial);
    const int k = 1 + int(rng() % 15);
    stop_and_resume(out, train_args(t.path, out, max_steps),
                    with(train_args(t.path, out, max_steps), {"--resume_from_checkpoint", "True"}), k,
                    sigs[trial], [&](pid_t p) { REQUIRE(::kill(p, sigs[trial]) == 0); },
                    stop_exit_status(sigs[trial]),
                    t.path / "ref", max_steps);
  }
}

TEST_CASE("a stop signal at a random step, then resume: bit-identical, 2 ranks (bertrazor launch)",
          "[train][preempt][signal][dist]") {
  TempDir t("preempt2");
  make_model(t.path);
  make_data(t.path);
  const int64_t max_steps = 30;
  auto args = [&](const fs::path& out) { return train_args(t.path, out, max_steps, 4); };
  {
    Child ref(launched(2, args(t.path / "ref")));
    const int status = ref.wait();
    INFO(ref.output);
    REQUIRE(status == 0);
  }
  const uint64_t seed = test::fresh_seed();
  std::mt19937_64 rng(seed);
  INFO("seed " << seed << " (BERTRAZOR_TEST_SEED)");
  // SIGTERM to the launcher (which passes it to both ranks); SIGUSR1 to rank 1 alone and SIGINT
  // to rank 0 alone: the ranks agree on the step either way. Then SIGUSR1 to every process, as
  // SLURM's --signal does: each rank gets it twice (directly and from the launcher), one request.
  struct Trial {
    int sig;
    int rank;  // -1: the launcher, -2: the launcher and every rank
  } trials[] = {{SIGTERM, -1}, {SIGUSR1, 1}, {SIGINT, 0}, {SIGUSR1, -2}};
  for (const Trial& tr : trials) {
    const fs::path out = t.path / fmt::format("run_{}_{}", stop_signal_name(tr.sig), tr.rank);
    const int k = 1 + int(rng() % 12);
    INFO("target " << (tr.rank == -1   ? std::string("the launcher")
                       : tr.rank == -2 ? std::string("every process")
                                       : "rank " + std::to_string(tr.rank)));
    auto send = [&](pid_t launcher) {
      std::vector<pid_t> to;
      if (tr.rank < 0) to.push_back(launcher);
      if (tr.rank == -2 || tr.rank == 0) to.push_back(rank_pid(launcher, 0));
      if (tr.rank == -2 || tr.rank == 1) to.push_back(rank_pid(launcher, 1));
      for (pid_t p : to) REQUIRE(::kill(p, tr.sig) == 0);
    };
    stop_and_resume(out, launched(2, args(out)),
                    launched(2, with(args(out), {"--resume_from_checkpoint", "True"})), k, tr.sig,
                    send, stop_exit_status(tr.sig), t.path / "ref", max_steps);
  }
}

TEST_CASE("a second signal while the checkpoint is written exits at once, the previous one stays intact",
          "[train][preempt][signal]") {
  TempDir t("preempt_twice");
  make_model(t.path, 512);  // ~50 MB of checkpoint: its save takes long enough to be caught
  make_data(t.path);
  const fs::path out = t.path / "out";
  // A first run leaves checkpoint-5. The second resumes from it with no regular save before its
  // end, so the only checkpoint it starts is the stop's: a regular save already under way when the
  // signal came (this process reads the output behind the child) would be reused by the stop.
  {
    Child first(train_args(t.path, out, 5, 8, 5));
    const int status = first.wait();
    INFO(first.output);
    REQUIRE(status == 0);
  }
  const std::vector<std::string> args =
      with(train_args(t.path, out, 40, 8, 1000), {"--resume_from_checkpoint", "True"});
  // Watch for the stop's save to begin (inotify sees its tmp folder created), then signal again.
  const int watch = ::inotify_init1(IN_CLOEXEC);
  REQUIRE(watch >= 0);
  REQUIRE(::inotify_add_watch(watch, out.c_str(), IN_CREATE | IN_ONLYDIR) >= 0);
  Child c(args);
  while (auto l = c.line())
    if (is_loss_line(*l)) break;
  REQUIRE(::kill(c.pid, SIGTERM) == 0);
  std::string tmp;
  alignas(inotify_event) char buf[4096];
  while (tmp.empty()) {
    pollfd pfd{watch, POLLIN, 0};
    REQUIRE(::poll(&pfd, 1, 60000) == 1);
    const ssize_t n = ::read(watch, buf, sizeof buf);
    REQUIRE(n > 0);
    for (ssize_t at = 0; at < n;) {
      const auto* e = reinterpret_cast<const inotify_event*>(buf + at);
      const std::string name = e->len ? e->name : "";
      if (name.rfind("checkpoint-", 0) == 0 && name.find(".tmp-") != std::string::npos &&
          name.find(".tmp-old-") == std::string::npos)
        tmp = (out / name).string();
      at += ssize_t(sizeof(inotify_event) + e->len);
    }
  }
  REQUIRE(::kill(c.pid, SIGINT) == 0);
  ::close(watch);
  REQUIRE(::kill(c.pid, SIGINT) == 0);
  const int status = c.wait();
  INFO(c.output);
  CHECK(status == 128 + SIGINT);
  CHECK(stopped_checkpoint(c.output).empty());  // it never got to say a checkpoint was saved
  const fs::path stopping = fs::path(tmp.substr(0, tmp.find(".tmp-")));
  CHECK(!fs::exists(stopping));  // the interrupted save was never renamed into place
  std::vector<std::string> done = sorted_checkpoints(out.string());
  REQUIRE(!done.empty());
  for (const std::string& d : done) CHECK(verify_checkpoint(d).kind == CheckpointCheck::intact);
  // The next run clears the interrupted save's tmp folder and resumes from the newest intact one.
  Child r(with(args, {"--max_steps", std::to_string(*checkpoint_step(fs::path(done.back())) + 1)}));
  const int rstatus = r.wait();
  INFO(r.output);
  CHECK(rstatus == 0);
  CHECK_THAT(r.output, Contains("Loading model from " + done.back()));
  CHECK(tmp_folders(out).empty());
}

namespace {

// A small model, its optimizer after one step, and a TrainerState: what save_checkpoint takes.
struct SaveFixture {
  TempDir t{"savefail"};
  fs::path model_dir = make_model(t.path);
  BertForSequenceClassification model = from_pretrained(model_dir.string(), Device::cpu, {}, 1);
  TrainingArgs args = parse_training_args(
      {"--model_name_or_path", model_dir.string(), "--output_dir", (t.path / "out").string(),
       "--task_name", "rte"},
      std::nullopt);
  Optimizer opt{model, adamw_config(args)};
  TrainerState state;

  SaveFixture() {
    model.grads().zero_();
    opt.step(1e-3);
    state.global_step = 1;
  }
  std::string save(int64_t step) {
    state.global_step = step;
    while (opt.num_steps() < step) opt.step(1e-3);
    return save_checkpoint(model, opt, state, args, {0, step}, model_dir);
  }
  // Every file of a checkpoint folder with its bytes.
  static std::map<std::string, std::string> files(const fs::path& dir) {
    std::map<std::string, std::string> r;
    for (const auto& e : fs::directory_iterator(dir)) r[e.path().filename().string()] = read_file(e.path().string());
    return r;
  }
  static int64_t bytes(const fs::path& dir) {
    int64_t n = 0;
    for (const auto& e : fs::directory_iterator(dir)) n += int64_t(fs::file_size(e.path()));
    return n;
  }
};

struct WriteLimit {
  explicit WriteLimit(int64_t bytes) { fail_checkpoint_writes_after(bytes); }
  ~WriteLimit() { fail_checkpoint_writes_after(std::nullopt); }
};

}  // namespace

TEST_CASE("a save that fails at every 10% of a checkpoint's bytes keeps the earlier ones and no tmp folder",
          "[train][preempt][save_error]") {
  SaveFixture f;
  const fs::path out = f.args.output_dir;
  const fs::path first = f.save(1);
  const auto first_files = SaveFixture::files(first);
  // The size of the checkpoint the failing saves attempt: save it once, measure, remove it.
  const int64_t total = SaveFixture::bytes(f.save(2));
  fs::remove_all(out / "checkpoint-2");
  INFO("checkpoint-2 holds " << total << " bytes");
  REQUIRE(total > 10000);
  for (int pct = 0; pct < 100; pct += 10) {
    const int64_t limit = total * pct / 100;
    INFO("failure after " << limit << " bytes (" << pct << "%)");
    {
      WriteLimit l(limit);
      CHECK_THROWS_WITH(f.save(2), Contains("checkpoint-2.tmp-") && Contains("No space left on device"));
    }
    CHECK(tmp_folders(out).empty());
    CHECK(!fs::exists(out / "checkpoint-2"));
    CHECK(sorted_checkpoints(out.string()) == std::vector<std::string>{first.string()});
    CHECK(verify_checkpoint(first).kind == CheckpointCheck::intact);
    CHECK(SaveFixture::files(first) == first_files);
  }
  {
    WriteLimit l(total - 1);  // one byte short: the manifest's last byte
    CHECK_THROWS_WITH(f.save(2), Contains("manifest.json") && Contains("No space left on device"));
  }
  {
    WriteLimit l(total);  // exactly enough: the count is the checkpoint's bytes, no more
    CHECK(f.save(2) == (out / "checkpoint-2").string());
  }
  CHECK(verify_checkpoint(out / "checkpoint-2").kind == CheckpointCheck::intact);
}

TEST_CASE("a real full file system and a read-only one: the save fails naming the file, nothing is lost",
          "[train][preempt][save_error][tmpfs]") {
  SaveFixture f;
  const fs::path mnt = f.t.path / "small";
  fs::create_directories(mnt);
  // About 3 checkpoints of room; mounting needs root (CAP_SYS_ADMIN) and a kernel that lets us.
  const int64_t ckpt = SaveFixture::bytes(f.save(1));
  fs::remove_all(fs::path(f.args.output_dir));
  const std::string opts = fmt::format("size={}", 3 * ckpt + (1 << 20));
  if (::mount("tmpfs", mnt.c_str(), "tmpfs", 0, opts.c_str()) != 0) {
    const std::string why = std::strerror(errno);
    WARN("skipped: cannot mount a small tmpfs here (" << why << "); the injected-failure test covers the save path");
    std::printf("BERTRAZOR_SKIPPED: cannot mount a tmpfs (%s)\n", why.c_str());
    return;
  }
  struct Unmount {
    fs::path p;
    ~Unmount() { ::umount2(p.c_str(), MNT_DETACH); }
  } unmount{mnt};
  f.args.output_dir = (mnt / "out").string();
  const fs::path first = f.save(1);
  const auto first_files = SaveFixture::files(first);
  // Fill the disk, then free half a checkpoint: the next save runs out part-way.
  {
    std::FILE* fill = std::fopen((mnt / "filler").c_str(), "wb");
    REQUIRE(fill);
    std::vector<char> block(4096, 'x');
    while (std::fwrite(block.data(), 1, block.size(), fill) == block.size()) {
    }
    std::fclose(fill);
    fs::resize_file(mnt / "filler", fs::file_size(mnt / "filler") - uint64_t(ckpt / 2));
  }
  try {
    f.save(2);
    FAIL("the save on a full file system succeeded");
  } catch (const Error& e) {
    const std::string what = e.what();
    INFO(what);
    CHECK_THAT(what, Contains("No space left on device"));
    CHECK_THAT(what, Contains("checkpoint-2.tmp-"));  // the file it was writing
  }
  CHECK(tmp_folders(mnt / "out").empty());
  CHECK(!fs::exists(mnt / "out" / "checkpoint-2"));
  CHECK(verify_checkpoint(first).kind == CheckpointCheck::intact);
  CHECK(SaveFixture::files(first) == first_files);
  // Read-only: the writer cannot even make its folder; the message names it.
  fs::remove(mnt / "filler");
  REQUIRE(::mount("tmpfs", mnt.c_str(), "tmpfs", MS_REMOUNT | MS_RDONLY, nullptr) == 0);
  CHECK_THROWS_WITH(f.save(3), Contains("checkpoint-3.tmp-") && Contains("Read-only file system"));
  CHECK(verify_checkpoint(first).kind == CheckpointCheck::intact);
  CHECK(SaveFixture::files(first) == first_files);
}

TEST_CASE("train --save_on_error: stop (the default) ends the run with the error, continue warns and goes on",
          "[train][preempt][save_error]") {
  TempDir t("save_on_error");
  make_model(t.path);
  make_data(t.path);
  auto args = [&](const fs::path& out, std::vector<std::string> extra, int64_t max_steps = 6) {
    std::vector<std::string> a = train_args(t.path, out, max_steps, 8, 2);
    a.erase(a.begin());  // "train"
    a.insert(a.end(), extra.begin(), extra.end());
    return parse_training_args(a);
  };
  run_glue(args(t.path / "sizes", {}, 2));
  const int64_t ckpt = SaveFixture::bytes(t.path / "sizes" / "checkpoint-2");
  CHECK_THROWS_WITH(args(t.path / "x", {"--save_on_error", "maybe"}),
                    Contains("--save_on_error") && Contains("stop, continue"));
  SECTION("stop") {
    const fs::path out = t.path / "stop";
    WriteLimit l(ckpt + ckpt / 2);  // checkpoint-2 fits, checkpoint-4 does not
    CHECK_THROWS_WITH(run_glue(args(out, {})),
                      Contains("saving " + (out / "checkpoint-4").string() + " failed") &&
                          Contains("No space left on device") && Contains("--save_on_error stop") &&
                          Contains("the newest checkpoint is " + (out / "checkpoint-2").string()));
    CHECK(verify_checkpoint(out / "checkpoint-2").kind == CheckpointCheck::intact);
    CHECK(tmp_folders(out).empty());
    CHECK(!fs::exists(out / "model.safetensors"));
  }
  SECTION("continue") {
    const fs::path out = t.path / "continue";
    WriteLimit l(ckpt + ckpt / 2);  // checkpoint-2 fits; 4 and 6 do not
    run_glue(args(out, {"--save_on_error", "continue"}));
    CHECK(verify_checkpoint(out / "checkpoint-2").kind == CheckpointCheck::intact);
    CHECK(!fs::exists(out / "checkpoint-4"));
    CHECK(!fs::exists(out / "checkpoint-6"));
    CHECK(tmp_folders(out).empty());
    nlohmann::json state = nlohmann::json::parse(read_file((out / "trainer_state.json").string()));
    CHECK(state.at("global_step") == 6);  // trained to the end, final model written
    CHECK(fs::exists(out / "model.safetensors"));
  }
}
