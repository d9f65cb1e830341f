// The Qwen2 family (Qwen2, Qwen2.5): the llama layer with biases on the q, k and v projections
// (none on the output projection), full attention (use_sliding_window false), NEOX rope.
#include "models/decoder_blocks.h"

namespace tailor {
namespace {

class Qwen2 final : public blocks::DecoderFamily {
 public:
  std::string_view name() const override { return "qwen2"; }
  std::vector<std::string_view> hf_architectures() const override { return {"Qwen2ForCausalLM"}; }
  std::vector<std::string_view> gguf_architectures() const override { return {"qwen2"}; }
  RopeLayout gguf_rope_layout() const override { return RopeLayout::kHalf; }

  std::vector<TensorDesc> Tensors(const ModelConfig& c) const override {
    return blocks::DecoderTensors(c, blocks::AppendQkvBiases);
  }
};

}  // namespace

const ModelFamily& Qwen2Family() {
  static const Qwen2 family;
  return family;
}

}  // namespace tailor
