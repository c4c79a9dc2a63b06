// core/text.h: Python's int() and float() rules, str.strip(), whole-file reads, as the flag,
// data-file, config and checkpoint readers use them.
#include <catch2/catch.hpp>
#include <filesystem>
#include <fstream>
#include <cmath>
#include <limits>
#include <unistd.h>

#include "core/error.h"
#include "core/text.h"

using namespace br;
using Catch::Contains;

TEST_CASE("text: trim, lower, int and float as Python reads them", "[train][text]") {
  CHECK(trim(" \t\r\n\v\f x y \n") == "x y");
  CHECK(trim("   ").empty());
  CHECK(ascii_lower("RTE-MNLI_é") == "rte-mnli_é");
  CHECK(to_int("42") == std::optional<int64_t>(42));
  CHECK(to_int(" -7 ") == std::optional<int64_t>(-7));
  CHECK(to_int("+3") == std::optional<int64_t>(3));
  CHECK(to_int("9223372036854775807") == std::optional<int64_t>(std::numeric_limits<int64_t>::max()));
  for (const char* bad : {"", " ", "+", "-", "1.5", "4x", "1_000", "+-5", "0x10", "9223372036854775808"}) {
    INFO("'" << bad << "'");
    CHECK_FALSE(to_int(bad));
  }
  CHECK(to_double(" 2.5e-3 ") == std::optional<double>(2.5e-3));
  CHECK(to_double(".5") == std::optional<double>(0.5));
  CHECK(std::isinf(*to_double("1e999")));
  CHECK(*to_double("1e-999") == 0.0);
  CHECK(std::isnan(*to_double("nan")));
  for (const char* bad : {"", "fast", "1.5.2", "2e", "1,5"}) {
    INFO("'" << bad << "'");
    CHECK_FALSE(to_double(bad));
  }
  CHECK_THROWS_WITH(parse_int("4x", "--seed"), Contains("--seed: invalid int value '4x'"));
  CHECK_THROWS_WITH(parse_double("fast", "data.csv:3"), Contains("data.csv:3: invalid float value 'fast'"));
}

TEST_CASE("text: read_file returns the bytes or names the file", "[train][text]") {
  auto path = std::filesystem::temp_directory_path() / ("br_text_" + std::to_string(::getpid()));
  std::string bytes("a\0b\r\n\xEF\xBB\xBF", 7);
  std::ofstream(path, std::ios::binary) << bytes;
  CHECK(read_file(path.string()) == bytes);
  std::filesystem::remove(path);
  CHECK_THROWS_WITH(read_file(path.string()), Contains(path.string() + ": cannot open"));
  std::ofstream(path, std::ios::binary) << bytes;
  CHECK_THROWS_WITH(read_file(path.string() + std::string("\0.json", 6)),
                    Contains(path.string() + "\\0.json: cannot open (a path cannot hold a NUL byte)"));
  std::filesystem::remove(path);
}
