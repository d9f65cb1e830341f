// The Qwen3 family (dense models): the llama layer with an RMSNorm over each head of q and k
// (q_norm, k_norm: [head_dim] weights) before rope, no biases, and a head_dim that the
// configuration gives explicitly (128 for hidden sizes whose hidden / heads is not); NEOX rope.
#include "models/decoder_blocks.h"

namespace tailor {
namespace {

class Qwen3 final : public blocks::DecoderFamily {
 public:
  std::string_view name() const override { return "qwen3"; }
  std::vector<std::string_view> hf_architectures() const override { return {"Qwen3ForCausalLM"}; }
  std::vector<std::string_view> gguf_architectures() const override { return {"qwen3"}; }
  RopeLayout gguf_rope_layout() const override { return RopeLayout::kHalf; }

  std::vector<TensorDesc> Tensors(const ModelConfig& c) const override {
    return blocks::DecoderTensors(c, blocks::AppendQkNorms);
  }
};

}  // namespace

const ModelFamily& Qwen3Family() {
  static const Qwen3 family;
  return family;
}

}  // namespace tailor
