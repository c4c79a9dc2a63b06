// safetensors reader and writer: byte-exact agreement with the reference writer, round trips of every
// dtype, every malformed-file case the reference validator rejects, and the real MiniLM checkpoint.
#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <random>

#include "harness.h"
#include "kernels/cast.h"
#include "models/config.h"
#include "models/model_path.h"
#include "models/safetensors.h"

namespace fs = std::filesystem;
using br::DType;
using br::SafetensorsFile;
using br::Tensor;
using Catch::Matchers::Contains;

namespace {

// A fresh empty folder under the system temp dir, removed at scope exit.
struct TempDir {
  fs::path path;
  TempDir() {
    static int counter = 0;
    path = fs::temp_directory_path() /
           ("br_st_" + std::to_string(getpid()) + "_" + std::to_string(counter++));
    fs::remove_all(path);
    fs::create_directories(path);
  }
  ~TempDir() { fs::remove_all(path); }
  std::string operator/(const std::string& f) const { return (path / f).string(); }
};

// [u64 LE header length][header][data], the header taken verbatim.
std::vector<uint8_t> st_bytes(const std::string& header, const std::vector<uint8_t>& data) {
  uint64_t n = header.size();
  std::vector<uint8_t> b(8 + header.size() + data.size());
  std::memcpy(b.data(), &n, 8);
  std::copy(header.begin(), header.end(), b.begin() + 8);
  std::copy(data.begin(), data.end(), b.begin() + 8 + std::ptrdiff_t(header.size()));
  return b;
}

std::vector<uint8_t> read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::vector<uint8_t>((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}

void write_file(const std::string& path, const std::vector<uint8_t>& b) {
  std::ofstream out(path, std::ios::binary);
  out.write(reinterpret_cast<const char*>(b.data()), std::streamsize(b.size()));
}

std::vector<uint8_t> tensor_bytes(const Tensor& t) {
  std::vector<uint8_t> b(t.nbytes());
  if (!b.empty()) t.copy_to_host(b.data(), b.size());
  return b;
}

// Parses `bytes` as file "bad.safetensors" and expects an error naming the file and `tensor`.
void expect_rejected(const std::vector<uint8_t>& bytes, const std::string& tensor,
                     const std::string& why) {
  INFO("case: " << why);
  REQUIRE_THROWS_AS(SafetensorsFile::from_bytes(bytes, "bad.safetensors"), br::Error);
  try {
    SafetensorsFile::from_bytes(bytes, "bad.safetensors");
  } catch (const br::Error& e) {
    std::string msg = e.what();
    INFO("message: " << msg);
    CHECK(msg.find("bad.safetensors") != std::string::npos);
    if (!tensor.empty()) CHECK(msg.find("'" + tensor + "'") != std::string::npos);
    CHECK(msg.find(why) != std::string::npos);
  }
}

std::string info(const std::string& dtype, const std::string& shape, uint64_t b, uint64_t e) {
  return "{\"dtype\":\"" + dtype + "\",\"shape\":" + shape + ",\"data_offsets\":[" +
         std::to_string(b) + "," + std::to_string(e) + "]}";
}

}  // namespace

TEST_CASE("safetensors writer matches the reference writer byte for byte") {
  // The expected bytes were produced by safetensors.torch.save (safetensors 0.8.0) from the same
  // tensors and metadata {"format": "pt"}: I64 first, then F64, F32, I32, BF16, F16, U8, names
  // sorted within a dtype, header space-padded to a multiple of 8.
  TempDir dir;
  std::vector<std::pair<std::string, Tensor>> ts = {
      {"b", Tensor::from_host(std::vector<float>{0, 1, 2, 3, 4, 5}, {2, 3})},
      {"a", Tensor::from_host(std::vector<int64_t>{1, -2}, {2})},
      {"c", br::cast(Tensor::from_host(std::vector<float>{1.5f}, {1}), DType::bf16)},
      {"z", Tensor::from_host(std::vector<uint8_t>{1, 2, 3}, {3})},
      {"h", br::cast(Tensor::from_host(std::vector<float>{0.5f}, {}), DType::f16)},
      {"d", Tensor::empty({0, 4}, DType::f64)},
      {"i", Tensor::from_host(std::vector<int32_t>{7}, {1, 1})},
  };
  br::write_safetensors(dir / "m.safetensors", ts);
  std::string header =
      R"({"__metadata__":{"format":"pt"},"a":{"dtype":"I64","shape":[2],"data_offsets":[0,16]},)"
      R"("d":{"dtype":"F64","shape":[0,4],"data_offsets":[16,16]},)"
      R"("b":{"dtype":"F32","shape":[2,3],"data_offsets":[16,40]},)"
      R"("i":{"dtype":"I32","shape":[1,1],"data_offsets":[40,44]},)"
      R"("c":{"dtype":"BF16","shape":[1],"data_offsets":[44,46]},)"
      R"("h":{"dtype":"F16","shape":[],"data_offsets":[46,48]},)"
      R"("z":{"dtype":"U8","shape":[3],"data_offsets":[48,51]}})";
  header.append((8 - header.size() % 8) % 8, ' ');
  const char* hex =
      "0100000000000000feffffffffffffff000000000000803f0000004000004040000080400000a04007000000c03f"
      "0038010203";
  std::vector<uint8_t> data;
  for (size_t i = 0; hex[i]; i += 2) data.push_back(uint8_t(std::stoi(std::string(hex + i, 2), nullptr, 16)));
  std::vector<uint8_t> expected = st_bytes(header, data);
  std::vector<uint8_t> got = read_file(dir / "m.safetensors");
  CHECK(std::string(got.begin(), got.end()) == std::string(expected.begin(), expected.end()));
  CHECK((got.size() - data.size()) % 8 == 0);
  CHECK_FALSE(fs::exists(dir / "m.safetensors.tmp"));
}

TEST_CASE("safetensors round trip of every dtype on awkward shapes") {
  uint64_t seed = br::test::fresh_seed();
  INFO("seed " << seed);
  std::mt19937_64 rng(seed);
  TempDir dir;
  std::vector<std::pair<std::string, Tensor>> ts;
  for (DType t : {DType::f32, DType::f64, DType::f16, DType::bf16})
    ts.push_back({"float." + std::string(br::dtype_name(t)), br::test::random_tensor({7, 33}, t, rng)});
  std::uniform_int_distribution<int64_t> u(-(int64_t(1) << 40), int64_t(1) << 40);
  std::vector<int64_t> i64(127);
  std::vector<int32_t> i32(127);
  std::vector<uint8_t> u8(127);
  for (size_t i = 0; i < 127; ++i) {
    i64[i] = u(rng);
    i32[i] = int32_t(u(rng) >> 10);
    u8[i] = uint8_t(u(rng));
  }
  ts.push_back({"int.i64", Tensor::from_host(i64, {127})});
  ts.push_back({"int.i32", Tensor::from_host(i32, {1, 127, 1})});
  ts.push_back({"int.u8", Tensor::from_host(u8, {127})});
  ts.push_back({"scalar", Tensor::from_host(std::vector<double>{3.25}, {})});
  ts.push_back({"empty", Tensor::empty({3, 0}, DType::f32)});
  std::map<std::string, std::string> meta = {{"format", "pt"}, {"note", "ünïcode ✓"}};
  br::write_safetensors(dir / "rt.safetensors", ts, meta);

  SafetensorsFile f = SafetensorsFile::open(dir / "rt.safetensors");
  CHECK(f.metadata() == meta);
  REQUIRE(f.entries().size() == ts.size());
  for (const auto& [name, t] : ts) {
    INFO(name);
    REQUIRE(f.has(name));
    CHECK(f.entry(name).dtype == br::safetensors_dtype_name(t.dtype()));
    Tensor back = f.load(name);
    CHECK(back.dtype() == t.dtype());
    CHECK(back.shape() == t.shape());
    CHECK(back.category() == br::MemCategory::parameters);
    CHECK(tensor_bytes(back) == tensor_bytes(t));
  }
  uint64_t pos = 0;
  for (const auto& e : f.entries()) {
    CHECK(e.begin == pos);
    pos = e.end;
  }
  CHECK_FALSE(f.has("nope"));
  CHECK_THROWS_WITH(f.entry("nope"), Contains("rt.safetensors") && Contains("'nope'"));

  // Writing over an existing file replaces it whole.
  br::write_safetensors(dir / "rt.safetensors", {{"only", Tensor::zeros({2}, DType::f32)}}, {});
  SafetensorsFile g = SafetensorsFile::open(dir / "rt.safetensors");
  CHECK(g.entries().size() == 1);
  CHECK(g.metadata().empty());
}

TEST_CASE("safetensors load_as checks the shape and converts the dtype") {
  TempDir dir;
  std::vector<float> v = {1.0f, -2.5f, 3.0f, 1e-3f, 7.0f, 0.0f};
  br::write_safetensors(dir / "a.safetensors",
                        {{"w", Tensor::from_host(v, {2, 3})},
                         {"ids", Tensor::from_host(std::vector<int64_t>{0, 1, 300}, {3})},
                         {"big", Tensor::from_host(std::vector<int64_t>{int64_t(1) << 40}, {1})},
                         {"flag", Tensor::from_host(std::vector<uint8_t>{1, 0}, {2})}});
  SafetensorsFile f = SafetensorsFile::open(dir / "a.safetensors");
  Tensor w = f.load_as("w", {2, 3}, DType::f64);
  CHECK(w.dtype() == DType::f64);
  CHECK(w.category() == br::MemCategory::parameters);
  std::vector<double> wd = w.to_vector<double>();
  for (size_t i = 0; i < v.size(); ++i) CHECK(wd[i] == double(v[i]));
  Tensor wb = f.load_as("w", {2, 3}, DType::bf16);
  CHECK(br::test::max_abs_diff(wb, Tensor::from_host(v, {2, 3})) < 1e-2);
  CHECK(f.load_as("ids", {3}, DType::f32).to_vector<float>() == std::vector<float>{0, 1, 300});
  CHECK(f.load_as("ids", {3}, DType::i32).to_vector<int32_t>() == std::vector<int32_t>{0, 1, 300});
  CHECK(f.load_as("flag", {2}, DType::i64).to_vector<int64_t>() == std::vector<int64_t>{1, 0});
  CHECK_THROWS_WITH(f.load_as("w", {3, 2}, DType::f32),
                    Contains("a.safetensors") && Contains("'w'") && Contains("[2, 3]") &&
                        Contains("[3, 2]"));
  CHECK_THROWS_WITH(f.load_as("ids", {3}, DType::u8), Contains("'ids'") && Contains("300"));
  CHECK_THROWS_WITH(f.load_as("big", {1}, DType::i32), Contains("'big'") && Contains("does not fit"));
  CHECK_THROWS_WITH(f.load_as("w", {2, 3}, DType::i32), Contains("'w'") && Contains("cannot be converted"));
  CHECK_THROWS_WITH(f.load_as("missing", {1}, DType::f32), Contains("'missing'"));
}

TEST_CASE("safetensors: dtypes bertrazor does not load are read but refused at load time") {
  std::string header = "{\"mask\":" + info("BOOL", "[3]", 0, 3) + ",\"q\":" + info("F8_E4M3", "[2]", 3, 5) +
                       ",\"s\":" + info("I8", "[1]", 5, 6) + "}";
  SafetensorsFile f = SafetensorsFile::from_bytes(st_bytes(header, {1, 0, 1, 9, 9, 5}), "odd.safetensors");
  CHECK(f.entry("mask").dtype == "BOOL");
  CHECK(f.bytes("q").size() == 2);
  for (const char* name : {"mask", "q", "s"})
    CHECK_THROWS_WITH(f.load(name), Contains("odd.safetensors") && Contains(std::string("'") + name + "'") &&
                                        Contains("does not load"));
}

TEST_CASE("safetensors rejects malformed files naming the file and the tensor") {
  std::vector<uint8_t> d24(24, 0);
  std::string ok = "{\"a\":" + info("F32", "[2,3]", 0, 24) + "}";
  REQUIRE_NOTHROW(SafetensorsFile::from_bytes(st_bytes(ok, d24), "good.safetensors"));

  expect_rejected({1, 2, 3}, "", "shorter than the 8-byte header length");
  {
    std::vector<uint8_t> b = st_bytes(ok, d24);
    uint64_t n = b.size();  // claims more header than the file holds
    std::memcpy(b.data(), &n, 8);
    expect_rejected(b, "", "runs past the end");
    n = uint64_t(1) << 62;
    std::memcpy(b.data(), &n, 8);
    expect_rejected(b, "", "exceeds");
  }
  expect_rejected(st_bytes("{\"a\":" + info("F32", "[2,3]", 0, 24), d24), "", "not valid JSON");
  expect_rejected(st_bytes("[1,2]", {}), "", "does not start with '{'");
  expect_rejected(st_bytes("{\"a\":" + info("F33", "[2,3]", 0, 24) + "}", d24), "a", "unknown dtype 'F33'");
  expect_rejected(st_bytes("{\"a\":" + info("F32", "[2,4]", 0, 24) + "}", d24), "a", "needs 32 bytes");
  expect_rejected(st_bytes("{\"a\":" + info("F32", "[2,-3]", 0, 24) + "}", d24), "a", "not a non-negative");
  expect_rejected(st_bytes("{\"a\":{\"dtype\":\"F32\",\"shape\":[6]}}", d24), "a", "data_offsets");
  expect_rejected(st_bytes("{\"a\":{\"shape\":[6],\"data_offsets\":[0,24]}}", d24), "a", "dtype");
  expect_rejected(st_bytes("{\"a\":" + info("F32", "[2,3]", 0, 24) + ",\"b\":" + info("F32", "[1]", 24, 28) + "}", d24),
                  "b", "past the end");
  expect_rejected(st_bytes("{\"a\":" + info("F32", "[0]", 24, 0) + "}", d24), "a", "end before they begin");
  expect_rejected(st_bytes("{\"a\":" + info("F32", "[2,3]", 0, 24) + ",\"b\":" + info("F32", "[2]", 16, 24) + "}", d24),
                  "b", "overlap");
  expect_rejected(st_bytes("{\"a\":" + info("F32", "[2]", 0, 8) + ",\"b\":" + info("F32", "[2]", 16, 24) + "}", d24),
                  "b", "hole");
  expect_rejected(st_bytes("{\"a\":" + info("F32", "[4]", 0, 16) + "}", d24), "a", "trailing bytes");
  expect_rejected(st_bytes("{\"a\":" + info("F32", "[2,3]", 0, 24) + ",\"a\":" + info("F32", "[2,3]", 0, 24) + "}", d24),
                  "a", "twice");
  expect_rejected(st_bytes("{\"a\":" + info("F4", "[3]", 0, 1) + "}", {0}), "a", "whole bytes");
  expect_rejected(st_bytes("{\"a\":" + info("F32", "[4294967296,4294967296,16]", 0, 24) + "}", d24), "a", "overflows");
  expect_rejected(st_bytes("{\"__metadata__\":{\"format\":1},\"a\":" + info("F32", "[2,3]", 0, 24) + "}", d24),
                  "format", "not a string");

  // Through open(): the message carries the path.
  TempDir dir;
  write_file(dir / "broken.safetensors", st_bytes("{\"w\":" + info("F32", "[3]", 0, 16) + "}", std::vector<uint8_t>(16)));
  CHECK_THROWS_WITH(SafetensorsFile::open(dir / "broken.safetensors"),
                    Contains(dir / "broken.safetensors") && Contains("'w'"));
  CHECK_THROWS_WITH(SafetensorsFile::open(dir / "absent.safetensors"), Contains("absent.safetensors"));
}

TEST_CASE("safetensors accepts what the reference accepts: padding and zero-size tensors in any key order") {
  std::string header = "{\"z\":" + info("F32", "[0]", 4, 4) + ",\"b\":" + info("U8", "[4]", 0, 4) +
                       ",\"__metadata__\":null}        ";
  SafetensorsFile f = SafetensorsFile::from_bytes(st_bytes(header, {1, 2, 3, 4}));
  REQUIRE(f.entries().size() == 2);
  CHECK(f.entries()[0].name == "b");
  CHECK(f.entries()[1].name == "z");
  CHECK(f.load("z").numel() == 0);
  CHECK(f.load("b").to_vector<uint8_t>() == std::vector<uint8_t>{1, 2, 3, 4});
  CHECK(SafetensorsFile::from_bytes(st_bytes("{}", {})).entries().empty());
}

TEST_CASE("safetensors writer rejects bad input") {
  TempDir dir;
  Tensor t = Tensor::zeros({2}, DType::f32);
  CHECK_THROWS_WITH(br::write_safetensors(dir / "x.safetensors", {{"a", t}, {"a", t}}),
                    Contains("x.safetensors") && Contains("'a'") && Contains("twice"));
  CHECK_THROWS_WITH(br::write_safetensors(dir / "x.safetensors", {{"u", Tensor()}}),
                    Contains("'u'") && Contains("undefined"));
  CHECK_THROWS_WITH(br::write_safetensors(dir / "x.safetensors", {{"__metadata__", t}}), Contains("reserved"));
  CHECK_THROWS_WITH(br::write_safetensors(dir / "no/such/dir/x.safetensors", {{"a", t}}),
                    Contains("no/such/dir/x.safetensors.tmp"));
  CHECK_FALSE(fs::exists(dir / "x.safetensors"));
}

TEST_CASE("safetensors CUDA tensors are written from and loaded to the device") {
  if (br::test::skip_without_cuda()) return;
  uint64_t seed = br::test::fresh_seed();
  INFO("seed " << seed);
  std::mt19937_64 rng(seed);
  TempDir dir;
  Tensor host = br::test::random_tensor({33, 7}, DType::f32, rng);
  br::write_safetensors(dir / "g.safetensors", {{"w", host.to(br::Device::cuda)}});
  SafetensorsFile f = SafetensorsFile::open(dir / "g.safetensors");
  CHECK(tensor_bytes(f.load("w")) == tensor_bytes(host));
  Tensor dev = f.load_as("w", {33, 7}, DType::bf16, br::Device::cuda);
  CHECK(dev.is_cuda());
  CHECK(br::test::rel_l2(dev, host) < br::test::tolerance(DType::bf16));
  CHECK(tensor_bytes(f.load("w", br::Device::cuda)) == tensor_bytes(host));
}

TEST_CASE("safetensors reads the real all-MiniLM-L6-v2 checkpoint and rewrites it byte for byte") {
  std::string dir;
  try {
    dir = br::resolve_model_path("sentence-transformers/all-MiniLM-L6-v2");
  } catch (const br::Error&) {
    br::test::skip("all-MiniLM-L6-v2 is not in the model cache (run tools/get_model.sh)");
    return;
  }
  br::BertConfig cfg = br::BertConfig::from_json_file(dir + "/config.json");
  CHECK(cfg.hidden_size == 384);
  CHECK(cfg.num_hidden_layers == 6);
  SafetensorsFile f = SafetensorsFile::open(dir + "/model.safetensors");
  CHECK(f.metadata().at("format") == "pt");
  const int64_t H = cfg.hidden_size, F = cfg.intermediate_size, V = cfg.vocab_size;
  CHECK(f.entry("embeddings.word_embeddings.weight").shape == br::Shape{V, H});
  Tensor pos = f.load("embeddings.position_ids");
  REQUIRE(pos.dtype() == DType::i64);
  std::vector<int64_t> p = pos.to_vector<int64_t>();
  for (size_t i = 0; i < p.size(); ++i) CHECK(p[i] == int64_t(i));
  for (int64_t l = 0; l < cfg.num_hidden_layers; ++l) {
    std::string pre = "encoder.layer." + std::to_string(l) + ".";
    for (const char* m : {"attention.self.query", "attention.self.key", "attention.self.value", "attention.output.dense"})
      CHECK_NOTHROW(f.load_as(pre + m + ".weight", {H, H}, DType::f32));
    CHECK_NOTHROW(f.load_as(pre + "intermediate.dense.weight", {F, H}, DType::f32));
    CHECK_NOTHROW(f.load_as(pre + "output.dense.weight", {H, F}, DType::f32));
  }
  std::vector<float> gamma = f.load_as("embeddings.LayerNorm.weight", {H}, DType::f32).to_vector<float>();
  double mean = 0;
  for (float g : gamma) mean += g / double(H);
  CHECK(mean > 0.2);
  CHECK(mean < 2.0);

  std::vector<std::pair<std::string, Tensor>> all;
  for (const auto& e : f.entries()) all.push_back({e.name, f.load(e.name)});
  TempDir tmp;
  br::write_safetensors(tmp / "copy.safetensors", all, f.metadata());
  CHECK(read_file(tmp / "copy.safetensors") == read_file(dir + "/model.safetensors"));
}
