// Text helpers shared by the readers of flags, data files and configs: trimming, Python-style
// number parsing, lower-casing and whole-file reads. Errors are br::Error naming the file or flag.
#pragma once
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace br {

// s without leading and trailing ASCII whitespace (space, \t, \n, \v, \f, \r), as str.strip().
std::string_view trim(std::string_view s);

// s with A-Z mapped to a-z (names of tasks, dtypes, booleans; no Unicode case folding).
std::string ascii_lower(std::string_view s);

// Python int(s): surrounding whitespace, an optional sign, then decimal digits only (no
// underscores); nullopt for anything else or a value outside int64.
std::optional<int64_t> to_int(std::string_view s);
// to_int, or throws "<what>: invalid int value '<s>'" (what names the flag, file:line, ...).
int64_t parse_int(std::string_view s, std::string_view what);

// Python float(s) as strtod reads it: surrounding whitespace, then the whole rest must be a
// number ("nan" and "inf" included; an overflow reads as inf, an underflow as 0); else nullopt.
std::optional<double> to_double(std::string_view s);
// to_double, or throws "<what>: invalid float value '<s>'".
double parse_double(std::string_view s, std::string_view what);

// The whole file as bytes; throws "<path>: cannot open (<reason>)", also for a path holding a NUL
// byte (shown as \0).
std::string read_file(const std::string& path);

}  // namespace br
