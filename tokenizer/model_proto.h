// sentencepiece's ModelProto, read and written by hand in protobuf wire format (the Debian
// packages ship neither sentencepiece_model.pb.h nor a protobuf compiler).
//
// Field numbers (sentencepiece_model.proto):
//   ModelProto     { repeated SentencePiece pieces = 1; TrainerSpec trainer_spec = 2;
//                    NormalizerSpec normalizer_spec = 3; SelfTestData self_test_data = 4;
//                    NormalizerSpec denormalizer_spec = 5; }
//   SentencePiece  { string piece = 1; float score = 2; Type type = 3 [default NORMAL]; }
//                    Type: NORMAL 1, UNKNOWN 2, CONTROL 3, USER_DEFINED 4, UNUSED 5, BYTE 6
//   TrainerSpec    { ModelType model_type = 3 [UNIGRAM 1, BPE 2, WORD 3, CHAR 4; default 1];
//                    int32 vocab_size = 4; bool treat_whitespace_as_suffix = 24;
//                    bool byte_fallback = 35; int32 unk_id = 40; int32 bos_id = 41;
//                    int32 eos_id = 42; int32 pad_id = 43; string unk_surface = 44;
//                    string unk_piece = 45; string bos_piece = 46; string eos_piece = 47;
//                    string pad_piece = 48; }
//   NormalizerSpec { string name = 1; bytes precompiled_charsmap = 2;
//                    bool add_dummy_prefix = 3 [default true];
//                    bool remove_extra_whitespaces = 4 [default true];
//                    bool escape_whitespaces = 5 [default true]; }
//   tailor's own, in ModelProto's extension range 200..max (SpTokenizer strips it before
//   libsentencepiece reads the model):
//   ModelProto     { TailorOptions tailor_options = 8001; }
//   TailorOptions  { bool add_bos = 1; bool add_eos = 2; }
// Fields not listed are skipped when reading.
#ifndef TAILOR_TOKENIZER_MODEL_PROTO_H_
#define TAILOR_TOKENIZER_MODEL_PROTO_H_

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "common/vocabulary.h"

namespace tailor::tokenizer_internal {

inline constexpr int32_t kModelTypeUnigram = 1;
inline constexpr int32_t kModelTypeBpe = 2;
inline constexpr uint32_t kModelTailorOptions = 8001;

// What tailor needs from a ModelProto. Defaults are the proto's defaults.
struct SpModelInfo {
  Vocabulary vocab;  // pieces, scores, types; add_dummy_prefix from the normalizer spec
  bool has_trainer_spec = false;
  bool has_normalizer_spec = false;
  int32_t model_type = kModelTypeUnigram;
  bool byte_fallback = false;
  bool treat_whitespace_as_suffix = false;
  bool remove_extra_whitespaces = true;
  bool escape_whitespaces = true;
  std::string normalizer_name;
  size_t precompiled_charsmap_bytes = 0;
  size_t denormalizer_charsmap_bytes = 0;
  bool has_unk_surface = false;
  std::string unk_surface = " \xE2\x81\x87 ";  // " ⁇ ", sentencepiece's default
  // From tailor_options (field 8001), when present.
  std::optional<bool> add_bos;
  std::optional<bool> add_eos;
  // Where field 8001 occurs in the input, as [start, end) byte ranges (tag included).
  std::vector<std::pair<size_t, size_t>> tailor_option_ranges;
};

// Parses serialized ModelProto bytes. Errors (InvalidArgument) name `origin`, the byte offset and
// what is malformed; a piece type outside 1..6 is an error.
absl::StatusOr<SpModelInfo> ParseModelProto(std::string_view bytes, const std::string& origin);

// Checks that `vocab` can become a sentencepiece BPE model (non-empty unique pieces, exactly one
// unknown piece, well-formed byte pieces, consistent lengths) and serializes it: model_type BPE,
// byte_fallback iff all 256 <0xXX> byte pieces are present (otherwise byte pieces are stored as
// UNUSED: never produced by encoding, decoded as their literal text), normalizer "identity" with
// the vocabulary's add_dummy_prefix, no extra-whitespace removal, whitespace escaped to U+2581.
absl::StatusOr<std::string> BuildModelProto(const Vocabulary& vocab, const std::string& origin);

// Serialized field 8001 holding `add_bos` and `add_eos`, to append to ModelProto bytes.
std::string SerializeTailorOptions(bool add_bos, bool add_eos);

// 0..255 if `piece` is exactly "<0xXX>" (two uppercase hex digits, as sentencepiece writes them).
int PieceToByte(std::string_view piece);

}  // namespace tailor::tokenizer_internal

#endif  // TAILOR_TOKENIZER_MODEL_PROTO_H_
