// The llama family: Llama 1/2/3.x, Mistral (full attention), TinyLlama, llama2.c's stories.
// Pre-norm layers of rotary self-attention (grouped KV heads, no biases) and a SwiGLU MLP;
// the embedding tied to the output or not. Llama 3's rope scaling is in the configuration's
// rotary frequencies (models/rope.cc), not in the graph.
#include "models/decoder_blocks.h"

namespace tailor {
namespace {

class Llama final : public blocks::DecoderFamily {
 public:
  std::string_view name() const override { return "llama"; }
  std::vector<std::string_view> hf_architectures() const override {
    return {"LlamaForCausalLM", "MistralForCausalLM"};
  }
  std::vector<std::string_view> gguf_architectures() const override { return {"llama"}; }
  RopeLayout gguf_rope_layout() const override { return RopeLayout::kInterleaved; }

  std::vector<TensorDesc> Tensors(const ModelConfig& c) const override {
    return blocks::DecoderTensors(c);
  }
};

}  // namespace

const ModelFamily& LlamaFamily() {
  static const Llama family;
  return family;
}

}  // namespace tailor
