#include "models/safetensors.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <bit>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <limits>
#include <nlohmann/json.hpp>
#include <set>
#include <tuple>
#include <utility>

#include "kernels/cast.h"

namespace br {

static_assert(std::endian::native == std::endian::little,
              "safetensors data is little-endian; a big-endian host would need byte swapping");

namespace {

constexpr uint64_t kMaxHeaderBytes = 100'000'000;  // the reference reader's MAX_HEADER_SIZE

// Every dtype the format defines, with its size in bits, in the reference's enum order (the order
// its writer sorts by, descending).
struct StDtype {
  const char* name;
  uint64_t bits;
};
constexpr StDtype kStDtypes[] = {
    {"BOOL", 8},     {"F4", 4},       {"F6_E2M3", 6},  {"F6_E3M2", 6}, {"U8", 8},
    {"I8", 8},       {"F8_E5M2", 8},  {"F8_E4M3", 8},  {"F8_E8M0", 8}, {"I16", 16},
    {"U16", 16},     {"F16", 16},     {"BF16", 16},    {"I32", 32},    {"U32", 32},
    {"F32", 32},     {"C64", 64},     {"F64", 64},     {"I64", 64},    {"U64", 64},
};

const StDtype* find_st_dtype(std::string_view name) {
  for (const StDtype& d : kStDtypes)
    if (name == d.name) return &d;
  return nullptr;
}

int st_dtype_rank(std::string_view name) {
  for (size_t i = 0; i < std::size(kStDtypes); ++i)
    if (name == kStDtypes[i].name) return int(i);
  return -1;
}

std::string errno_str() { return std::strerror(errno); }

// Host integer conversion with a range check, for load_as between integer dtypes.
template <typename From, typename To>
void convert_ints(const void* src, void* dst, int64_t n, const std::string& what) {
  const From* s = static_cast<const From*>(src);
  To* d = static_cast<To*>(dst);
  for (int64_t i = 0; i < n; ++i) {
    From v = s[i];
    BR_CHECK(std::in_range<To>(v), "{}: element {} = {} does not fit the target dtype", what, i,
             int64_t(v));
    d[i] = To(v);
  }
}

template <typename From>
void convert_ints_to(DType to, const void* src, void* dst, int64_t n, const std::string& what) {
  switch (to) {
    case DType::i32: return convert_ints<From, int32_t>(src, dst, n, what);
    case DType::i64: return convert_ints<From, int64_t>(src, dst, n, what);
    case DType::u8: return convert_ints<From, uint8_t>(src, dst, n, what);
    default: fail("{}: not an integer target dtype", what);
  }
}

}  // namespace

std::optional<DType> dtype_from_safetensors(std::string_view st) {
  if (st == "F32") return DType::f32;
  if (st == "F64") return DType::f64;
  if (st == "F16") return DType::f16;
  if (st == "BF16") return DType::bf16;
  if (st == "I32") return DType::i32;
  if (st == "I64") return DType::i64;
  if (st == "U8") return DType::u8;
  return std::nullopt;
}

std::string_view safetensors_dtype_name(DType t) {
  switch (t) {
    case DType::f32: return "F32";
    case DType::f64: return "F64";
    case DType::f16: return "F16";
    case DType::bf16: return "BF16";
    case DType::i32: return "I32";
    case DType::i64: return "I64";
    case DType::u8: return "U8";
  }
  fail("safetensors_dtype_name: unknown dtype {}", int(t));
}

// The file's bytes: a read-only mapping of the file, or a vector owned here.
struct SafetensorsFile::Buffer {
  const uint8_t* data = nullptr;
  size_t size = 0;
  void* map = nullptr;
  std::vector<uint8_t> owned;

