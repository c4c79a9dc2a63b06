// What every libFuzzer target here shares: an invariant that fails crashes the process (libFuzzer
// and the ctest replay, tests/fuzz/replay_main.cpp, both report a crash), and the rule that a
// rejected input's br::Error names where it came from. Anything else thrown (std::out_of_range,
// nlohmann::json::exception, ...) escapes LLVMFuzzerTestOneInput and aborts: a parser must turn
// every bad input into a br::Error.
#pragma once
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <optional>
#include <string>
#include <string_view>
#include <utility>

#include "core/error.h"

namespace fuzz {

[[noreturn]] inline void violated(const char* what, std::string_view detail = {}) {
  std::fprintf(stderr, "fuzz: invariant violated: %s\n", what);
  if (!detail.empty()) std::fprintf(stderr, "fuzz: %.*s\n", int(detail.size()), detail.data());
  std::abort();
}

inline void require(bool ok, const char* what, std::string_view detail = {}) {
  if (!ok) violated(what, detail);
}

// A rejection must say which file (or flag) it is about.
inline void require_names(const br::Error& e, std::string_view origin) {
  std::string_view msg = e.what();
  if (msg.find(origin) == std::string_view::npos) violated("the error does not name the input", msg);
}

// The input as text (no copy).
inline std::string_view text(const uint8_t* data, size_t size) {
  return {reinterpret_cast<const char*>(data), size};
}

// Runs a parser: its value, or nullopt when it rejected the input with a br::Error that names
// origin (one that does not is a violation; any other exception escapes and aborts).
template <class Parse>
auto try_parse(std::string_view origin, Parse&& parse) -> std::optional<decltype(parse())> {
  try {
    return parse();
  } catch (const br::Error& e) {
    require_names(e, origin);
    return std::nullopt;
  }
}

// The first byte of an input picks a mode (task, split, command, ...); the rest is the text.
struct Input {
  uint8_t mode = 0;
  std::string text;
  Input(const uint8_t* data, size_t size)
      : mode(size ? data[0] : 0), text(size ? reinterpret_cast<const char*>(data) + 1 : "", size ? size - 1 : 0) {}
};

}  // namespace fuzz
