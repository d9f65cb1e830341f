// Model families. A family (llama, qwen2, qwen3, ...) is described once, in its own file in
// models/: it names its tensors for a configuration (the enumeration every loader, the compiler,
// the package manifest and the package checks use) and emits its computation as ops into a
// GraphBuilder. engine/ implements the builder that lowers the ops into a specialization's
// program; models/reference_forward.cc implements one that runs them one token at a time in
// float64. Families are immutable singletons; every method is safe from any thread.
#ifndef TAILOR_MODELS_FAMILY_H_
#define TAILOR_MODELS_FAMILY_H_

#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "models/model.h"

namespace tailor {

// An activation a graph computes: [rows, width] floats. Rows are the step's token rows (every
// token of every sequence), or, after LastTokens, one row per sequence.
struct Value {
  int32_t id = -1;
  int32_t width = 0;
};

// Receives a family's ops in order. Tensors are indices into the family's Tensors() list (see
// TensorIds). Model constants (heads, head_dim, rms eps, rotary frequencies) are the builder's
// configuration. Implementations are not thread-safe; one builder per lowering.
class GraphBuilder {
 public:
  virtual ~GraphBuilder() = default;
  // Row m = embedding row of token m: [rows, table.cols].
  virtual Value Embed(int32_t table) = 0;
  // x / sqrt(mean(x^2) + eps) * weight per row, into a new value.
  virtual Value RmsNorm(Value x, int32_t weight) = 0;
  // The same over every head_dim slice of each row, in place (weight: [head_dim]).
  virtual void HeadRmsNorm(Value x, int32_t weight) = 0;
  // x [rows, weight.cols] times weight^T: [rows, weight.rows].
  virtual Value MatMul(Value x, int32_t weight) = 0;
  // x[r] += bias for every row, in place (bias: [1, x.width]).
  virtual void AddBias(Value x, int32_t bias) = 0;
  // Rotates the heads of q [rows, n_heads * head_dim] and k [rows, n_kv_heads * head_dim] in
  // place by each row's position.
  virtual void Rope(Value q, Value k) = 0;
  // Stores k and v as the KV of `layer` at each row's position, then causal attention of q over
  // its sequence's KV (grouped heads as the configuration says): [rows, n_heads * head_dim].
  virtual Value Attention(int32_t layer, Value q, Value k, Value v) = 0;
  // acc += x, in place.
  virtual void Add(Value acc, Value x) = 0;
  // gate = silu(gate) * up, in place.
  virtual void SwiGlu(Value gate, Value up) = 0;
  // One row per sequence: the row of its last token in this step.
  virtual Value LastTokens(Value x) = 0;
  // Marks `logits` [sequences, vocab] as the graph's output.
  virtual void Output(Value logits) = 0;
};

// Looks up tensors of a family's list by name.
class TensorIds {
 public:
  explicit TensorIds(std::span<const TensorDesc> tensors) : tensors_(tensors) {}
  // Index of `name`; -1 if the list has no such tensor.
  int32_t operator()(std::string_view name) const;

 private:
  std::span<const TensorDesc> tensors_;
};

class ModelFamily {
 public:
  virtual ~ModelFamily() = default;
  // The family's name in package manifests: "llama".
  virtual std::string_view name() const = 0;
  // Hugging Face `architectures` entries it serves: {"LlamaForCausalLM", "MistralForCausalLM"}.
  virtual std::vector<std::string_view> hf_architectures() const = 0;
  // GGUF `general.architecture` values it serves: {"llama"}.
  virtual std::vector<std::string_view> gguf_architectures() const = 0;
  // Rotary layout of q/k features in GGUF files of this family (converters permute llama's rows
  // for ggml's interleaved rope; qwen keeps Hugging Face's order, NEOX rope).
  virtual RopeLayout gguf_rope_layout() const = 0;
  // The tensors of `config`, in the order they are stored.
  virtual std::vector<TensorDesc> Tensors(const ModelConfig& config) const = 0;
  // Emits the forward pass of `config` over `tensors` (= Tensors(config)).
  virtual void EmitGraph(const ModelConfig& config, std::span<const TensorDesc> tensors,
                         GraphBuilder& builder) const = 0;
};

// The family registered under `name` (a manifest's model.family); nullptr if none.
const ModelFamily* FindFamily(std::string_view name);
// The family serving a Hugging Face architecture / GGUF general.architecture; nullptr if none.
const ModelFamily* FamilyForHfArchitecture(std::string_view architecture);
const ModelFamily* FamilyForGgufArchitecture(std::string_view architecture);
// "LlamaForCausalLM, MistralForCausalLM, ..." / "llama, qwen2, ...", for error messages.
std::string SupportedHfArchitectures();
std::string SupportedGgufArchitectures();

// Checks that every tensor of `model.tensors` has a weight of its shape (a missing one named);
// errors name `source`.
absl::Status CheckWeights(const Model& model, const std::string& source);

}  // namespace tailor

#endif  // TAILOR_MODELS_FAMILY_H_
