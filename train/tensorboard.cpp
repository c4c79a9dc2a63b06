// The three messages TensorBoard needs (Event, Summary, Summary.Value) are encoded and decoded by
// hand, a few fields of protobuf's wire format: Debian's libprotobuf would need TensorFlow's .proto
// files copied into the tree and protoc at build time for that. CRC32C comes from Boost.CRC.
#include "train/tensorboard.h"

#include <unistd.h>

#include <boost/crc.hpp>
#include <chrono>
#include <cstring>
#include <ctime>
#include <filesystem>

#include "core/error.h"
#include "core/text.h"

namespace br {

namespace fs = std::filesystem;

uint32_t masked_crc32c(const void* data, size_t n) {
  boost::crc_optimal<32, 0x1EDC6F41, 0xFFFFFFFF, 0xFFFFFFFF, true, true> crc;
  crc.process_bytes(data, n);
  const uint32_t c = crc.checksum();
  return ((c >> 15) | (c << 17)) + 0xa282ead8u;
}

namespace {

// ---- protobuf wire format: varint keys, then a varint, 8, 4 or length-prefixed bytes ----
enum Wire : uint32_t { kVarint = 0, kFixed64 = 1, kBytes = 2, kFixed32 = 5 };

void put_varint(std::string& out, uint64_t v) {
  while (v >= 0x80) {
    out.push_back(char(v | 0x80));
    v >>= 7;
  }
  out.push_back(char(v));
}

void put_key(std::string& out, uint32_t field, Wire wire) { put_varint(out, (field << 3) | wire); }

void put_bytes(std::string& out, uint32_t field, const std::string& bytes) {
  put_key(out, field, kBytes);
  put_varint(out, bytes.size());
  out += bytes;
}

template <typename T>
void put_fixed(std::string& out, uint32_t field, T v) {
  put_key(out, field, sizeof(T) == 8 ? kFixed64 : kFixed32);
  char b[sizeof(T)];
  std::memcpy(b, &v, sizeof(T));  // little-endian, as the wire format and this machine
  out.append(b, sizeof(T));
}

// Event {1: double wall_time, 2: int64 step, 3: string file_version, 5: Summary summary};
// Summary {1: repeated Value value}; Value {1: string tag, 2: float simple_value}.
std::string event_proto(double wall_time, int64_t step) {
  std::string e;
  put_fixed(e, 1, wall_time);
  put_key(e, 2, kVarint);
  put_varint(e, uint64_t(step));
  return e;
}

// A reader over one message's bytes.
struct Fields {
  const uint8_t* p;
  const uint8_t* end;
  const std::string& where;

