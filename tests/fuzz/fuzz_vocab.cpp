// libFuzzer target for vocab.txt (train/wordpiece.h, WordPieceTokenizer::from_vocab_text). The
// first byte's low bit is do_lower_case. An input is rejected with a br::Error naming the file, or
// the vocabulary maps ids and tokens both ways, and encoding text with it (the vocabulary's own
// bytes, a pair, truncated and padded) gives ids inside it.
#include "fuzz.h"
#include "train/wordpiece.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  fuzz::Input in(data, size);
  const std::string path = "fuzz/vocab.txt";
  const std::optional<br::WordPieceTokenizer> tok =
      fuzz::try_parse(path, [&] { return br::WordPieceTokenizer::from_vocab_text(in.text, in.mode & 1, path); });
  if (!tok) return 0;
  const br::WordPieceTokenizer& t = *tok;
  for (int32_t id = 0; id < t.vocab_size(); ++id)
    fuzz::require(t.token_to_id(t.id_to_token(id)) == id, "token_to_id inverts id_to_token");
  for (int32_t id : {t.pad_id(), t.unk_id(), t.cls_id(), t.sep_id()})
    fuzz::require(id >= 0 && id < t.vocab_size(), "the special tokens are in the vocabulary");
  const std::string b = "hello, World! caf\xc3\xa9 \xe6\x88\x91";
  br::Encoding e = t.encode(in.text, &b, 32, true);
  fuzz::require(e.input_ids.size() == 32 && e.token_type_ids.size() == 32 && e.attention_mask.size() == 32,
                "padding to max_length");
  for (int32_t id : e.input_ids) fuzz::require(id >= 0 && id < t.vocab_size(), "ids inside the vocabulary");
  fuzz::require(e.input_ids[0] == t.cls_id(), "[CLS] first");
  return 0;
}
