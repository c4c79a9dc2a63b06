#include "train/pyformat.h"

#include <charconv>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <string_view>

#include <fmt/format.h>

#include "core/error.h"

namespace br {

std::string python_float_repr(double x) {
  if (std::isnan(x)) return "nan";
  if (std::isinf(x)) return x > 0 ? "inf" : "-inf";
  if (x == 0) return std::signbit(x) ? "-0.0" : "0.0";
  char buf[64];
  auto r = std::to_chars(buf, buf + sizeof buf, x, std::chars_format::scientific);
  std::string_view s(buf, size_t(r.ptr - buf));
  std::string sign;
  if (s[0] == '-') {
    sign = "-";
    s.remove_prefix(1);
  }
  size_t e_pos = s.find('e');
  std::string digits;
  for (char c : s.substr(0, e_pos))
    if (c != '.') digits += c;
  int exp = std::atoi(std::string(s.substr(e_pos + 1)).c_str());
  std::string out;
  if (exp >= -4 && exp < 16) {
    if (exp < 0) {
      out = "0." + std::string(size_t(-exp - 1), '0') + digits;
    } else if (size_t(exp) + 1 >= digits.size()) {
      out = digits + std::string(size_t(exp) + 1 - digits.size(), '0') + ".0";
    } else {
      out = digits.substr(0, size_t(exp) + 1) + "." + digits.substr(size_t(exp) + 1);
    }
  } else {
    out = digits.substr(0, 1);
    if (digits.size() > 1) out += "." + digits.substr(1);
    out += fmt::format("e{}{:02d}", exp < 0 ? '-' : '+', std::abs(exp));
  }
  return sign + out;
}

double python_round(double x, int ndigits) {
  if (!std::isfinite(x)) return x;
  BR_CHECK(ndigits >= 0 && ndigits <= 17, "python_round: ndigits {} out of range [0,17]", ndigits);
  char buf[400];
  std::snprintf(buf, sizeof buf, "%.*f", ndigits, x);
  return std::strtod(buf, nullptr);
}

namespace {

void append_string(std::string& out, const std::string& s) {
  out += '"';
  for (size_t i = 0; i < s.size();) {
    unsigned char c = static_cast<unsigned char>(s[i]);
    uint32_t cp = c;
    size_t len = 1;
    if (c >= 0x80) {
      if ((c & 0xe0) == 0xc0) len = 2, cp = c & 0x1f;
      else if ((c & 0xf0) == 0xe0) len = 3, cp = c & 0x0f;
      else if ((c & 0xf8) == 0xf0) len = 4, cp = c & 0x07;
      else fail("python_json_dumps: invalid UTF-8 byte 0x{:02x} in string", c);
      BR_CHECK(i + len <= s.size(), "python_json_dumps: truncated UTF-8 sequence in string");
      for (size_t k = 1; k < len; ++k) cp = (cp << 6) | (static_cast<unsigned char>(s[i + k]) & 0x3f);
    }
    i += len;
    switch (cp) {
      case '"': out += "\\\""; continue;
      case '\\': out += "\\\\"; continue;
      case '\n': out += "\\n"; continue;
      case '\r': out += "\\r"; continue;
      case '\t': out += "\\t"; continue;
      case '\b': out += "\\b"; continue;
      case '\f': out += "\\f"; continue;
      default: break;
    }
    if (cp < 0x20 || (cp >= 0x7f && cp < 0x10000)) {
      out += fmt::format("\\u{:04x}", cp);
    } else if (cp >= 0x10000) {
      uint32_t v = cp - 0x10000;
      out += fmt::format("\\u{:04x}\\u{:04x}", 0xd800 + (v >> 10), 0xdc00 + (v & 0x3ff));
    } else {
      out += char(cp);
    }
  }
  out += '"';
}

template <typename Json>
void dump(std::string& out, const Json& j, int indent, int depth) {
  auto newline = [&](int d) {
    if (indent >= 0) {
      out += '\n';
      out += std::string(size_t(indent * d), ' ');
    }
  };
  const char* item_sep = indent >= 0 ? "," : ", ";
  switch (j.type()) {
    case nlohmann::json::value_t::null: out += "null"; break;
    case nlohmann::json::value_t::boolean: out += j.template get<bool>() ? "true" : "false"; break;
    case nlohmann::json::value_t::number_integer: out += std::to_string(j.template get<int64_t>()); break;
    case nlohmann::json::value_t::number_unsigned: out += std::to_string(j.template get<uint64_t>()); break;
    case nlohmann::json::value_t::number_float: {
      double v = j.template get<double>();
      out += std::isnan(v) ? "NaN" : std::isinf(v) ? (v > 0 ? "Infinity" : "-Infinity") : python_float_repr(v);
      break;
    }
    case nlohmann::json::value_t::string: append_string(out, j.template get<std::string>()); break;
    case nlohmann::json::value_t::array: {
      if (j.empty()) {
        out += "[]";
        break;
      }
      out += '[';
      bool first = true;
      for (const auto& e : j) {
        if (!first) out += item_sep;
        first = false;
        newline(depth + 1);
        dump(out, e, indent, depth + 1);
      }
      newline(depth);
      out += ']';
      break;
    }
    case nlohmann::json::value_t::object: {
      if (j.empty()) {
        out += "{}";
        break;
      }
      out += '{';
      bool first = true;
      for (auto it = j.begin(); it != j.end(); ++it) {
        if (!first) out += item_sep;
        first = false;
        newline(depth + 1);
        append_string(out, it.key());
        out += ": ";
        dump(out, it.value(), indent, depth + 1);
      }
      newline(depth);
      out += '}';
      break;
    }
    default: fail("python_json_dumps: unsupported JSON value {}", j.dump());
  }
}

std::string python_str_literal(const std::string& s) {
  // repr(str) for the ASCII keys and values HF logs: single quotes unless the text holds one.
  char q = s.find('\'') != std::string::npos && s.find('"') == std::string::npos ? '"' : '\'';
  std::string out(1, q);
  for (char c : s) {
    if (c == '\\' || c == q) out += '\\';
    if (c == '\n') {
      out += "\\n";
      continue;
    }
    out += c;
  }
  out += q;
  return out;
}

}  // namespace

std::string python_json_dumps(const nlohmann::json& j, int indent) {
  std::string out;
  dump(out, j, indent, 0);
  return out;
}

std::string python_json_dumps(const nlohmann::ordered_json& j, int indent) {
  std::string out;
  dump(out, j, indent, 0);
  return out;
}

std::string python_dict_repr(const nlohmann::ordered_json& d) {
  BR_CHECK(d.is_object(), "python_dict_repr: expected an object, got {}", d.dump());
  std::string out = "{";
  bool first = true;
  for (auto it = d.begin(); it != d.end(); ++it) {
    if (!first) out += ", ";
    first = false;
    out += python_str_literal(it.key()) + ": ";
    const auto& v = it.value();
    if (v.is_string()) out += python_str_literal(v.get<std::string>());
    else if (v.is_number_float()) out += python_float_repr(v.get<double>());
    else if (v.is_boolean()) out += v.get<bool>() ? "True" : "False";
    else if (v.is_null()) out += "None";
    else if (v.is_number()) out += v.dump();
    else fail("python_dict_repr: '{}' holds a nested value {}", it.key(), v.dump());
  }
  return out + "}";
}

}  // namespace br
