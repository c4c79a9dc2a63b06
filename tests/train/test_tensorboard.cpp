// TensorBoard event files: framing and CRCs as TFRecord defines them, scalars round-trip through
// our reader, HF's tag rewrite, and what bertrazor train writes where. (tools/check_tensorboard.py
// reads the files with the tensorboard package itself; docs/RESULTS.md.)
#include <catch2/catch.hpp>
#include <filesystem>
#include <fstream>
#include <unistd.h>

#include "core/error.h"
#include "core/text.h"
#include "train/tensorboard.h"

using namespace br;
namespace fs = std::filesystem;

namespace {

fs::path fresh_dir(const char* name) {
  fs::path p = fs::temp_directory_path() / fmt::format("br_tb_{}_{}", name, getpid());
  fs::remove_all(p);
  return p;
}

fs::path only_event_file(const fs::path& dir) {
  std::vector<fs::path> found;
  for (const auto& e : fs::recursive_directory_iterator(dir))
    if (e.path().filename().string().rfind("events.out.tfevents.", 0) == 0) found.push_back(e.path());
  REQUIRE(found.size() == 1);
  return found[0];
}

}  // namespace

TEST_CASE("tensorboard: CRC32C and its mask match TFRecord's", "[train][tensorboard]") {
  // CRC32C("123456789") = 0xE3069283 (the standard check value); masked as TFRecord does.
  const uint32_t c = 0xE3069283u;
  CHECK(masked_crc32c("123456789", 9) == ((c >> 15) | (c << 17)) + 0xa282ead8u);
  CHECK(masked_crc32c("", 0) == 0xa282ead8u);  // CRC32C of nothing is 0
}

TEST_CASE("tensorboard: scalars round-trip through the event file", "[train][tensorboard]") {
  const fs::path dir = fresh_dir("roundtrip");
  std::string path;
  {
    EventWriter w((dir / "runs" / "x").string(), "testhost");
    path = w.path();
    CHECK(fs::path(path).filename().string().rfind("events.out.tfevents.", 0) == 0);
    CHECK(fs::path(path).filename().string().ends_with(".testhost"));
    w.add_scalar("train/loss", 0.6931, 1, 1700000000.25);
    nlohmann::ordered_json logs = {{"loss", 0.5}, {"eval_accuracy", 0.75}, {"test_f1", 0.125},
                                   {"learning_rate", 3e-5}, {"note", "not a number"}};
    w.add_logs(logs, 40, 1700000001.5);
    // add_logs flushed: a reader sees everything while the writer is still open.
    EventFile live = read_event_file(path);
    CHECK(live.scalars.size() == 5);
  }
  EventFile f = read_event_file(path);
  CHECK(f.file_version == "brain.Event:2");
  REQUIRE(f.scalars.size() == 5);
  CHECK(f.scalars[0].tag == "train/loss");
  CHECK(f.scalars[0].value == 0.6931f);
  CHECK(f.scalars[0].step == 1);
  CHECK(f.scalars[0].wall_time == 1700000000.25);
  CHECK(f.scalars[1].tag == "train/loss");
  CHECK(f.scalars[1].value == 0.5f);
  CHECK(f.scalars[1].step == 40);
  CHECK(f.scalars[2].tag == "eval/accuracy");
  CHECK(f.scalars[3].tag == "test/f1");
  CHECK(f.scalars[3].value == 0.125f);
  CHECK(f.scalars[4].tag == "train/learning_rate");
  CHECK(f.scalars[4].value == 3e-5f);
  fs::remove_all(dir);
}

TEST_CASE("tensorboard: a damaged event file is an error naming the record", "[train][tensorboard]") {
  const fs::path dir = fresh_dir("damaged");
  std::string path;
  {
    EventWriter w(dir.string(), "h");
    path = w.path();
    w.add_scalar("train/loss", 1.0, 1, 1.0);
  }
  const std::string good = read_file(path);
  auto write = [&](const std::string& bytes) { std::ofstream(path, std::ios::binary) << bytes; };
  std::string flipped = good;
  flipped[flipped.size() - 8] ^= 0x10;  // inside the second record's data
  write(flipped);
  CHECK_THROWS_WITH(read_event_file(path), Catch::Contains("record 1: data CRC mismatch"));
  std::string bad_len = good;
  bad_len[0] ^= 0x01;  // the first record's length
  write(bad_len);
  CHECK_THROWS_WITH(read_event_file(path), Catch::Contains("record 0: length CRC mismatch"));
  write(good.substr(0, good.size() - 3));
  CHECK_THROWS_WITH(read_event_file(path), Catch::Contains("record 1: a"));
  write(good.substr(0, good.size() - 3) + "xyz");
  CHECK_THROWS_WITH(read_event_file(path), Catch::Contains("record 1: data CRC mismatch"));
  fs::remove_all(dir);
}

TEST_CASE("tensorboard: HF's tag rewrite and default logging dir", "[train][tensorboard]") {
  CHECK(tensorboard_tag("loss") == "train/loss");
  CHECK(tensorboard_tag("eval_loss") == "eval/loss");
  CHECK(tensorboard_tag("eval_accuracy") == "eval/accuracy");
  CHECK(tensorboard_tag("test_accuracy") == "test/accuracy");
  CHECK(tensorboard_tag("train_runtime") == "train/train_runtime");
  CHECK(tensorboard_tag("memory/peak_bytes") == "memory/peak_bytes");
  const std::string d = default_logging_dir("out");
  CHECK(d.rfind("out/runs/", 0) == 0);
  CHECK(d.ends_with("_" + host_name()));
  CHECK(d.size() == std::string("out/runs/").size() + std::string("Dec02_13-05-00_").size() +
                        host_name().size());
}
