// Python's text formats for numbers and JSON, so files and log lines match HF byte for byte:
// repr(float), round(x, n), json.dumps(indent, sort_keys, ensure_ascii) and str(dict).
#pragma once
#include <string>

#include <nlohmann/json.hpp>

namespace br {

// repr(x): shortest round-trip digits; fixed notation when the decimal exponent e satisfies
// -4 <= e < 16 (with ".0" for integral values), else d.ddde+XX; "inf", "-inf", "nan".
std::string python_float_repr(double x);

// round(x, ndigits): correctly rounded, half-to-even on the exact binary value.
double python_round(double x, int ndigits);

// json.dumps(j, indent=indent, sort_keys=...) + nothing: ", " / ": " separators without indent,
// "\n" + spaces with it; floats as repr (NaN, Infinity as Python writes them); non-ASCII escaped
// as \uXXXX. Object keys keep the container's order (nlohmann::json is already sorted;
// ordered_json keeps insertion order). indent < 0 means a single line.
std::string python_json_dumps(const nlohmann::json& j, int indent = -1);
std::string python_json_dumps(const nlohmann::ordered_json& j, int indent = -1);

// str(d) of a flat Python dict: {'loss': 0.6931, 'learning_rate': 2e-05, 'epoch': 0.1}.
std::string python_dict_repr(const nlohmann::ordered_json& d);

}  // namespace br
