#include "train/wordpiece.h"

#include <utf8proc.h>

#include <algorithm>

#include "core/error.h"
#include "core/text.h"

namespace br {
namespace {

constexpr char32_t kReplacement = 0xFFFD;
constexpr size_t kMaxInputCharsPerWord = 100;

// Length of the well-formed UTF-8 sequence at s[i] (Unicode Table 3-7), or 0 when ill-formed.
size_t utf8_sequence_length(std::string_view s, size_t i, char32_t& cp) {
  auto b = [&](size_t k) { return uint8_t(s[i + k]); };
  auto cont = [&](size_t k, uint8_t lo = 0x80, uint8_t hi = 0xBF) {
    return i + k < s.size() && b(k) >= lo && b(k) <= hi;
  };
  uint8_t c = b(0);
  if (c < 0x80) {
    cp = c;
    return 1;
  }
  if (c >= 0xC2 && c <= 0xDF && cont(1)) {
    cp = char32_t(c & 0x1F) << 6 | (b(1) & 0x3F);
    return 2;
  }
  if (c >= 0xE0 && c <= 0xEF) {
    uint8_t lo = c == 0xE0 ? 0xA0 : 0x80, hi = c == 0xED ? 0x9F : 0xBF;
    if (cont(1, lo, hi) && cont(2)) {
      cp = char32_t(c & 0x0F) << 12 | char32_t(b(1) & 0x3F) << 6 | (b(2) & 0x3F);
      return 3;
    }
    return 0;
  }
  if (c >= 0xF0 && c <= 0xF4) {
    uint8_t lo = c == 0xF0 ? 0x90 : 0x80, hi = c == 0xF4 ? 0x8F : 0xBF;
    if (cont(1, lo, hi) && cont(2) && cont(3)) {
      cp = char32_t(c & 0x07) << 18 | char32_t(b(1) & 0x3F) << 12 | char32_t(b(2) & 0x3F) << 6 |
           (b(3) & 0x3F);
      return 4;
    }
  }
  return 0;
}

// bytes.decode("utf-8", errors="replace"): each ill-formed byte becomes U+FFFD. Python emits one
// U+FFFD per maximal ill-formed subpart instead; cleaning drops them all, so the count is moot.
std::u32string decode_utf8(std::string_view s) {
  std::u32string out;
  out.reserve(s.size());
  for (size_t i = 0; i < s.size();) {
    char32_t cp = 0;
    size_t n = utf8_sequence_length(s, i, cp);
    if (n == 0) {
      out.push_back(kReplacement);
      i += 1;
    } else {
      out.push_back(cp);
      i += n;
    }
  }
  return out;
}

void append_utf8(std::string& out, char32_t cp) {
  utf8proc_uint8_t buf[4];
  utf8proc_ssize_t n = utf8proc_encode_char(utf8proc_int32_t(cp), buf);
  out.append(reinterpret_cast<const char*>(buf), size_t(n));
}

std::string encode_utf8(const std::u32string& s) {
  std::string out;
  out.reserve(s.size());
  for (char32_t cp : s) append_utf8(out, cp);
  return out;
}

utf8proc_category_t category(char32_t cp) { return utf8proc_category(utf8proc_int32_t(cp)); }

bool is_other_category(utf8proc_category_t c) {
  return c == UTF8PROC_CATEGORY_CC || c == UTF8PROC_CATEGORY_CF || c == UTF8PROC_CATEGORY_CN ||
         c == UTF8PROC_CATEGORY_CO || c == UTF8PROC_CATEGORY_CS;
}

// BasicTokenizer._is_control: category C*, except \t \n \r.
bool is_control(char32_t cp) {
  if (cp == '\t' || cp == '\n' || cp == '\r') return false;
  return is_other_category(category(cp));
}

// BasicTokenizer._is_whitespace: ' ' \t \n \r or category Zs.
bool is_whitespace(char32_t cp) {
  return cp == ' ' || cp == '\t' || cp == '\n' || cp == '\r' ||
         category(cp) == UTF8PROC_CATEGORY_ZS;
}

// Python str.split() separators left after cleaning: ' ' plus line/paragraph separators.
bool is_split_space(char32_t cp) { return cp == ' ' || cp == 0x2028 || cp == 0x2029; }

bool is_punctuation(char32_t cp) {
  if ((cp >= 33 && cp <= 47) || (cp >= 58 && cp <= 64) || (cp >= 91 && cp <= 96) ||
      (cp >= 123 && cp <= 126))
    return true;
  switch (category(cp)) {
    case UTF8PROC_CATEGORY_PC:
    case UTF8PROC_CATEGORY_PD:
    case UTF8PROC_CATEGORY_PS:
    case UTF8PROC_CATEGORY_PE:
    case UTF8PROC_CATEGORY_PI:
    case UTF8PROC_CATEGORY_PF:
    case UTF8PROC_CATEGORY_PO: return true;
    default: return false;
  }
}

bool is_chinese_char(char32_t cp) {
  return (cp >= 0x4E00 && cp <= 0x9FFF) || (cp >= 0x3400 && cp <= 0x4DBF) ||
         (cp >= 0x20000 && cp <= 0x2A6DF) || (cp >= 0x2A700 && cp <= 0x2B73F) ||
         (cp >= 0x2B740 && cp <= 0x2B81F) || (cp >= 0x2B820 && cp <= 0x2CEAF) ||
         (cp >= 0xF900 && cp <= 0xFAFF) || (cp >= 0x2F800 && cp <= 0x2FA1F);
}

bool is_cased(char32_t cp) {
  auto c = category(cp);
  return c == UTF8PROC_CATEGORY_LU || c == UTF8PROC_CATEGORY_LL || c == UTF8PROC_CATEGORY_LT;
}

// Unicode Case_Ignorable: Mn Me Cf Lm Sk and the Word_Break MidLetter/MidNumLet/Single_Quote chars.
bool is_case_ignorable(char32_t cp) {
  switch (cp) {
    case 0x27: case 0x2E: case 0x3A: case 0xB7: case 0x387: case 0x5F4: case 0x2018:
    case 0x2019: case 0x2024: case 0x2027: case 0xFE13: case 0xFE52: case 0xFE55: case 0xFF07:
    case 0xFF0E: case 0xFF1A: return true;
    default: break;
  }
  auto c = category(cp);
  return c == UTF8PROC_CATEGORY_MN || c == UTF8PROC_CATEGORY_ME || c == UTF8PROC_CATEGORY_CF ||
         c == UTF8PROC_CATEGORY_LM || c == UTF8PROC_CATEGORY_SK;
}

// Python str.lower(): simple lower case per code point, plus the contextual final sigma (Σ after a
// cased letter and not before one becomes ς). İ's full mapping (i + U+0307) only differs by the
// Mn mark that accent stripping removes, so the simple mapping gives the same tokens.
void lower_case(std::u32string& s) {
  std::u32string orig = s;
  for (size_t i = 0; i < s.size(); ++i) {
    if (orig[i] == 0x03A3) {
      bool before = false, after = false;
      for (size_t j = i; j-- > 0;) {
        if (is_case_ignorable(orig[j])) continue;
        before = is_cased(orig[j]);
        break;
      }
      for (size_t j = i + 1; j < orig.size(); ++j) {
        if (is_case_ignorable(orig[j])) continue;
        after = is_cased(orig[j]);
        break;
      }
      s[i] = before && !after ? char32_t(0x03C2) : char32_t(0x03C3);
    } else {
      s[i] = char32_t(utf8proc_tolower(utf8proc_int32_t(orig[i])));
    }
  }
}

// unicodedata.normalize("NFD", w), then drop category Mn.
std::u32string strip_accents(const std::u32string& w) {
  if (std::all_of(w.begin(), w.end(), [](char32_t cp) { return cp < 0x80; })) return w;
  std::string utf8 = encode_utf8(w);
  auto opts = utf8proc_option_t(UTF8PROC_DECOMPOSE | UTF8PROC_STABLE);
  const auto* in = reinterpret_cast<const utf8proc_uint8_t*>(utf8.data());
  std::vector<utf8proc_int32_t> buf(w.size() * 4 + 4);
  utf8proc_ssize_t n =
      utf8proc_decompose(in, utf8proc_ssize_t(utf8.size()), buf.data(), utf8proc_ssize_t(buf.size()), opts);
  if (n > utf8proc_ssize_t(buf.size())) {
    buf.resize(size_t(n));
    n = utf8proc_decompose(in, utf8proc_ssize_t(utf8.size()), buf.data(), n, opts);
  }
  BR_CHECK(n >= 0, "wordpiece: NFD failed: {}", utf8proc_errmsg(n));
  std::u32string out;
  for (utf8proc_ssize_t i = 0; i < n; ++i)
    if (category(char32_t(buf[size_t(i)])) != UTF8PROC_CATEGORY_MN) out.push_back(char32_t(buf[size_t(i)]));
  return out;
}

}  // namespace

std::pair<int64_t, int64_t> truncate_pair_lengths(int64_t a, int64_t b, int64_t budget) {
  BR_CHECK(a >= 0 && b >= 0 && budget >= 0,
           "truncate_pair_lengths: lengths {} and {} with budget {} must be non-negative", a, b,
           budget);
  if (a + b <= budget) return {a, b};
  int64_t s = std::min(a, b);
  if (2 * s <= budget) return a < b ? std::pair{a, budget - a} : std::pair{budget - b, b};
  int64_t half = budget / 2, rest = budget - half;
  return a > b ? std::pair{rest, half} : std::pair{half, rest};
}

WordPieceTokenizer WordPieceTokenizer::from_tokens(std::vector<std::string> tokens,
                                                   bool do_lower_case, const std::string& source) {
  BR_CHECK(!tokens.empty(), "{}: empty vocabulary", source);
  WordPieceTokenizer t;
  t.do_lower_case_ = do_lower_case;
  t.ids_.reserve(tokens.size());
  for (size_t i = 0; i < tokens.size(); ++i) {
    const std::string& tok = tokens[i];
    size_t chars = 0;
    for (size_t k = 0; k < tok.size(); ++chars) {
      char32_t cp = 0;
      size_t len = utf8_sequence_length(tok, k, cp);
      BR_CHECK(len > 0, "{}:{}: token is not valid UTF-8 (byte {})", source, i + 1, k);
      k += len;
    }
    auto [it, inserted] = t.ids_.emplace(tok, int32_t(i));
    BR_CHECK(inserted, "{}:{}: duplicate token '{}' (first at line {})", source, i + 1, tok,
             it->second + 1);
    t.max_token_chars_ = std::max(t.max_token_chars_, chars);
  }
  t.tokens_ = std::move(tokens);
  auto need = [&](const char* name) {
    int32_t id = t.token_to_id(name);
    BR_CHECK(id >= 0, "{}: vocabulary has no {} token", source, name);
    return id;
  };
  t.pad_id_ = need("[PAD]");
  t.unk_id_ = need("[UNK]");
  t.cls_id_ = need("[CLS]");
  t.sep_id_ = need("[SEP]");
  t.mask_id_ = t.token_to_id("[MASK]");
  for (const char* s : {"[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"})
    if (t.token_to_id(s) >= 0) t.specials_.push_back(s);
  return t;
}

WordPieceTokenizer WordPieceTokenizer::from_vocab_file(const std::string& path, bool do_lower_case) {
  return from_vocab_text(read_file(path), do_lower_case, path);
}

WordPieceTokenizer WordPieceTokenizer::from_vocab_text(std::string_view text, bool do_lower_case,
                                                       const std::string& path) {
  BR_CHECK(!text.empty(), "{}:1: empty vocabulary file", path);
  std::vector<std::string> tokens;
  size_t pos = 0;
  while (pos < text.size()) {
    size_t nl = text.find('\n', pos);
    size_t end = nl == std::string::npos ? text.size() : nl;
    std::string line(text.substr(pos, end - pos));
    if (!line.empty() && line.back() == '\r') line.pop_back();
    tokens.push_back(std::move(line));
    pos = end + 1;
  }
  return from_tokens(std::move(tokens), do_lower_case, path);
}

int32_t WordPieceTokenizer::token_to_id(std::string_view token) const {
  auto it = ids_.find(std::string(token));
  return it == ids_.end() ? -1 : it->second;
}

const std::string& WordPieceTokenizer::id_to_token(int32_t id) const {
  BR_CHECK(id >= 0 && id < vocab_size(), "wordpiece: id {} outside the vocabulary [0, {})", id,
           vocab_size());
  return tokens_[size_t(id)];
}

std::vector<std::string> WordPieceTokenizer::basic_tokenize(std::string_view text) const {
  std::u32string cps = decode_utf8(text);
  std::u32string clean;
  clean.reserve(cps.size() + 8);
  for (char32_t cp : cps) {
    if (cp == 0 || cp == kReplacement || is_control(cp)) continue;
    if (is_whitespace(cp)) {
      clean.push_back(' ');
    } else if (is_chinese_char(cp)) {
      clean.push_back(' ');
      clean.push_back(cp);
      clean.push_back(' ');
    } else {
      clean.push_back(cp);
    }
  }
  if (do_lower_case_) lower_case(clean);

  std::vector<std::string> words;
  auto emit_word = [&](const std::u32string& raw) {
    std::u32string w = do_lower_case_ ? strip_accents(raw) : raw;
    std::string piece;
    for (char32_t cp : w) {
      if (is_punctuation(cp)) {
        if (!piece.empty()) words.push_back(std::move(piece));
        piece.clear();
        std::string p;
        append_utf8(p, cp);
        words.push_back(std::move(p));
      } else {
        append_utf8(piece, cp);
      }
    }
    if (!piece.empty()) words.push_back(std::move(piece));
  };
  std::u32string word;
  for (char32_t cp : clean) {
    if (is_split_space(cp)) {
      if (!word.empty()) emit_word(word);
      word.clear();
    } else {
      word.push_back(cp);
    }
  }
  if (!word.empty()) emit_word(word);
  return words;
}

// Greedy longest-match-first over the word's code points; any unmatched rest makes the whole word
// one [UNK], as does a word longer than 100 code points.
void WordPieceTokenizer::wordpiece(const std::string& word, std::vector<std::string>& out) const {
  std::vector<size_t> starts;  // byte offset of each code point, plus the end
  for (size_t i = 0; i < word.size(); ++i)
    if ((uint8_t(word[i]) & 0xC0) != 0x80) starts.push_back(i);
  size_t n = starts.size();
  starts.push_back(word.size());
  if (n > kMaxInputCharsPerWord) {
    out.push_back(tokens_[size_t(unk_id_)]);
    return;
  }
  size_t first = out.size();
  for (size_t start = 0; start < n;) {
    size_t end = std::min(n, start + max_token_chars_);
    bool found = false;
    std::string sub;
    for (; end > start; --end) {
      sub.assign(start > 0 ? "##" : "");
      sub.append(word, starts[start], starts[end] - starts[start]);
      if (ids_.count(sub)) {
        found = true;
        break;
      }
    }
    if (!found) {
      out.resize(first);
      out.push_back(tokens_[size_t(unk_id_)]);
      return;
    }
    out.push_back(std::move(sub));
    start = end;
  }
}

std::vector<std::string> WordPieceTokenizer::tokenize(std::string_view text) const {
  std::vector<std::string> out;
  auto tokenize_segment = [&](std::string_view seg) {
    for (const std::string& w : basic_tokenize(seg)) wordpiece(w, out);
  };
  size_t seg_begin = 0;
  for (size_t i = 0; i < text.size(); ++i) {
    if (text[i] != '[') continue;
    for (const std::string& s : specials_) {
      if (text.compare(i, s.size(), s) == 0) {
        tokenize_segment(text.substr(seg_begin, i - seg_begin));
        out.push_back(s);
        seg_begin = i + s.size();
        i = seg_begin - 1;
        break;
      }
    }
  }
  tokenize_segment(text.substr(seg_begin));
  return out;
}

std::vector<int32_t> WordPieceTokenizer::convert_tokens_to_ids(
    const std::vector<std::string>& tokens) const {
  std::vector<int32_t> ids;
  ids.reserve(tokens.size());
  for (const std::string& t : tokens) {
    int32_t id = token_to_id(t);
    ids.push_back(id >= 0 ? id : unk_id_);
  }
  return ids;
}

std::vector<int32_t> WordPieceTokenizer::encode_ids(std::string_view text) const {
  return convert_tokens_to_ids(tokenize(text));
}

Encoding WordPieceTokenizer::encode(std::string_view a, const std::string* b, int max_length,
                                    bool pad_to_max_length) const {
  int specials = b ? 3 : 2;
  BR_CHECK(max_length >= specials,
           "wordpiece encode: max_length {} leaves no room for the {} special tokens of a {}",
           max_length, specials, b ? "pair" : "single sequence");
  std::vector<int32_t> ia = encode_ids(a);
  std::vector<int32_t> ib = b ? encode_ids(*b) : std::vector<int32_t>{};
  int64_t budget = max_length - specials;
  if (b) {
    auto [ka, kb] = truncate_pair_lengths(int64_t(ia.size()), int64_t(ib.size()), budget);
    ia.resize(size_t(ka));
    ib.resize(size_t(kb));
  } else if (int64_t(ia.size()) > budget) {
    ia.resize(size_t(budget));
  }
  Encoding e;
  size_t n = ia.size() + ib.size() + size_t(specials);
  size_t total = pad_to_max_length ? size_t(max_length) : n;
  e.input_ids.reserve(total);
  e.input_ids.push_back(cls_id_);
  e.input_ids.insert(e.input_ids.end(), ia.begin(), ia.end());
  e.input_ids.push_back(sep_id_);
  e.token_type_ids.assign(e.input_ids.size(), 0);
  if (b) {
    e.input_ids.insert(e.input_ids.end(), ib.begin(), ib.end());
    e.input_ids.push_back(sep_id_);
    e.token_type_ids.resize(e.input_ids.size(), 1);
  }
  e.attention_mask.assign(n, 1);
  e.input_ids.resize(total, pad_id_);
  e.token_type_ids.resize(total, 0);
  e.attention_mask.resize(total, 0);
  return e;
}

int64_t pad_to_longest(std::vector<Encoding>& batch, int32_t pad_id, int64_t multiple_of) {
  BR_CHECK(multiple_of >= 1, "pad_to_longest: multiple_of {} must be >= 1", multiple_of);
  size_t len = 0;
  for (const Encoding& e : batch) {
    BR_CHECK(e.token_type_ids.size() == e.input_ids.size() &&
                 e.attention_mask.size() == e.input_ids.size(),
             "pad_to_longest: encoding has {} ids, {} token types, {} mask entries",
             e.input_ids.size(), e.token_type_ids.size(), e.attention_mask.size());
    len = std::max(len, e.input_ids.size());
  }
  len = (len + size_t(multiple_of) - 1) / size_t(multiple_of) * size_t(multiple_of);
  for (Encoding& e : batch) {
    e.input_ids.resize(len, pad_id);
    e.token_type_ids.resize(len, 0);
    e.attention_mask.resize(len, 0);
  }
  return int64_t(len);
}

}  // namespace br
