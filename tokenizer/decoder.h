// The "decoder" of a Hugging Face tokenizer.json (token strings -> text), run incrementally so
// that streaming is exact. Supported types, alone or in a "Sequence":
//   ByteLevel     characters -> bytes (byte_level.h), then UTF-8 with each invalid subpart as
//                 one U+FFFD (Rust's from_utf8_lossy); its output is one token
//   ByteFallback  runs of <0xXX> tokens -> their bytes when they form valid UTF-8, else one
//                 U+FFFD per byte token (as HF)
//   Replace       {"pattern": {"String": ...}, "content"}: in each token
//   Fuse          all tokens become one
//   Strip         {"content", "start", "stop"}: up to `start` leading and `stop` trailing
//                 `content` characters of each token (of the whole text after Fuse)
//   Metaspace     the replacement character -> " ", dropped in the first token unless
//                 prepend_scheme is "never"
// and no decoder at all: tokens joined by single spaces (HF's default). ByteLevel and
// ByteFallback must come before anything that fuses tokens; other orders are refused.
//
// Each stage emits only text that later tokens cannot change, and whole characters only, so the
// concatenated output of a DecodeStream over any split of a token sequence is the whole decode.
#ifndef TAILOR_TOKENIZER_DECODER_H_
#define TAILOR_TOKENIZER_DECODER_H_

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "tokenizer/json_field.h"

namespace tailor::tokenizer_internal {

// The decoder's stages; immutable after Parse and shared (read-only) by every DecodeStream.
class DecoderPipeline {
 public:
  // Reads the "decoder" field (nullopt: absent or null).
  static absl::StatusOr<DecoderPipeline> Parse(const std::optional<JsonField>& field);

  // What one token stands for on its own, as raw bytes: byte-level characters as their bytes,
  // <0xXX> (with ByteFallback) as that byte, replacements and metaspace applied; stripping,
  // fusing and the first-token rule ignored.
  std::string TokenText(std::string_view token) const;

  struct Stage {
    enum class Kind { kByteLevel, kByteFallback, kReplace, kFuse, kStrip, kMetaspace, kJoin };
    Kind kind = Kind::kFuse;
    bool fused_input = false;  // after a stage that makes one token of all
    std::string from, to;      // kReplace: literal pattern, content; kStrip/kMetaspace: `from`
                               // is the character
    size_t strip_start = 0, strip_stop = 0;  // kStrip
    bool drop_in_first = false;              // kMetaspace
  };
  const std::vector<Stage>& stages() const { return stages_; }

 private:
  absl::Status Add(const JsonField& field, bool* fused);
  std::vector<Stage> stages_;
};

// One decoding pass. Holds a pointer to the pipeline, which must outlive it. Copyable (a copy
// continues independently). Not thread-safe; one per sequence.
class DecodeStream {
 public:
  explicit DecodeStream(const DecoderPipeline& pipeline);

  // Feeds the next token string; appends the text that became final.
  void Push(std::string_view token, std::string* out);
  // Ends the sequence: appends what was held (an unfinished UTF-8 character as U+FFFD, ...).
  void Finish(std::string* out);

 private:
  struct Chunk {
    std::string text;
    bool new_token;  // starts a token (false: continues the fused token)
  };
  struct State {
    std::string held;     // text or bytes held back
    size_t count = 0;     // tokens seen (kMetaspace, kJoin, kFuse, kByteLevel) or leading
                          // characters stripped (kStrip on fused input)
    bool flag = false;    // kByteFallback: the run is invalid; kStrip: leading part done
  };
  void Run(size_t first_stage, std::vector<Chunk> chunks, std::string* out);
  void Process(size_t i, Chunk chunk, std::vector<Chunk>* next);
  void FinishStage(size_t i, std::vector<Chunk>* next);

  const DecoderPipeline* pipeline_;
  std::vector<State> states_;
};

}  // namespace tailor::tokenizer_internal

#endif  // TAILOR_TOKENIZER_DECODER_H_
