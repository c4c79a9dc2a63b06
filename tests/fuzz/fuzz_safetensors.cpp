// libFuzzer target for the safetensors reader (models/safetensors.h, SafetensorsFile::from_bytes).
// An input is rejected with a br::Error naming the file, or it parses into entries that satisfy the
// format's invariants; a parsed file with loadable dtypes must survive write -> read unchanged.
#include <unistd.h>

#include <cstring>
#include <vector>

#include "fuzz.h"
#include "models/safetensors.h"

namespace {

std::string scratch_path() {
  const char* dir = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp";
  return std::string(dir) + "/fuzz_safetensors_" + std::to_string(getpid()) + ".safetensors";
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string origin = "fuzz/model.safetensors";
  const std::optional<br::SafetensorsFile> file = fuzz::try_parse(
      origin, [&] { return br::SafetensorsFile::from_bytes(std::vector<uint8_t>(data, data + size), origin); });
  if (!file) return 0;
  const br::SafetensorsFile& f = *file;
  uint64_t header = 0;
  std::memcpy(&header, data, 8);
  uint64_t pos = 0;
  bool loadable = true;
  std::vector<std::pair<std::string, br::Tensor>> tensors;
  for (const br::SafetensorsEntry& e : f.entries()) {
    fuzz::require(e.begin == pos && e.end >= e.begin, "entries tile the data buffer in order");
    pos = e.end;
    fuzz::require(f.has(e.name) && &f.entry(e.name) == &e, "index finds every entry");
    std::span<const uint8_t> b = f.bytes(e.name);
    fuzz::require(b.size() == e.nbytes(), "bytes() spans the entry");
    fuzz::require(b.empty() || (b.data() >= f.bytes(f.entries().front().name).data()), "bytes() in buffer");
    try {
      br::Tensor t = f.load(e.name);
      fuzz::require(t.nbytes() == e.nbytes() && t.shape() == e.shape, "load gives the entry's shape");
      fuzz::require(t.nbytes() == 0 || std::memcmp(t.raw(), b.data(), b.size()) == 0, "load copies the bytes");
      tensors.push_back({e.name, t});
    } catch (const br::Error&) {
      fuzz::require(!br::dtype_from_safetensors(e.dtype).has_value(), "only unsupported dtypes fail to load");
      loadable = false;
    }
  }
  fuzz::require(8 + header + pos == size, "the tensors end where the file ends");

  if (loadable) {
    std::string path = scratch_path();
    try {
      br::write_safetensors(path, tensors, f.metadata());
    } catch (const br::Error&) {
      return 0;  // a name or metadata that is not valid UTF-8 cannot be re-encoded
    }
    br::SafetensorsFile g = br::SafetensorsFile::open(path);
    fuzz::require(g.entries().size() == f.entries().size(), "round trip keeps every tensor");
    fuzz::require(g.metadata() == f.metadata(), "round trip keeps the metadata");
    for (const br::SafetensorsEntry& e : f.entries()) {
      const br::SafetensorsEntry& h = g.entry(e.name);
      fuzz::require(h.dtype == e.dtype && h.shape == e.shape, "round trip keeps dtype and shape");
      std::span<const uint8_t> x = f.bytes(e.name), y = g.bytes(e.name);
      fuzz::require(x.size() == y.size() && (x.empty() || std::memcmp(x.data(), y.data(), x.size()) == 0),
              "round trip keeps the bytes");
    }
    std::remove(path.c_str());
  }
  return 0;
}
