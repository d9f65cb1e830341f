// Writes a Hugging Face directory with random weights of a given llama shape, for benchmarks.
//   build/make_random_model --out DIR --shape 110m|1.1b|tiny [--dtype f32|f16|bf16] [--seed N]
//                           [--tokenizer FILE.model]
// 110m: dim 768, 12 layers, 12 heads, ffn 2048, vocab 32000, tied (the llama2.c 110M shape).
// 1.1b: dim 2048, 22 layers, 32 heads, 4 kv heads, ffn 5632, vocab 32000, untied (TinyLlama).
// Weights ~ N(0, 0.02^2) (norms 1 +- 0.1); the tokenizer is copied when given.
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "common/dtype.h"
#include "kernels/sampling.h"
#include "nlohmann/json.hpp"

namespace {

struct Shape {
  int dim, layers, heads, kv_heads, ffn, vocab;
  bool tied;
};

double Normal(tailor::Rng& rng) {
  // Irwin-Hall approximation: fast and good enough for random weights.
  double s = 0;
  for (int i = 0; i < 12; ++i) s += rng.Uniform();
  return s - 6.0;
}

}  // namespace

int main(int argc, char** argv) {
  std::string out, shape_name = "110m", dtype = "f32", tokenizer;
  uint64_t seed = 1;
  for (int i = 1; i + 1 < argc; i += 2) {
    std::string a = argv[i];
    if (a == "--out") out = argv[i + 1];
    if (a == "--shape") shape_name = argv[i + 1];
    if (a == "--dtype") dtype = argv[i + 1];
    if (a == "--seed") seed = std::stoull(argv[i + 1]);
    if (a == "--tokenizer") tokenizer = argv[i + 1];
  }
  Shape s;
  if (shape_name == "110m") {
    s = {768, 12, 12, 12, 2048, 32000, true};
  } else if (shape_name == "1.1b") {
    s = {2048, 22, 32, 4, 5632, 32000, false};
  } else if (shape_name == "tiny") {
    s = {128, 2, 4, 2, 256, 512, false};
  } else {
    std::fprintf(stderr, "make_random_model: unknown --shape %s (110m, 1.1b, tiny)\n", shape_name.c_str());
    return 2;
  }
  const std::string st_dtype = dtype == "f32" ? "F32" : dtype == "f16" ? "F16" : dtype == "bf16" ? "BF16" : "";
  if (out.empty() || st_dtype.empty()) {
    std::fprintf(stderr, "usage: make_random_model --out DIR --shape 110m|1.1b|tiny [--dtype f32|f16|bf16]\n");
    return 2;
  }
  namespace fs = std::filesystem;
  fs::create_directories(out);
  const int head_dim = s.dim / s.heads;
  struct T {
    std::string name;
    int64_t rows, cols;
    bool norm;
  };
  std::vector<T> tensors = {{"model.embed_tokens.weight", s.vocab, s.dim, false}};
  for (int l = 0; l < s.layers; ++l) {
    const std::string p = "model.layers." + std::to_string(l) + ".";
    tensors.push_back({p + "input_layernorm.weight", 1, s.dim, true});
    tensors.push_back({p + "self_attn.q_proj.weight", s.heads * head_dim, s.dim, false});
    tensors.push_back({p + "self_attn.k_proj.weight", s.kv_heads * head_dim, s.dim, false});
    tensors.push_back({p + "self_attn.v_proj.weight", s.kv_heads * head_dim, s.dim, false});
    tensors.push_back({p + "self_attn.o_proj.weight", s.dim, s.heads * head_dim, false});
    tensors.push_back({p + "post_attention_layernorm.weight", 1, s.dim, true});
    tensors.push_back({p + "mlp.gate_proj.weight", s.ffn, s.dim, false});
    tensors.push_back({p + "mlp.up_proj.weight", s.ffn, s.dim, false});
    tensors.push_back({p + "mlp.down_proj.weight", s.dim, s.ffn, false});
  }
  tensors.push_back({"model.norm.weight", 1, s.dim, true});
  if (!s.tied) tensors.push_back({"lm_head.weight", s.vocab, s.dim, false});

  const int64_t elem = dtype == "f32" ? 4 : 2;
  nlohmann::json header = nlohmann::json::object();
  int64_t offset = 0;
  for (const T& t : tensors) {
    const int64_t bytes = t.rows * t.cols * elem;
    header[t.name] = {{"dtype", st_dtype},
                      {"shape", t.rows == 1 ? nlohmann::json{t.cols} : nlohmann::json{t.rows, t.cols}},
                      {"data_offsets", {offset, offset + bytes}}};
    offset += bytes;
  }
  std::string h = header.dump();
  while ((h.size() + 8) % 8 != 0) h += ' ';
  std::ofstream f(fs::path(out) / "model.safetensors", std::ios::binary | std::ios::trunc);
  const uint64_t len = h.size();
  f.write(reinterpret_cast<const char*>(&len), 8);
  f.write(h.data(), static_cast<std::streamsize>(h.size()));
  tailor::Rng rng(seed);
  std::vector<char> buf;
  for (const T& t : tensors) {
    buf.resize(static_cast<size_t>(t.cols * elem));
    for (int64_t r = 0; r < t.rows; ++r) {
      for (int64_t c = 0; c < t.cols; ++c) {
        const float v = static_cast<float>(t.norm ? 1.0 + 0.1 * (rng.Uniform() - 0.5) * 2 : 0.02 * Normal(rng));
        if (elem == 4) {
          std::memcpy(buf.data() + 4 * c, &v, 4);
        } else {
          const uint16_t b = dtype == "f16" ? tailor::F32ToF16(v) : tailor::F32ToBF16(v);
          std::memcpy(buf.data() + 2 * c, &b, 2);
        }
      }
      f.write(buf.data(), static_cast<std::streamsize>(buf.size()));
    }
  }
  nlohmann::json config = {{"architectures", {"LlamaForCausalLM"}}, {"model_type", "llama"},
                           {"hidden_size", s.dim}, {"intermediate_size", s.ffn},
                           {"num_hidden_layers", s.layers}, {"num_attention_heads", s.heads},
                           {"num_key_value_heads", s.kv_heads}, {"vocab_size", s.vocab},
                           {"max_position_embeddings", 2048}, {"rms_norm_eps", 1e-5},
                           {"rope_theta", 10000.0}, {"hidden_act", "silu"},
                           {"tie_word_embeddings", s.tied}, {"bos_token_id", 1}, {"eos_token_id", 2}};
  std::ofstream(fs::path(out) / "config.json") << config.dump(2) << "\n";
  if (!tokenizer.empty()) fs::copy_file(tokenizer, fs::path(out) / "tokenizer.model", fs::copy_options::overwrite_existing);
  std::fprintf(stderr, "make_random_model: wrote %s (%s, %s, %.1f MB)\n", out.c_str(), shape_name.c_str(),
               dtype.c_str(), offset / 1e6);
  return f ? 0 : 1;
}
