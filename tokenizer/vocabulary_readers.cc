#include "tokenizer/vocabulary_readers.h"

#include <cstring>
#include <optional>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "common/mapped_file.h"
#include "common/status_macros.h"
#include "tokenizer/model_proto.h"

namespace tailor {

PieceType InferPieceType(std::string_view piece) {
  if (piece == "<unk>") return PieceType::kUnknown;
  if (piece == "<s>" || piece == "</s>") return PieceType::kControl;
  if (tokenizer_internal::PieceToByte(piece) >= 0) return PieceType::kByte;
  return PieceType::kNormal;
}

absl::StatusOr<Vocabulary> ReadLlama2cVocabulary(const std::filesystem::path& path,
                                                 int32_t vocab_size) {
  const std::string source = path.string();
  if (vocab_size <= 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        source, ": a llama2.c tokenizer does not store its size; the model's vocabulary size "
        "is needed (got ", vocab_size, ")"));
  }
  TAILOR_ASSIGN_OR_RETURN(std::shared_ptr<const MappedFile> file, MappedFile::Open(path));
  const auto* data = reinterpret_cast<const char*>(file->data());
  const size_t size = file->size();
  size_t pos = 0;
  auto truncated = [&](int32_t token, const char* what) {
    return absl::InvalidArgumentError(absl::StrCat(
        source, ": llama2.c tokenizer ends at byte ", pos, " while reading the ", what,
        " of token ", token, ", but the model's vocabulary has ", vocab_size,
        " tokens (file has ", size, " bytes; is it the right tokenizer?)"));
  };
  auto read_i32 = [&](int32_t* v) {
    if (size - pos < 4) return false;
    std::memcpy(v, data + pos, 4);
    pos += 4;
    return true;
  };
  int32_t max_len;
  if (!read_i32(&max_len)) {
    return absl::InvalidArgumentError(
        absl::StrCat(source, ": llama2.c tokenizer is too short (", size, " bytes) for its header"));
  }
  if (max_len <= 0 || static_cast<size_t>(max_len) > size) {
    return absl::InvalidArgumentError(absl::StrCat(
        source, ": not a llama2.c tokenizer (max_token_length is ", max_len, ")"));
  }
  Vocabulary vocab;
  vocab.add_dummy_prefix = true;  // llama2.c's encoder prepends a space
  vocab.pieces.reserve(static_cast<size_t>(vocab_size));
  for (int32_t i = 0; i < vocab_size; ++i) {
    float score;
    if (size - pos < 4) return truncated(i, "score");
    std::memcpy(&score, data + pos, 4);
    pos += 4;
    int32_t len;
    if (!read_i32(&len)) return truncated(i, "length");
    if (len < 0 || static_cast<size_t>(len) > size - pos) {
      pos -= 4;
      if (len < 0) {
        return absl::InvalidArgumentError(absl::StrCat(
            source, ": llama2.c tokenizer token ", i, " at byte ", pos, " has length ", len));
      }
      return truncated(i, "bytes");
    }
    std::string piece(data + pos, static_cast<size_t>(len));
    pos += static_cast<size_t>(len);
    if (piece == "\n<s>\n") piece = "<s>";
    if (piece == "\n</s>\n") piece = "</s>";
    piece = absl::StrReplaceAll(piece, {{" ", "\xE2\x96\x81"}});
    vocab.types.push_back(InferPieceType(piece));
    vocab.pieces.push_back(std::move(piece));
    vocab.scores.push_back(score);
  }
  return vocab;
}

absl::StatusOr<Vocabulary> ReadGgufVocabulary(const GgufFile& gguf) {
  const std::string source = gguf.path().string();
  auto bad = [&](auto&&... what) {
    return absl::InvalidArgumentError(absl::StrCat(source, ": ", what...));
  };
  const std::optional<std::string> model = gguf.GetString("tokenizer.ggml.model");
  if (!model) {
    return bad(gguf.Has("tokenizer.ggml.model") ? "metadata 'tokenizer.ggml.model' is not a string"
                                                : "has no tokenizer (no 'tokenizer.ggml.model' metadata)");
  }
  if (*model != "llama") {
    return bad("tokenizer model '", *model, "' is not supported (supported: \"llama\" ",
               "(SentencePiece), \"gpt2\" (byte-level BPE))");
  }
  std::optional<std::vector<std::string>> tokens = gguf.GetStringArray("tokenizer.ggml.tokens");
  if (!tokens) return bad("metadata 'tokenizer.ggml.tokens' is missing or not an array of strings");
  const size_t n = tokens->size();
  if (n == 0) return bad("metadata 'tokenizer.ggml.tokens' is empty");
  Vocabulary vocab;
  vocab.pieces = std::move(*tokens);
  if (gguf.Has("tokenizer.ggml.scores")) {
    std::optional<std::vector<double>> scores = gguf.GetFloatArray("tokenizer.ggml.scores");
    if (!scores || scores->size() != n) {
      return bad("metadata 'tokenizer.ggml.scores' must be an array of ", n, " numbers (one per token)");
    }
    vocab.scores.assign(scores->begin(), scores->end());
  } else {
    vocab.scores.assign(n, 0.0f);
  }
  if (gguf.Has("tokenizer.ggml.token_type")) {
    std::optional<std::vector<int64_t>> types = gguf.GetIntArray("tokenizer.ggml.token_type");
    if (!types || types->size() != n) {
      return bad("metadata 'tokenizer.ggml.token_type' must be an array of ", n, " integers (one per token)");
    }
    vocab.types.reserve(n);
    for (size_t i = 0; i < n; ++i) {
      const int64_t t = (*types)[i];
      if (t < 0 || t > 6) {
        return bad("token ", i, " has tokenizer.ggml.token_type ", t, "; expected 0..6");
      }
      vocab.types.push_back(t == 0 ? PieceType::kNormal : static_cast<PieceType>(t));
    }
  } else {
    for (const std::string& p : vocab.pieces) vocab.types.push_back(InferPieceType(p));
  }
  if (gguf.Has("tokenizer.ggml.add_space_prefix")) {
    std::optional<bool> add = gguf.GetBool("tokenizer.ggml.add_space_prefix");
    if (!add) return bad("metadata 'tokenizer.ggml.add_space_prefix' is not a bool");
    vocab.add_dummy_prefix = *add;
  }
  return vocab;
}

}  // namespace tailor
