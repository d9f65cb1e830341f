// The registry of model families, and what every family shares: tensor lookup and weight checks.
#include <array>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "models/family.h"

namespace tailor {

// Defined in each family's file.
const ModelFamily& LlamaFamily();
const ModelFamily& Qwen2Family();
const ModelFamily& Qwen3Family();

namespace {

std::array<const ModelFamily*, 3> Families() { return {&LlamaFamily(), &Qwen2Family(), &Qwen3Family()}; }

template <class Names>
const ModelFamily* FindBy(std::string_view what, Names names) {
  for (const ModelFamily* f : Families()) {
    for (std::string_view n : (f->*names)()) {
      if (n == what) return f;
    }
  }
  return nullptr;
}

template <class Names>
std::string JoinAll(Names names) {
  std::vector<std::string> all;
  for (const ModelFamily* f : Families()) {
    for (std::string_view n : (f->*names)()) all.emplace_back(n);
  }
  return absl::StrJoin(all, ", ");
}

}  // namespace

int32_t TensorIds::operator()(std::string_view name) const {
  for (size_t i = 0; i < tensors_.size(); ++i) {
    if (tensors_[i].name == name) return static_cast<int32_t>(i);
  }
  return -1;
}

const ModelFamily* FindFamily(std::string_view name) {
  for (const ModelFamily* f : Families()) {
    if (f->name() == name) return f;
  }
  return nullptr;
}

const ModelFamily* FamilyForHfArchitecture(std::string_view a) { return FindBy(a, &ModelFamily::hf_architectures); }
const ModelFamily* FamilyForGgufArchitecture(std::string_view a) { return FindBy(a, &ModelFamily::gguf_architectures); }
std::string SupportedHfArchitectures() { return JoinAll(&ModelFamily::hf_architectures); }
std::string SupportedGgufArchitectures() { return JoinAll(&ModelFamily::gguf_architectures); }

const WeightView* Model::Weight(std::string_view name) const {
  const int32_t i = TensorIds(tensors)(name);
  return i < 0 ? nullptr : &weights[i];
}

absl::Status CheckWeights(const Model& m, const std::string& source) {
  if (m.weights.size() != m.tensors.size()) {
    return absl::InternalError(absl::StrCat(source, ": ", m.weights.size(), " weights for ", m.tensors.size(), " tensors"));
  }
  for (size_t i = 0; i < m.tensors.size(); ++i) {
    const TensorDesc& t = m.tensors[i];
    const WeightView& w = m.weights[i];
    if (w.data == nullptr) {
      return absl::InvalidArgumentError(absl::StrCat(source, ": missing tensor '", t.name, "'"));
    }
    if (w.rows != t.rows || w.cols != t.cols) {
      return absl::InvalidArgumentError(absl::StrCat(source, ": tensor '", t.name, "' has shape [", w.rows, ", ",
                                                     w.cols, "] but the configuration needs [", t.rows, ", ",
                                                     t.cols, "]"));
    }
  }
  return absl::OkStatus();
}

}  // namespace tailor