  uint64_t varint() {
    uint64_t v = 0;
    for (int shift = 0; shift < 64; shift += 7) {
      BR_CHECK(p < end, "{}: truncated varint", where);
      const uint8_t b = *p++;
      v |= uint64_t(b & 0x7f) << shift;
      if (!(b & 0x80)) return v;
    }
    fail("{}: varint longer than 10 bytes", where);
  }
  // The next field's number and wire type; false at the end.
  bool next(uint32_t& field, uint32_t& wire) {
    if (p == end) return false;
    const uint64_t key = varint();
    field = uint32_t(key >> 3);
    wire = uint32_t(key & 7);
    return true;
  }
  std::string bytes() {
    const uint64_t n = varint();
    BR_CHECK(n <= uint64_t(end - p), "{}: a {}-byte field runs past its message", where, n);
    std::string s(reinterpret_cast<const char*>(p), size_t(n));
    p += n;
    return s;
  }
  template <typename T>
  T fixed() {
    BR_CHECK(size_t(end - p) >= sizeof(T), "{}: truncated fixed field", where);
    T v;
    std::memcpy(&v, p, sizeof(T));
    p += sizeof(T);
    return v;
  }
  void skip(uint32_t wire) {
    switch (wire) {
      case kVarint: varint(); return;
      case kFixed64: fixed<uint64_t>(); return;
      case kBytes: bytes(); return;
      case kFixed32: fixed<uint32_t>(); return;
    }
    fail("{}: unknown wire type {}", where, wire);
  }
};

Fields fields_of(const std::string& bytes, const std::string& where) {
  const auto* p = reinterpret_cast<const uint8_t*>(bytes.data());
  return Fields{p, p + bytes.size(), where};
}

// Summary.Value -> (tag, simple_value); a value of another kind (image, histogram) is skipped.
void read_summary(const std::string& bytes, const std::string& where, const ScalarEvent& at,
                  std::vector<ScalarEvent>& out) {
  Fields s = fields_of(bytes, where);
  uint32_t field = 0, wire = 0;
  while (s.next(field, wire)) {
    if (field != 1 || wire != kBytes) {
      s.skip(wire);
      continue;
    }
    const std::string value = s.bytes();  // fields_of reads it in place: keep it alive
    Fields v = fields_of(value, where);
    ScalarEvent e = at;
    bool scalar = false;
    uint32_t vf = 0, vw = 0;
    while (v.next(vf, vw)) {
      if (vf == 1 && vw == kBytes) {
        e.tag = v.bytes();
      } else if (vf == 2 && vw == kFixed32) {
        e.value = v.fixed<float>();
        scalar = true;
      } else {
        v.skip(vw);
      }
    }
    if (scalar) out.push_back(e);
  }
}

}  // namespace

double unix_time() {
  return std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
}

std::string tensorboard_tag(const std::string& key) {
  if (key.find('/') != std::string::npos) return key;  // ours, already grouped (memory/...)
  for (const char* split : {"eval", "test"}) {
    const std::string prefix = std::string(split) + "_";
    if (key.rfind(prefix, 0) == 0) return std::string(split) + "/" + key.substr(prefix.size());
  }
  return "train/" + key;
}

std::string host_name() {
  char buf[256] = {};
  if (gethostname(buf, sizeof(buf) - 1) != 0) return "localhost";
  return buf;
}

std::string default_logging_dir(const std::string& output_dir) {
  const std::time_t now = std::time(nullptr);
  std::tm local{};
  localtime_r(&now, &local);
  char stamp[32];
  std::strftime(stamp, sizeof(stamp), "%b%d_%H-%M-%S", &local);
  return (fs::path(output_dir) / "runs" / (std::string(stamp) + "_" + host_name())).string();
}

EventWriter::EventWriter(const std::string& dir, const std::string& host) {
  std::error_code ec;
  fs::create_directories(dir, ec);
  BR_CHECK(!ec, "tensorboard: cannot create the logging dir {}: {}", dir, ec.message());
  const double now = unix_time();
  path_ = (fs::path(dir) / fmt::format("events.out.tfevents.{}.{}", int64_t(now), host)).string();
  file_ = std::fopen(path_.c_str(), "wb");
  BR_CHECK(file_, "tensorboard: cannot open {}: {}", path_, std::strerror(errno));
  std::string first = event_proto(now, 0);
  put_bytes(first, 3, "brain.Event:2");
  write_record(first);
  flush();
}

EventWriter::~EventWriter() {
  if (file_) std::fclose(file_);
}

void EventWriter::write_record(const std::string& bytes) {
  const uint64_t n = bytes.size();
  char head[12];
  std::memcpy(head, &n, 8);
  const uint32_t len_crc = masked_crc32c(head, 8);
  std::memcpy(head + 8, &len_crc, 4);
  const uint32_t data_crc = masked_crc32c(bytes.data(), bytes.size());
  BR_CHECK(std::fwrite(head, 1, 12, file_) == 12 &&
               std::fwrite(bytes.data(), 1, bytes.size(), file_) == bytes.size() &&
               std::fwrite(&data_crc, 1, 4, file_) == 4,
           "tensorboard: writing {} failed: {}", path_, std::strerror(errno));
}

void EventWriter::add_scalar(const std::string& tag, double value, int64_t step, double wall_time) {
  std::string v;
  put_bytes(v, 1, tag);
  put_fixed(v, 2, float(value));
  std::string summary;
  put_bytes(summary, 1, v);
  std::string e = event_proto(wall_time, step);
  put_bytes(e, 5, summary);
  write_record(e);
}

void EventWriter::add_logs(const nlohmann::ordered_json& logs, int64_t step,
                           std::optional<double> wall_time) {
  const double t = wall_time.value_or(unix_time());
  for (auto it = logs.begin(); it != logs.end(); ++it)
    if (it.value().is_number()) add_scalar(tensorboard_tag(it.key()), it.value().get<double>(), step, t);
  flush();
}

void EventWriter::flush() {
  BR_CHECK(std::fflush(file_) == 0, "tensorboard: flushing {} failed: {}", path_,
           std::strerror(errno));
}

EventFile read_event_file(const std::string& path) {
  const std::string data = read_file(path);
  EventFile f;
  size_t pos = 0;
  for (int record = 0; pos < data.size(); ++record) {
    const std::string where = fmt::format("{}: record {}", path, record);
    BR_CHECK(data.size() - pos >= 12, "{}: truncated header", where);
    uint64_t n = 0;
    uint32_t len_crc = 0, data_crc = 0;
    std::memcpy(&n, data.data() + pos, 8);
    std::memcpy(&len_crc, data.data() + pos + 8, 4);
    BR_CHECK(masked_crc32c(data.data() + pos, 8) == len_crc, "{}: length CRC mismatch", where);
    BR_CHECK(n <= data.size() - pos - 12 && data.size() - pos - 12 - n >= 4,
             "{}: a {}-byte record runs past the end of the file", where, n);
    const std::string bytes = data.substr(pos + 12, size_t(n));
    std::memcpy(&data_crc, data.data() + pos + 12 + n, 4);
    BR_CHECK(masked_crc32c(bytes.data(), bytes.size()) == data_crc, "{}: data CRC mismatch", where);
    pos += 12 + size_t(n) + 4;

    Fields e = fields_of(bytes, where);
    ScalarEvent at;
    std::string summary;
    uint32_t field = 0, wire = 0;
    while (e.next(field, wire)) {
      if (field == 1 && wire == kFixed64) at.wall_time = e.fixed<double>();
      else if (field == 2 && wire == kVarint) at.step = int64_t(e.varint());
      else if (field == 3 && wire == kBytes) f.file_version = e.bytes();
      else if (field == 5 && wire == kBytes) summary = e.bytes();
      else e.skip(wire);
    }
    if (!summary.empty()) read_summary(summary, where, at, f.scalars);
  }
  return f;
}

}  // namespace br