  Buffer() = default;
  Buffer(const Buffer&) = delete;
  Buffer& operator=(const Buffer&) = delete;
  ~Buffer() {
    if (map) munmap(map, size);
  }
};

SafetensorsFile SafetensorsFile::open(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  BR_CHECK(fd >= 0, "safetensors: cannot open {}: {}", path, errno_str());
  struct stat st {};
  if (fstat(fd, &st) != 0) {
    std::string why = errno_str();
    ::close(fd);
    fail("safetensors: cannot stat {}: {}", path, why);
  }
  auto buf = std::make_shared<Buffer>();
  buf->size = size_t(st.st_size);
  if (buf->size > 0) {
    void* p = mmap(nullptr, buf->size, PROT_READ, MAP_PRIVATE, fd, 0);
    if (p == MAP_FAILED) {
      std::string why = errno_str();
      ::close(fd);
      fail("safetensors: cannot map {} ({} bytes): {}", path, buf->size, why);
    }
    buf->map = p;
    buf->data = static_cast<const uint8_t*>(p);
  }
  ::close(fd);
  return parse(std::move(buf), path);
}

SafetensorsFile SafetensorsFile::from_bytes(std::vector<uint8_t> bytes, const std::string& label) {
  auto buf = std::make_shared<Buffer>();
  buf->owned = std::move(bytes);
  buf->data = buf->owned.data();
  buf->size = buf->owned.size();
  return parse(std::move(buf), label);
}

namespace {

// The header's JSON. nlohmann keeps the last of duplicate keys silently; the reference rejects
// them, so the keys of every open object are tracked while parsing.
nlohmann::json parse_header(std::string_view text, const std::string& file) {
  using nlohmann::json;
  std::vector<std::set<std::string>> open_objects;
  std::string duplicate;
  auto on_event = [&](int, json::parse_event_t ev, json& parsed) {
    if (ev == json::parse_event_t::object_start) {
      open_objects.emplace_back();
    } else if (ev == json::parse_event_t::object_end) {
      if (!open_objects.empty()) open_objects.pop_back();
    } else if (ev == json::parse_event_t::key && !open_objects.empty()) {
      const std::string& k = parsed.get_ref<const std::string&>();
      if (!open_objects.back().insert(k).second && duplicate.empty()) duplicate = k;
    }
    return true;
  };
  json header;
  try {
    header = json::parse(text.begin(), text.end(), on_event);
  } catch (const json::exception& e) {
    fail("safetensors: {}: header is not valid JSON: {}", file, e.what());
  }
  BR_CHECK(duplicate.empty(), "safetensors: {}: header has the key '{}' twice", file, duplicate);
  BR_CHECK(header.is_object(), "safetensors: {}: header is not a JSON object", file);
  return header;
}

// One tensor's header entry {"dtype", "shape", "data_offsets"}; *bits gets its dtype's width.
SafetensorsEntry parse_entry(const std::string& name, const nlohmann::json& v,
                             const std::string& file, uint64_t* bits) {
  using nlohmann::json;
  BR_CHECK(v.is_object(), "safetensors: {}: tensor '{}': entry is not an object", file, name);
  auto dt = v.find("dtype");
  auto sh = v.find("shape");
  auto off = v.find("data_offsets");
  BR_CHECK(dt != v.end() && dt->is_string(), "safetensors: {}: tensor '{}': missing string 'dtype'",
           file, name);
  BR_CHECK(sh != v.end() && sh->is_array(), "safetensors: {}: tensor '{}': missing array 'shape'",
           file, name);
  BR_CHECK(off != v.end() && off->is_array() && off->size() == 2 && (*off)[0].is_number_unsigned() &&
               (*off)[1].is_number_unsigned(),
           "safetensors: {}: tensor '{}': 'data_offsets' must be [begin, end] of non-negative "
           "integers, got {}",
           file, name, off == v.end() ? std::string("nothing") : off->dump());
  SafetensorsEntry e;
  e.name = name;
  e.dtype = dt->get<std::string>();
  const StDtype* sd = find_st_dtype(e.dtype);
  BR_CHECK(sd, "safetensors: {}: tensor '{}': unknown dtype '{}'", file, name, e.dtype);
  for (const json& d : *sh) {
    BR_CHECK(d.is_number_unsigned() &&
                 d.get<uint64_t>() <= uint64_t(std::numeric_limits<int64_t>::max()),
             "safetensors: {}: tensor '{}': shape {} has a dimension that is not a non-negative "
             "integer",
             file, name, sh->dump());
    e.shape.push_back(int64_t(d.get<uint64_t>()));
  }
  e.begin = (*off)[0].get<uint64_t>();
  e.end = (*off)[1].get<uint64_t>();
  *bits = sd->bits;
  return e;
}

// Validation as the reference does it: in data order, each tensor starts where the previous one
// ended (no holes, no overlap), has a non-negative length equal to numel * itemsize, and the
// last one ends exactly at the end of the data buffer. Returns the entries' indices in data order.
std::vector<size_t> check_layout(const std::vector<SafetensorsEntry>& entries,
                                 const std::vector<uint64_t>& bits, uint64_t data_bytes,
                                 const std::string& file) {
  std::vector<size_t> order(entries.size());
  for (size_t i = 0; i < order.size(); ++i) order[i] = i;
  std::sort(order.begin(), order.end(), [&](size_t a, size_t b) {
    const SafetensorsEntry &x = entries[a], &y = entries[b];
    return std::tie(x.begin, x.end, x.name) < std::tie(y.begin, y.end, y.name);
  });
  uint64_t pos = 0;
  std::string prev = "the start of the data buffer";
  for (size_t i : order) {
    const SafetensorsEntry& e = entries[i];
    BR_CHECK(e.begin <= e.end, "safetensors: {}: tensor '{}': data_offsets [{}, {}] end before they begin",
             file, e.name, e.begin, e.end);
    BR_CHECK(e.begin >= pos,
             "safetensors: {}: tensor '{}': data_offsets [{}, {}] overlap {}, which ends at {}", file,
             e.name, e.begin, e.end, prev, pos);
    BR_CHECK(e.begin == pos,
             "safetensors: {}: tensor '{}': data_offsets [{}, {}] leave a hole of {} bytes after {}, "
             "which ends at {}",
             file, e.name, e.begin, e.end, e.begin - pos, prev, pos);
    uint64_t numel = 1, nbits = 0;
    bool overflow = false;
    for (int64_t d : e.shape) overflow |= __builtin_mul_overflow(numel, uint64_t(d), &numel);
    overflow |= __builtin_mul_overflow(numel, bits[i], &nbits);
    BR_CHECK(!overflow && numel <= uint64_t(std::numeric_limits<int64_t>::max()),
             "safetensors: {}: tensor '{}': shape {} overflows", file, e.name, shape_str(e.shape));
    BR_CHECK(nbits % 8 == 0, "safetensors: {}: tensor '{}': {} {} elements do not fill whole bytes",
             file, e.name, numel, e.dtype);
    BR_CHECK(nbits / 8 == e.end - e.begin,
             "safetensors: {}: tensor '{}': {} {} needs {} bytes but data_offsets [{}, {}] hold {}",
             file, e.name, e.dtype, shape_str(e.shape), nbits / 8, e.begin, e.end, e.end - e.begin);
    pos = e.end;
    prev = "tensor '" + e.name + "'";
  }
  BR_CHECK(pos <= data_bytes,
           "safetensors: {}: {} ends at data offset {}, past the end of the {}-byte data buffer", file,
           prev, pos, data_bytes);
  BR_CHECK(pos == data_bytes,
           "safetensors: {}: the tensors cover {} bytes of the {}-byte data buffer (the last is {}); "
           "the file has trailing bytes",
           file, pos, data_bytes, prev);

  return order;
}

}  // namespace

SafetensorsFile SafetensorsFile::parse(std::shared_ptr<const Buffer> buf, const std::string& file) {
  using nlohmann::json;
  BR_CHECK(buf->size >= 8, "safetensors: {}: file has {} bytes, shorter than the 8-byte header length",
           file, buf->size);
  uint64_t n = 0;
  std::memcpy(&n, buf->data, 8);
  BR_CHECK(n <= kMaxHeaderBytes, "safetensors: {}: header length {} exceeds the {}-byte limit", file,
           n, kMaxHeaderBytes);
  BR_CHECK(n <= buf->size - 8, "safetensors: {}: header length {} runs past the end of the {}-byte file",
           file, n, buf->size);
  std::string_view text(reinterpret_cast<const char*>(buf->data) + 8, size_t(n));
  BR_CHECK(!text.empty() && text[0] == '{', "safetensors: {}: header does not start with '{{'", file);

  json header = parse_header(text, file);
  SafetensorsFile f;
  f.buf_ = buf;
  f.path_ = file;
  f.data_start_ = 8 + n;
  std::vector<uint64_t> bits;
  for (auto it = header.begin(); it != header.end(); ++it) {
    const std::string& name = it.key();
    const json& v = it.value();
    if (name == "__metadata__") {
      if (v.is_null()) continue;
      BR_CHECK(v.is_object(), "safetensors: {}: __metadata__ is not an object of strings", file);
      for (auto m = v.begin(); m != v.end(); ++m) {
        BR_CHECK(m.value().is_string(), "safetensors: {}: __metadata__ '{}' is not a string", file,
                 m.key());
        f.metadata_[m.key()] = m.value().get<std::string>();
      }
      continue;
    }
    uint64_t b = 0;
    f.entries_.push_back(parse_entry(name, v, file, &b));
    bits.push_back(b);
  }

  std::vector<size_t> order = check_layout(f.entries_, bits, buf->size - f.data_start_, file);
  std::vector<SafetensorsEntry> sorted;
  sorted.reserve(order.size());
  for (size_t i : order) sorted.push_back(std::move(f.entries_[i]));
  f.entries_ = std::move(sorted);
  for (size_t i = 0; i < f.entries_.size(); ++i) f.index_[f.entries_[i].name] = i;
  return f;
}

const SafetensorsEntry& SafetensorsFile::entry(const std::string& name) const {
  auto it = index_.find(name);
  BR_CHECK(it != index_.end(), "safetensors: {}: no tensor '{}' ({} tensors in the file)", path_,
           name, entries_.size());
  return entries_[it->second];
}

std::span<const uint8_t> SafetensorsFile::bytes(const std::string& name) const {
  const SafetensorsEntry& e = entry(name);
  return {buf_->data + data_start_ + e.begin, size_t(e.end - e.begin)};
}

Tensor SafetensorsFile::load(const std::string& name, Device device, MemCategory category) const {
  const SafetensorsEntry& e = entry(name);
  std::optional<DType> dt = dtype_from_safetensors(e.dtype);
  BR_CHECK(dt, "safetensors: {}: tensor '{}' has dtype {}, which bertrazor does not load (supported: "
               "F32, F64, F16, BF16, I32, I64, U8)",
           path_, name, e.dtype);
  Tensor t = Tensor::empty(e.shape, *dt, device, category);
  std::span<const uint8_t> b = bytes(name);
  if (!b.empty()) t.copy_from_host(b.data(), b.size());
  return t;
}

Tensor SafetensorsFile::load_as(const std::string& name, const Shape& expected, DType dtype,
                                Device device, MemCategory category) const {
  const SafetensorsEntry& e = entry(name);
  BR_CHECK(e.shape == expected, "safetensors: {}: tensor '{}' has shape {}, expected {}", path_, name,
           shape_str(e.shape), shape_str(expected));
  std::optional<DType> src = dtype_from_safetensors(e.dtype);
  if (src == dtype) return load(name, device, category);
  if (is_floating(dtype)) {
    Tensor raw = load(name, device, MemCategory::workspace);
    Tensor out = Tensor::empty(expected, dtype, device, category);
    cast(out, raw);
    return out;
  }
  BR_CHECK(src && !is_floating(*src),
           "safetensors: {}: tensor '{}' is {}; it cannot be converted to {}", path_, name, e.dtype,
           dtype_name(dtype));
  Tensor host = Tensor::empty(expected, dtype, Device::cpu,
                              device == Device::cpu ? category : MemCategory::workspace);
  std::string what = fmt::format("safetensors: {}: tensor '{}' ({} to {})", path_, name, e.dtype,
                                 dtype_name(dtype));
  const void* p = bytes(name).data();
  switch (*src) {
    case DType::i32: convert_ints_to<int32_t>(dtype, p, host.raw(), host.numel(), what); break;
    case DType::i64: convert_ints_to<int64_t>(dtype, p, host.raw(), host.numel(), what); break;
    case DType::u8: convert_ints_to<uint8_t>(dtype, p, host.raw(), host.numel(), what); break;
    default: fail("{}: unsupported conversion", what);
  }
  return device == Device::cpu ? host : host.to(device, category);
}

void write_safetensors(const std::string& path,
                       const std::vector<std::pair<std::string, Tensor>>& tensors,
                       const std::map<std::string, std::string>& metadata) {
  std::vector<const std::pair<std::string, Tensor>*> items;
  std::set<std::string> names;
  for (const auto& item : tensors) {
    BR_CHECK(item.second.defined(), "write_safetensors: {}: tensor '{}' is undefined", path,
             item.first);
    BR_CHECK(item.first != "__metadata__", "write_safetensors: {}: '__metadata__' is reserved", path);
    BR_CHECK(names.insert(item.first).second, "write_safetensors: {}: tensor '{}' given twice", path,
             item.first);
    items.push_back(&item);
  }
  std::sort(items.begin(), items.end(), [](const auto* a, const auto* b) {
    int ra = st_dtype_rank(safetensors_dtype_name(a->second.dtype()));
    int rb = st_dtype_rank(safetensors_dtype_name(b->second.dtype()));
    if (ra != rb) return ra > rb;
    return a->first < b->first;
  });

  nlohmann::ordered_json header = nlohmann::ordered_json::object();
  if (!metadata.empty()) {
    nlohmann::ordered_json m = nlohmann::ordered_json::object();
    for (const auto& [k, v] : metadata) m[k] = v;
    header["__metadata__"] = std::move(m);
  }
  uint64_t offset = 0;
  for (const auto* item : items) {
    const Tensor& t = item->second;
    nlohmann::ordered_json info = nlohmann::ordered_json::object();
    info["dtype"] = std::string(safetensors_dtype_name(t.dtype()));
    info["shape"] = t.shape();
    info["data_offsets"] = {offset, offset + t.nbytes()};
    header[item->first] = std::move(info);
    offset += t.nbytes();
  }
  std::string text;
  try {
    text = header.dump();
  } catch (const nlohmann::json::exception& e) {
    fail("write_safetensors: {}: cannot encode the header (tensor names must be UTF-8): {}", path,
         e.what());
  }
  text.append((8 - text.size() % 8) % 8, ' ');

  std::string tmp = path + ".tmp";
  FILE* fp = std::fopen(tmp.c_str(), "wb");
  BR_CHECK(fp, "write_safetensors: cannot create {}: {}", tmp, errno_str());
  auto give_up = [&](const std::string& what) {
    std::string why = errno_str();
    std::fclose(fp);
    std::remove(tmp.c_str());
    fail("write_safetensors: {}: {}: {}", tmp, what, why);
  };
  uint64_t n = text.size();
  if (std::fwrite(&n, 8, 1, fp) != 1 || std::fwrite(text.data(), 1, text.size(), fp) != text.size())
    give_up("writing the header failed");
  for (const auto* item : items) {
    const Tensor& t = item->second;
    if (t.nbytes() == 0) continue;
    Tensor host = t.device() == Device::cpu ? t : t.to(Device::cpu, MemCategory::workspace);
    if (std::fwrite(host.raw(), 1, host.nbytes(), fp) != host.nbytes())
      give_up(fmt::format("writing tensor '{}' failed", item->first));
  }
  if (std::fflush(fp) != 0 || fsync(fileno(fp)) != 0) give_up("flushing failed");
  if (std::fclose(fp) != 0) {
    std::string why = errno_str();
    std::remove(tmp.c_str());
    fail("write_safetensors: {}: closing failed: {}", tmp, why);
  }
  if (std::rename(tmp.c_str(), path.c_str()) != 0) {
    std::string why = errno_str();
    std::remove(tmp.c_str());
    fail("write_safetensors: cannot rename {} to {}: {}", tmp, path, why);
  }
}

}  // namespace br
