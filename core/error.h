// One exception type for the whole library; its message names the op, the shapes, the file.
#pragma once
#include <fmt/format.h>
#include <stdexcept>
#include <string>

namespace br {

class Error : public std::runtime_error {
 public:
  explicit Error(const std::string& what) : std::runtime_error(what) {}
};

template <typename... Args>
[[noreturn]] void fail(fmt::format_string<Args...> f, Args&&... args) {
  throw Error(fmt::format(f, std::forward<Args>(args)...));
}

}  // namespace br

// BR_CHECK(cond, "op: message {}", x) throws br::Error with the formatted message when cond is false.
#define BR_CHECK(cond, ...)             \
  do {                                  \
    if (!(cond)) ::br::fail(__VA_ARGS__); \
  } while (0)
