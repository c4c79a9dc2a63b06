// libFuzzer target for a checkpoint's manifest.json (train/checkpoint_io.h, parse_manifest, the
// parser verify_checkpoint checks a folder with). An input is rejected with a br::Error naming the
// file, or every entry names a plain file inside the checkpoint folder with a non-negative size and
// a 32-hex-digit digest, each name once.
#include <set>

#include "fuzz.h"
#include "train/checkpoint_io.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string path = "fuzz/checkpoint-1/manifest.json";
  const auto files = fuzz::try_parse(path, [&] { return br::parse_manifest(fuzz::text(data, size), path); });
  if (!files) return 0;
  std::set<std::string> seen;
  for (const br::ManifestEntry& f : *files) {
    fuzz::require(seen.insert(f.file).second, "each file once");
    fuzz::require(!f.file.empty() && f.file.find('/') == std::string::npos && f.file != "." && f.file != ".." &&
                      br::fs::path(f.file).filename() == f.file,
                  "a plain name inside the folder", f.file);
    fuzz::require(f.bytes >= 0, "a size is non-negative");
    fuzz::require(f.xxh3_128.size() == 32 && f.xxh3_128.find_first_not_of("0123456789abcdef") == std::string::npos,
                  "a digest is 32 hex digits", f.xxh3_128);
  }
  return 0;
}
