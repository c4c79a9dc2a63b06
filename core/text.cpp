#include "core/text.h"

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>

#include "core/error.h"

namespace br {

namespace {
bool is_space(char c) {
  return c == ' ' || c == '\t' || c == '\n' || c == '\v' || c == '\f' || c == '\r';
}
}  // namespace

std::string_view trim(std::string_view s) {
  while (!s.empty() && is_space(s.front())) s.remove_prefix(1);
  while (!s.empty() && is_space(s.back())) s.remove_suffix(1);
  return s;
}

std::string ascii_lower(std::string_view s) {
  std::string out(s);
  for (char& c : out)
    if (c >= 'A' && c <= 'Z') c = char(c - 'A' + 'a');
  return out;
}

std::optional<int64_t> to_int(std::string_view s) {
  const std::string str(trim(s));
  const size_t digits = (!str.empty() && (str[0] == '+' || str[0] == '-')) ? 1 : 0;
  if (digits == str.size() ||
      !std::all_of(str.begin() + long(digits), str.end(), [](char c) { return c >= '0' && c <= '9'; }))
    return std::nullopt;
  errno = 0;
  long long v = std::strtoll(str.c_str(), nullptr, 10);
  if (errno == ERANGE) return std::nullopt;
  return int64_t(v);
}

int64_t parse_int(std::string_view s, std::string_view what) {
  std::optional<int64_t> v = to_int(s);
  if (!v) fail("{}: invalid int value '{}'", what, s);
  return *v;
}

std::optional<double> to_double(std::string_view s) {
  const std::string str(trim(s));
  if (str.empty()) return std::nullopt;
  char* end = nullptr;
  double v = std::strtod(str.c_str(), &end);
  if (end != str.c_str() + str.size()) return std::nullopt;
  return v;
}

double parse_double(std::string_view s, std::string_view what) {
  std::optional<double> v = to_double(s);
  if (!v) fail("{}: invalid float value '{}'", what, s);
  return *v;
}

std::string read_file(const std::string& path) {
  // The OS reads a path up to its first NUL: "a.bin\0.json" would open a.bin under another name.
  if (path.find('\0') != std::string::npos) {
    std::string shown;
    for (char c : path) shown += c ? std::string(1, c) : std::string("\\0");
    fail("{}: cannot open (a path cannot hold a NUL byte)", shown);
  }
  std::ifstream in(path, std::ios::binary);
  if (!in) fail("{}: cannot open ({})", path, std::strerror(errno));
  std::ostringstream s;
  s << in.rdbuf();
  BR_CHECK(!in.bad(), "{}: read error", path);
  return s.str();
}

}  // namespace br
