// libFuzzer target for the WordPiece tokenizer (train/wordpiece.h) over arbitrary bytes, with the
// test vocabulary tests/data/tiny_vocab.txt (CJK, accents, final sigma, "##" pieces). The first
// byte: bit 0 do_lower_case, bit 1 a pair (the text splits at its first tab), bit 2 padding, bits
// 3-7 max_length - 3. Invariants: every word of basic_tokenize is non-empty valid UTF-8 without
// whitespace; every piece of tokenize is in the vocabulary or [UNK]; encode gives [CLS] A [SEP]
// (B [SEP]), at most max_length ids, types 0 then 1, and the mask marking exactly the real tokens.
#include <algorithm>
#include <cstring>

#include "fuzz.h"
#include "train/wordpiece.h"

#ifndef BERTRAZOR_SOURCE_DIR
#error "BERTRAZOR_SOURCE_DIR must name the source tree (tests/data/tiny_vocab.txt)"
#endif

namespace {

const br::WordPieceTokenizer& tokenizer(bool lower) {
  static const br::WordPieceTokenizer cased = br::WordPieceTokenizer::from_vocab_file(
      BERTRAZOR_SOURCE_DIR "/tests/data/tiny_vocab.txt", false);
  static const br::WordPieceTokenizer uncased = br::WordPieceTokenizer::from_vocab_file(
      BERTRAZOR_SOURCE_DIR "/tests/data/tiny_vocab.txt", true);
  return lower ? uncased : cased;
}

bool valid_utf8_without_space(const std::string& s) {
  for (size_t i = 0; i < s.size();) {
    unsigned char c = static_cast<unsigned char>(s[i]);
    size_t n = c < 0x80 ? 1 : (c >> 5) == 6 ? 2 : (c >> 4) == 14 ? 3 : (c >> 3) == 30 ? 4 : 0;
    if (n == 0 || i + n > s.size()) return false;
    for (size_t k = 1; k < n; ++k)
      if ((static_cast<unsigned char>(s[i + k]) >> 6) != 2) return false;
    if (n == 1 && (c == ' ' || c == '\t' || c == '\n' || c == '\r')) return false;
    i += n;
  }
  return true;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  fuzz::Input in(data, size);
  const br::WordPieceTokenizer& t = tokenizer(in.mode & 1);
  const bool pair = in.mode & 2, pad = in.mode & 4;
  const int max_length = 3 + (in.mode >> 3);
  std::string a = in.text, b;
  if (pair) {
    size_t tab = a.find('\t');
    if (tab != std::string::npos) {
      b = a.substr(tab + 1);
      a.resize(tab);
    }
  }
  for (const std::string& w : t.basic_tokenize(a))
    fuzz::require(!w.empty() && valid_utf8_without_space(w), "basic_tokenize gives non-empty UTF-8 words", w);
  const std::vector<std::string> pieces = t.tokenize(a);
  for (const std::string& p : pieces) fuzz::require(t.token_to_id(p) >= 0, "every piece is in the vocabulary", p);
  const std::vector<int32_t> ids_a = t.encode_ids(a), ids_b = t.encode_ids(b);
  fuzz::require(ids_a.size() == pieces.size(), "encode_ids is tokenize + convert_tokens_to_ids");

  br::Encoding e = t.encode(a, pair ? &b : nullptr, max_length, pad);
  const size_t n = e.input_ids.size();
  fuzz::require(n == e.token_type_ids.size() && n == e.attention_mask.size(), "three equal lengths");
  fuzz::require(n <= size_t(max_length) && (!pad || n == size_t(max_length)), "at most (padding: exactly) max_length");
  const size_t specials = pair ? 3 : 2;
  const auto [ka, kb] = br::truncate_pair_lengths(int64_t(ids_a.size()), pair ? int64_t(ids_b.size()) : 0,
                                                  max_length - int64_t(specials));
  fuzz::require(ka <= int64_t(ids_a.size()) && kb <= int64_t(ids_b.size()) &&
                    ka + kb <= max_length - int64_t(specials), "truncation keeps within the budget");
  const size_t real = specials + size_t(ka) + size_t(kb);
  fuzz::require(real <= n, "the real tokens fit");
  fuzz::require(e.input_ids[0] == t.cls_id() && e.input_ids[1 + size_t(ka)] == t.sep_id(), "[CLS] A [SEP]");
  fuzz::require(std::equal(ids_a.begin(), ids_a.begin() + ka, e.input_ids.begin() + 1), "A's first ids kept");
  if (pair) {
    fuzz::require(e.input_ids[real - 1] == t.sep_id(), "(B [SEP])");
    fuzz::require(std::equal(ids_b.begin(), ids_b.begin() + kb, e.input_ids.begin() + 2 + ka), "B's first ids kept");
  }
  for (size_t i = 0; i < n; ++i) {
    fuzz::require(e.attention_mask[i] == (i < real ? 1 : 0), "the mask marks the real tokens");
    fuzz::require(e.token_type_ids[i] == (pair && i >= 2 + size_t(ka) && i < real ? 1 : 0), "types 0 then 1");
    if (i >= real) fuzz::require(e.input_ids[i] == t.pad_id(), "[PAD] after the real tokens");
  }
  return 0;
}
