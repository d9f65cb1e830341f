// llama2.c checkpoints: the legacy export (7 int32 header, float32 weights, negative vocab_size
// meaning an unshared classifier) and version 1 of the "ak42" export (256-byte header, fp32).
// Both use rope on interleaved pairs, theta 10000, rms eps 1e-5; stories end with BOS.
#include <cstdint>
#include <cstring>
#include <map>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/status_macros.h"
#include "models/decoder_blocks.h"
#include "models/loader_util.h"

namespace tailor::loader {
namespace {

namespace fs = std::filesystem;

constexpr uint32_t kMagicV1 = 0x616b3432;  // "ak42"

// Hands out consecutive float32 matrices of the file, in order.
class Cursor {
 public:
  Cursor(const std::byte* p) : p_(p) {}
  WeightView Take(int64_t rows, int64_t cols) {
    WeightView v{DType::kF32, rows, cols, p_};
    p_ += rows * cols * 4;
    return v;
  }
  void Skip(int64_t floats) { p_ += floats * 4; }

 private:
  const std::byte* p_;
};

}  // namespace

absl::StatusOr<std::unique_ptr<Model>> LoadLlama2c(const fs::path& file,
                                                        const LoadOptions& options) {
  TAILOR_ASSIGN_OR_RETURN(auto mapped, MappedFile::Open(file));
  return LoadLlama2c(std::move(mapped), options);
}

absl::StatusOr<std::unique_ptr<Model>> LoadLlama2c(std::shared_ptr<const MappedFile> mapped,
                                                        const LoadOptions& options) {
  const fs::path file = mapped->path();
  const std::string source = file.string();
  const size_t size = mapped->size();
  int32_t h[7];
  size_t header_bytes = 28;
  int version = 0;
  bool shared = true;
  uint32_t magic = 0;
  if (size >= 4) std::memcpy(&magic, mapped->data(), 4);
  if (magic == kMagicV1) {
    if (size < 256) {
      return absl::InvalidArgumentError(
          absl::StrCat(source, ": truncated llama2.c checkpoint (", size, " bytes; header is 256)"));
    }
    std::memcpy(&version, mapped->data() + 4, 4);
    if (version != 1) {
      return absl::InvalidArgumentError(absl::StrCat(
          source, ": llama2.c export version ", version, " is not supported (only 1: fp32)"));
    }
    std::memcpy(h, mapped->data() + 8, 28);
    shared = static_cast<uint8_t>(mapped->data()[36]) != 0;
    header_bytes = 256;
  } else {
    if (size < 28) {
      return absl::InvalidArgumentError(absl::StrCat(
          source, ": not a model file: ", size, " bytes, too short for a llama2.c header (28)"));
    }
    std::memcpy(h, mapped->data(), 28);
    shared = h[5] > 0;
    // A negative vocab size flags unshared classifier weights; INT32_MIN has no magnitude in
    // int32 (negating it is undefined), so it becomes 0 and the check below refuses it.
    if (h[5] < 0) h[5] = h[5] == INT32_MIN ? 0 : -h[5];
  }
  ModelConfig c;
  c.dim = h[0];
  c.ffn_dim = h[1];
  c.n_layers = h[2];
  c.n_heads = h[3];
  c.n_kv_heads = h[4];
  c.vocab_size = h[5];
  c.max_positions = h[6];
  auto plausible = [](int32_t v, int32_t max) { return v > 0 && v <= max; };
  if (!plausible(c.dim, 1 << 16) || !plausible(c.ffn_dim, 1 << 18) ||
      !plausible(c.n_layers, 1024) || !plausible(c.n_heads, 1024) ||
      !plausible(c.n_kv_heads, 1024) || !plausible(c.vocab_size, 1 << 22) ||
      !plausible(c.max_positions, 1 << 22) || c.dim % c.n_heads != 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        source, ": not a llama2.c checkpoint, GGUF file or Hugging Face directory (wrong magic "
                "number; a llama2.c header would read dim ", h[0], ", hidden ", h[1], ", layers ",
        h[2], ", heads ", h[3], ", kv heads ", h[4], ", vocab ", h[5], ", seq_len ", h[6], ")"));
  }
  c.head_dim = c.dim / c.n_heads;
  c.rms_eps = 1e-5f;
  c.rope_theta = 10000.0f;
  c.rope_layout = RopeLayout::kInterleaved;
  c.tied_embeddings = shared;
  c.bos_id = 1;
  c.eos_ids = {2, 1};  // llama2.c stories end by emitting BOS
  c.name = file.stem().string();
  c.architecture = "llama2.c";
  TAILOR_RETURN_IF_ERROR(ValidateConfig(c, source));

  const int64_t L = c.n_layers, D = c.dim, F = c.ffn_dim, V = c.vocab_size;
  const int64_t Q = c.q_dim(), KV = c.kv_dim();
  int64_t floats = V * D + L * D * 2 + L * D * (Q + 2 * KV) + L * Q * D + L * 3 * D * F + D;
  if (version == 0) floats += static_cast<int64_t>(c.max_positions) * c.head_dim;  // freq_cis
  if (!shared) floats += V * D;
  const uint64_t expected = header_bytes + static_cast<uint64_t>(floats) * 4;
  if (size != expected) {
    return absl::InvalidArgumentError(absl::StrCat(
        source, size < expected ? ": truncated llama2.c checkpoint: " : ": corrupt llama2.c checkpoint: ",
        size, " bytes, but its header (dim ", D, ", layers ", L, ", vocab ", V, ") implies ",
        expected));
  }

  auto model = std::make_unique<Model>();
  model->config = c;
  model->format = ModelFormat::kLlama2c;
  model->source = file;
  // The file's tensors in order; per-layer tensors are stored layer after layer for each kind.
  std::map<std::string, WeightView> views;
  Cursor cur(mapped->data() + header_bytes);
  auto take_layers = [&](const char* suffix, int64_t rows, int64_t cols) {
    for (int64_t l = 0; l < L; ++l) views[blocks::LayerName(static_cast<int32_t>(l), suffix)] = cur.Take(rows, cols);
  };
  auto take_matrices = [&] {
    take_layers("attn_q.weight", Q, D);
    take_layers("attn_k.weight", KV, D);
    take_layers("attn_v.weight", KV, D);
    take_layers("attn_output.weight", D, Q);
  };
  auto take_mlp = [&] {
    take_layers("ffn_gate.weight", F, D);
    take_layers("ffn_down.weight", D, F);
    take_layers("ffn_up.weight", F, D);
  };
  if (version == 0) {
    views["token_embd.weight"] = cur.Take(V, D);
    take_layers("attn_norm.weight", 1, D);
    take_matrices();
    take_layers("ffn_norm.weight", 1, D);
    take_mlp();
    views["output_norm.weight"] = cur.Take(1, D);
    cur.Skip(static_cast<int64_t>(c.max_positions) * c.head_dim);
  } else {
    take_layers("attn_norm.weight", 1, D);
    take_layers("ffn_norm.weight", 1, D);
    views["output_norm.weight"] = cur.Take(1, D);
    views["token_embd.weight"] = cur.Take(V, D);
    take_matrices();
    take_mlp();
  }
  if (!shared) views["output.weight"] = cur.Take(V, D);
  model->files.push_back(std::move(mapped));
  SetFamily(model.get(), *FindFamily("llama"));
  TAILOR_RETURN_IF_ERROR(TakeWeights(model.get(), source, [&](const TensorDesc& t) -> absl::StatusOr<WeightView> {
    auto it = views.find(t.name);
    if (it == views.end()) return absl::InternalError(absl::StrCat(source, ": no tensor '", t.name, "'"));
    return it->second;
  }));

  if (options.tokenizer) {
    model->tokenizer_path = *options.tokenizer;
  } else {
    const fs::path dir = file.parent_path();
    std::vector<fs::path> tried = {dir / "tokenizer.model", dir / "tokenizer.bin",
                                   dir / absl::StrCat("tok", V, ".model"),
                                   dir / absl::StrCat("tok", V, ".bin")};
    for (const fs::path& p : tried) {
      if (fs::is_regular_file(p)) {
        model->tokenizer_path = p;
        break;
      }
    }
    if (model->tokenizer_path.empty()) {
      std::vector<std::string> names;
      for (const auto& p : tried) names.push_back(p.string());
      return absl::NotFoundError(absl::StrCat(
          source, ": no tokenizer found for this llama2.c checkpoint; tried ",
          absl::StrJoin(names, ", "), " (give one with --tokenizer)"));
    }
  }
  return model;
}

}  // namespace tailor::loader
