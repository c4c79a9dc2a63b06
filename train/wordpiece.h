// BERT WordPiece tokenizer, id-for-id with transformers' BertTokenizer (uncased vocabularies) and
// the fast tokenizer's pair truncation. Spec: reference/hf-run-glue-spec.md §4.
//
// Text pipeline (BasicTokenizer, then WordpieceTokenizer):
//   raw UTF-8 --decode--> code points; an ill-formed byte sequence becomes U+FFFD, as Python's
//     bytes.decode("utf-8", errors="replace"), and is then dropped by cleaning like any U+FFFD
//   special tokens ([PAD] [UNK] [CLS] [SEP] [MASK]) written in the text are matched first, exactly
//   clean: drop U+0000, U+FFFD and category C* except \t \n \r; ' ' \t \n \r and Zs become ' '
//   CJK ideographs get a space on both sides
//   split on whitespace (also U+2028/U+2029, which Python's str.split treats as whitespace)
//   per piece, when do_lower_case: full lower case (final sigma included), NFD, drop Mn
//   split off every punctuation char (ASCII 33-47, 58-64, 91-96, 123-126, or category P*)
//   WordPiece: greedy longest match, "##" continuation; > 100 chars or any unmatched rest: [UNK]
#pragma once
#include <cstdint>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace br {

// One encoded example: [CLS] A [SEP] (B [SEP]), then [PAD] to max_length when padding.
struct Encoding {
  std::vector<int32_t> input_ids, token_type_ids, attention_mask;
};

// Fast-tokenizer longest_first truncation of a pair with lengths (a, b) into `budget` tokens:
// untouched if a + b <= budget; else the shorter stays whole if 2*min <= budget and the longer
// gets budget - min; else the shorter gets budget/2 and the longer budget/2 + budget%2, the
// second counting as the longer on a tie. Returns the kept lengths (first, second).
std::pair<int64_t, int64_t> truncate_pair_lengths(int64_t a, int64_t b, int64_t budget);

class WordPieceTokenizer {
 public:
  // vocab.txt: one token per line, id = 0-based line number; "\r\n" endings accepted. Throws
  // naming path:line for an unreadable or empty file, invalid UTF-8, a duplicate token, or a
  // missing [PAD]/[UNK]/[CLS]/[SEP].
  static WordPieceTokenizer from_vocab_file(const std::string& path, bool do_lower_case = true);
  // The same from the file's bytes; `source` names it in errors (the fuzz target's entry).
  static WordPieceTokenizer from_vocab_text(std::string_view text, bool do_lower_case = true,
                                            const std::string& source = "<vocab>");
  // The same from tokens in id order; `source` names them in errors.
  static WordPieceTokenizer from_tokens(std::vector<std::string> tokens, bool do_lower_case = true,
                                        const std::string& source = "<tokens>");

  // BasicTokenizer only: cleaned, lower-cased, accent-stripped, punctuation-split words.
  std::vector<std::string> basic_tokenize(std::string_view text) const;
  // Full tokenization into vocabulary pieces ("##" marks a continuation).
  std::vector<std::string> tokenize(std::string_view text) const;
  // Vocabulary ids; a token not in the vocabulary maps to [UNK].
  std::vector<int32_t> convert_tokens_to_ids(const std::vector<std::string>& tokens) const;
  // tokenize + convert_tokens_to_ids, without special tokens.
  std::vector<int32_t> encode_ids(std::string_view text) const;

  // tokenizer(a, b, max_length=max_length, truncation=True, padding="max_length" if pad else
  // False): ids with [CLS]/[SEP], token types 0 for A and 1 for B, mask 1 for real tokens.
  // b == nullptr encodes a single sequence. max_length must leave room for the special tokens.
  Encoding encode(std::string_view a, const std::string* b, int max_length,
                  bool pad_to_max_length) const;

  int32_t token_to_id(std::string_view token) const;  // -1 when absent
  const std::string& id_to_token(int32_t id) const;
  int32_t vocab_size() const { return int32_t(tokens_.size()); }
  bool do_lower_case() const { return do_lower_case_; }
  int32_t pad_id() const { return pad_id_; }
  int32_t unk_id() const { return unk_id_; }
  int32_t cls_id() const { return cls_id_; }
  int32_t sep_id() const { return sep_id_; }
  int32_t mask_id() const { return mask_id_; }  // -1 when the vocabulary has no [MASK]

 private:
  WordPieceTokenizer() = default;
  void wordpiece(const std::string& word, std::vector<std::string>& out) const;

  std::vector<std::string> tokens_;
  std::unordered_map<std::string, int32_t> ids_;
  std::vector<std::string> specials_;  // special-token strings matched in raw text
  bool do_lower_case_ = true;
  int32_t pad_id_ = -1, unk_id_ = -1, cls_id_ = -1, sep_id_ = -1, mask_id_ = -1;
  size_t max_token_chars_ = 0;
};

// Pads every encoding to the batch's longest, rounded up to a multiple of `multiple_of`
// (DataCollatorWithPadding; run_glue uses 8 under --fp16): ids `pad_id`, types 0, mask 0.
// Returns that length.
int64_t pad_to_longest(std::vector<Encoding>& batch, int32_t pad_id = 0, int64_t multiple_of = 1);

}  // namespace br
