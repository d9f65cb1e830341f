// Hugging Face directory loader: config.json, generation_config.json, tokenizer_config.json,
// model.safetensors or shards listed in model.safetensors.index.json, tokenizer.json or
// tokenizer.model. The family comes from config.json's architectures (or model_type).
#include <cmath>
#include <limits>
#include <set>
#include <type_traits>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/status_macros.h"
#include "models/loader_util.h"
#include "models/safetensors.h"
#include "nlohmann/json.hpp"

namespace tailor::loader {
namespace {

using json = nlohmann::json;
namespace fs = std::filesystem;

absl::StatusOr<json> ReadJson(const fs::path& path) {
  TAILOR_ASSIGN_OR_RETURN(std::string text, ReadFileToString(path));
  json j = json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded() || !j.is_object()) {
    return absl::InvalidArgumentError(
        absl::StrCat(path.string(), ": malformed JSON (expected an object)"));
  }
  return j;
}

// Reads an optional numeric field; errors if present with the wrong type.
template <typename T>
absl::Status ReadNumber(const json& j, const char* key, const std::string& source, T* out,
                        bool required) {
  if (!j.contains(key) || j[key].is_null()) {
    if (required) {
      return absl::InvalidArgumentError(absl::StrCat(source, ": missing field '", key, "'"));
    }
    return absl::OkStatus();
  }
  const json& v = j[key];
  if (!v.is_number()) {
    return absl::InvalidArgumentError(
        absl::StrCat(source, ": field '", key, "' is ", v.dump(), ", expected a number"));
  }
  if constexpr (std::is_integral_v<T>) {
    // An integer, or a float with an integral value (64.0), that fits T: never truncated or wrapped.
    const double d = v.get<double>();
    if (v.is_number_float() && !(std::isfinite(d) && std::floor(d) == d)) {
      return absl::InvalidArgumentError(
          absl::StrCat(source, ": field '", key, "' is ", v.dump(), ", expected an integer"));
    }
    const bool fits = v.is_number_unsigned()  ? v.get<uint64_t>() <= static_cast<uint64_t>(std::numeric_limits<T>::max())
                      : v.is_number_integer() ? v.get<int64_t>() >= std::numeric_limits<T>::min() &&
                                                    v.get<int64_t>() <= std::numeric_limits<T>::max()
                                              : d >= static_cast<double>(std::numeric_limits<T>::min()) &&
                                                    d <= static_cast<double>(std::numeric_limits<T>::max());
    if (!fits) {
      return absl::InvalidArgumentError(absl::StrCat(source, ": field '", key, "' is ", v.dump(),
                                                     ", out of range (at most ", std::numeric_limits<T>::max(), ")"));
    }
    *out = v.is_number_float() ? static_cast<T>(d) : v.get<T>();
  } else {
    const double d = v.get<double>();
    if (!std::isfinite(d) || std::fabs(d) > static_cast<double>(std::numeric_limits<T>::max())) {
      return absl::InvalidArgumentError(
          absl::StrCat(source, ": field '", key, "' is ", v.dump(), ", out of range"));
    }
    *out = static_cast<T>(d);
  }
  return absl::OkStatus();
}

std::vector<int32_t> ReadIdList(const json& v) {
  std::vector<int32_t> ids;
  if (v.is_number_integer()) ids.push_back(v.get<int32_t>());
  if (v.is_array()) {
    for (const auto& e : v) {
      if (e.is_number_integer()) ids.push_back(e.get<int32_t>());
    }
  }
  return ids;
}

// rope_scaling (or transformers 5's rope_parameters) applied to the rotary frequencies:
// "llama3" and "linear" are implemented, "default" changes nothing, anything else is refused.
absl::Status ParseRopeScaling(const json& rs, const std::string& source, ModelConfig* c) {
  const std::string field = absl::StrCat("rope_scaling ", rs.dump());
  if (!rs.is_object()) {
    return absl::InvalidArgumentError(absl::StrCat(source, ": malformed ", field, " (expected an object or null)"));
  }
  std::string type = "default";
  for (const char* key : {"rope_type", "type"}) {
    if (rs.contains(key)) {
      if (!rs[key].is_string()) {
        return absl::InvalidArgumentError(absl::StrCat(source, ": malformed ", field, " ('", key, "' must be a string)"));
      }
      type = rs[key].get<std::string>();
      break;
    }
  }
  if (type == "default") return absl::OkStatus();
  auto number = [&](const char* key, double* out) -> absl::Status {
    if (!rs.contains(key) || !rs[key].is_number() || !(rs[key].get<double>() > 0)) {
      return absl::InvalidArgumentError(absl::StrCat(source, ": malformed ", field, ": '", key,
                                                     "' must be a positive number for rope_type \"", type, "\""));
    }
    *out = rs[key].get<double>();
    return absl::OkStatus();
  };
  double factor = 0;
  TAILOR_RETURN_IF_ERROR(number("factor", &factor));
  std::vector<double> inv = DefaultRopeInvFreq(c->rope_theta, c->head_dim);
  if (type == "linear") {
    for (double& f : inv) f /= factor;
  } else if (type == "llama3") {
    double low = 0, high = 0, original = 0;
    TAILOR_RETURN_IF_ERROR(number("low_freq_factor", &low));
    TAILOR_RETURN_IF_ERROR(number("high_freq_factor", &high));
    TAILOR_RETURN_IF_ERROR(number("original_max_position_embeddings", &original));
    if (!(high > low)) {
      return absl::InvalidArgumentError(absl::StrCat(source, ": malformed ", field,
                                                     ": high_freq_factor must exceed low_freq_factor"));
    }
    inv = Llama3ScaledInvFreq(std::move(inv), factor, low, high, original);
  } else {
    return absl::InvalidArgumentError(absl::StrCat(source, ": ", field,
                                                   " is not implemented by tailor (rope types: default, "
                                                   "linear, llama3); refusing to load"));
  }
  c->rope_inv_freq = std::move(inv);
  return absl::OkStatus();
}

absl::StatusOr<const ModelFamily*> ParseConfig(const json& j, const std::string& source, ModelConfig* c) {
  std::string arch;
  const ModelFamily* family = nullptr;
  if (j.contains("architectures") && j["architectures"].is_array() &&
      !j["architectures"].empty() && j["architectures"][0].is_string()) {
    arch = j["architectures"][0].get<std::string>();
    family = FamilyForHfArchitecture(arch);
  } else if (j.contains("model_type") && j["model_type"].is_string()) {
    const std::string t = j["model_type"].get<std::string>();
    arch = "model_type " + t;
    family = FindFamily(t == "mistral" ? "llama" : t);
  }
  if (family == nullptr) {
    return absl::InvalidArgumentError(absl::StrCat(source, ": unsupported architecture '", arch,
                                                   "' (supported: ", SupportedHfArchitectures(), ")"));
  }
  c->architecture = arch;
  auto refuse = [&](absl::string_view what) {
    return absl::InvalidArgumentError(
        absl::StrCat(source, ": ", what, " is not implemented by tailor; refusing to load"));
  };
  if (j.contains("hidden_act") && j["hidden_act"] != "silu") {
    return refuse(absl::StrCat("activation '", j["hidden_act"].dump(), "' (only silu)"));
  }
  for (const char* key : {"attention_bias", "mlp_bias"}) {
    if (j.contains(key) && j[key].is_boolean() && j[key].get<bool>()) {
      return refuse(absl::StrCat(key, " = true"));
    }
  }
  TAILOR_RETURN_IF_ERROR(ReadNumber(j, "hidden_size", source, &c->dim, true));
  TAILOR_RETURN_IF_ERROR(ReadNumber(j, "num_hidden_layers", source, &c->n_layers, true));
  TAILOR_RETURN_IF_ERROR(ReadNumber(j, "num_attention_heads", source, &c->n_heads, true));
  c->n_kv_heads = c->n_heads;
  TAILOR_RETURN_IF_ERROR(ReadNumber(j, "num_key_value_heads", source, &c->n_kv_heads, false));
  TAILOR_RETURN_IF_ERROR(ReadNumber(j, "intermediate_size", source, &c->ffn_dim, true));
  TAILOR_RETURN_IF_ERROR(ReadNumber(j, "vocab_size", source, &c->vocab_size, true));
  c->max_positions = 2048;
  TAILOR_RETURN_IF_ERROR(ReadNumber(j, "max_position_embeddings", source, &c->max_positions, false));
  c->rms_eps = 1e-6f;
  TAILOR_RETURN_IF_ERROR(ReadNumber(j, "rms_norm_eps", source, &c->rms_eps, false));
  c->rope_theta = 10000.0f;
  TAILOR_RETURN_IF_ERROR(ReadNumber(j, "rope_theta", source, &c->rope_theta, false));
  c->head_dim = c->n_heads > 0 ? c->dim / c->n_heads : 0;
  TAILOR_RETURN_IF_ERROR(ReadNumber(j, "head_dim", source, &c->head_dim, false));
  if (c->head_dim <= 0 || c->head_dim % 2 != 0 || c->head_dim > 4096) {
    return absl::InvalidArgumentError(absl::StrCat(source, ": head_dim ", c->head_dim, " must be even and in [2, 4096]"));
  }
  if (j.contains("rope_parameters") && j["rope_parameters"].is_object()) {
    TAILOR_RETURN_IF_ERROR(ReadNumber(j["rope_parameters"], "rope_theta", source, &c->rope_theta, false));
    TAILOR_RETURN_IF_ERROR(ParseRopeScaling(j["rope_parameters"], source, c));
  }
  if (j.contains("rope_scaling") && !j["rope_scaling"].is_null()) {
    TAILOR_RETURN_IF_ERROR(ParseRopeScaling(j["rope_scaling"], source, c));
  }
  // Qwen configs name a window they do not use (use_sliding_window false).
  const bool window_used = !(j.contains("use_sliding_window") && j["use_sliding_window"] == false);
  if (window_used && j.contains("sliding_window") && !j["sliding_window"].is_null()) {
    int64_t window = 0;
    TAILOR_RETURN_IF_ERROR(ReadNumber(j, "sliding_window", source, &window, false));
    if (window < c->max_positions) {
      return refuse(absl::StrCat("sliding_window ", window, " (shorter than the ",
                                 c->max_positions, " maximum positions)"));
    }
  }
  c->tied_embeddings = false;
  if (j.contains("tie_word_embeddings") && !j["tie_word_embeddings"].is_null()) {
    if (!j["tie_word_embeddings"].is_boolean()) {
      return absl::InvalidArgumentError(absl::StrCat(source, ": field 'tie_word_embeddings' is ",
                                                     j["tie_word_embeddings"].dump(), ", expected true or false"));
    }
    c->tied_embeddings = j["tie_word_embeddings"].get<bool>();
  }
  c->rope_layout = RopeLayout::kHalf;
  if (j.contains("bos_token_id") && j["bos_token_id"].is_number_integer()) {
    c->bos_id = j["bos_token_id"].get<int32_t>();
  }
  if (j.contains("eos_token_id")) {
    auto ids = ReadIdList(j["eos_token_id"]);
    if (!ids.empty()) c->eos_ids = ids;
  }
  return family;
}

struct TensorSource {
  std::map<std::string, SafetensorsTensor> tensors;
  std::map<std::string, std::string> file_of;  // tensor -> file name, for messages
};

absl::StatusOr<WeightView> TakeTensor(const TensorSource& src, const std::string& name,
                                      const std::string& source) {
  auto it = src.tensors.find(name);
  if (it == src.tensors.end()) {
    return absl::InvalidArgumentError(absl::StrCat(source, ": missing tensor '", name, "'"));
  }
  const SafetensorsTensor& t = it->second;
  const std::string where = absl::StrCat(source, "/", src.file_of.at(name));
  WeightView v;
  if (t.dtype == "F32") {
    v.dtype = DType::kF32;
  } else if (t.dtype == "F16") {
    v.dtype = DType::kF16;
  } else if (t.dtype == "BF16") {
    v.dtype = DType::kBF16;
  } else {
    return absl::InvalidArgumentError(absl::StrCat(where, ": tensor '", name, "' has dtype ",
                                                   t.dtype, "; supported: F32, F16, BF16"));
  }
  if (t.shape.size() == 1) {
    v.rows = 1;
    v.cols = t.shape[0];
  } else if (t.shape.size() == 2) {
    v.rows = t.shape[0];
    v.cols = t.shape[1];
  } else {
    return absl::InvalidArgumentError(
        absl::StrCat(where, ": tensor '", name, "' has ", t.shape.size(), " dimensions; expected 1 or 2"));
  }
  v.data = t.data;
  return v;
}

// A special token's text in tokenizer_config.json: a string or {"content": string}; "" if null.
std::string TokenText(const json& j) {
  if (j.is_string()) return j.get<std::string>();
  if (j.is_object() && j.contains("content") && j["content"].is_string()) return j["content"].get<std::string>();
  return "";
}

absl::Status ReadTokenizerConfig(const fs::path& path, Model* model) {
  TAILOR_ASSIGN_OR_RETURN(json tc, ReadJson(path));
  if (tc.contains("add_bos_token") && tc["add_bos_token"].is_boolean()) {
    model->config.add_bos = tc["add_bos_token"].get<bool>();
  }
  if (tc.contains("bos_token")) model->bos_token = TokenText(tc["bos_token"]);
  if (tc.contains("eos_token")) model->eos_token = TokenText(tc["eos_token"]);
  if (tc.contains("chat_template")) {
    const json& ct = tc["chat_template"];
    if (ct.is_string()) {
      model->chat_template = ct.get<std::string>();
    } else if (ct.is_array()) {
      for (const auto& e : ct) {
        if (e.is_object() && e.value("name", "") == "default" && e.contains("template") &&
            e["template"].is_string()) {
          model->chat_template = e["template"].get<std::string>();
        }
      }
    }
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<const ModelFamily*> ParseHfConfig(std::string_view text, const std::string& source,
                                                  ModelConfig* c) {
  json j = json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded() || !j.is_object()) {
    return absl::InvalidArgumentError(absl::StrCat(source, ": malformed JSON (expected an object)"));
  }
  return ParseConfig(j, source, c);
}

absl::StatusOr<std::unique_ptr<Model>> LoadHuggingFace(const fs::path& dir,
                                                            const LoadOptions& options) {
  const std::string source = dir.string();
  auto model = std::make_unique<Model>();
  model->format = ModelFormat::kHuggingFace;
  model->source = dir;
  model->config.name = fs::absolute(dir).lexically_normal().filename().string();
  if (model->config.name.empty()) model->config.name = fs::absolute(dir).parent_path().filename().string();

  const fs::path config_path = dir / "config.json";
  if (!fs::exists(config_path)) {
    return absl::NotFoundError(absl::StrCat(
        source, ": not a model directory (no config.json; expected a Hugging Face directory)"));
  }
  TAILOR_ASSIGN_OR_RETURN(std::string config_text, ReadFileToString(config_path));
  TAILOR_ASSIGN_OR_RETURN(const ModelFamily* family,
                          ParseHfConfig(config_text, config_path.string(), &model->config));

  if (fs::exists(dir / "generation_config.json")) {
    TAILOR_ASSIGN_OR_RETURN(json gen, ReadJson(dir / "generation_config.json"));
    if (gen.contains("bos_token_id") && gen["bos_token_id"].is_number_integer()) {
      model->config.bos_id = gen["bos_token_id"].get<int32_t>();
    }
    if (gen.contains("eos_token_id")) {
      auto ids = ReadIdList(gen["eos_token_id"]);
      if (!ids.empty()) model->config.eos_ids = ids;
    }
    ModelConfig::SamplingDefaults& d = model->config.sampling_defaults;
    if (gen.contains("do_sample") && gen["do_sample"].is_boolean()) d.do_sample = gen["do_sample"].get<bool>();
    if (gen.contains("temperature") && gen["temperature"].is_number()) d.temperature = gen["temperature"].get<float>();
    if (gen.contains("top_p") && gen["top_p"].is_number()) d.top_p = gen["top_p"].get<float>();
    if (gen.contains("top_k") && gen["top_k"].is_number_integer()) d.top_k = gen["top_k"].get<int32_t>();
    if (gen.contains("repetition_penalty") && gen["repetition_penalty"].is_number()) {
      d.repetition_penalty = gen["repetition_penalty"].get<float>();
    }
    if (gen.contains("max_new_tokens") && gen["max_new_tokens"].is_number_integer() &&
        gen["max_new_tokens"].get<int64_t>() >= 1 && gen["max_new_tokens"].get<int64_t>() <= INT32_MAX) {
      d.max_new_tokens = gen["max_new_tokens"].get<int32_t>();
    }
  }
  // The tokenizer: --tokenizer, else tokenizer.json (Hugging Face tokenizers), else
  // tokenizer.model (SentencePiece). tokenizer_config.json (chat template, special tokens, BOS)
  // from the model directory, else from beside the tokenizer.
  if (options.tokenizer) {
    model->tokenizer_path = *options.tokenizer;
  } else if (fs::exists(dir / "tokenizer.json")) {
    model->tokenizer_path = dir / "tokenizer.json";
  } else if (fs::exists(dir / "tokenizer.model")) {
    model->tokenizer_path = dir / "tokenizer.model";
  } else {
    return absl::NotFoundError(absl::StrCat(
        source, ": no tokenizer (looked for tokenizer.json and tokenizer.model; give one with --tokenizer)"));
  }
  fs::path tokenizer_config = dir / "tokenizer_config.json";
  if (!fs::exists(tokenizer_config)) tokenizer_config = model->tokenizer_path.parent_path() / "tokenizer_config.json";
  if (fs::is_regular_file(tokenizer_config)) {
    TAILOR_RETURN_IF_ERROR(ReadTokenizerConfig(tokenizer_config, model.get()));
  }
  TAILOR_RETURN_IF_ERROR(ValidateConfig(model->config, config_path.string()));

  // Weight files: the index's weight_map, else model.safetensors, else every *.safetensors.
  std::set<std::string> files;
  if (fs::exists(dir / "model.safetensors.index.json")) {
    TAILOR_ASSIGN_OR_RETURN(json index, ReadJson(dir / "model.safetensors.index.json"));
    if (!index.contains("weight_map") || !index["weight_map"].is_object()) {
      return absl::InvalidArgumentError(absl::StrCat(
          (dir / "model.safetensors.index.json").string(), ": missing object 'weight_map'"));
    }
    for (const auto& [name, file] : index["weight_map"].items()) {
      if (!file.is_string()) {
        return absl::InvalidArgumentError(absl::StrCat(
            (dir / "model.safetensors.index.json").string(), ": weight_map['", name,
            "'] must be a file name"));
      }
      files.insert(file.get<std::string>());
    }
  } else if (fs::exists(dir / "model.safetensors")) {
    files.insert("model.safetensors");
  } else {
    for (const auto& e : fs::directory_iterator(dir)) {
      if (e.path().extension() == ".safetensors") files.insert(e.path().filename().string());
    }
  }
  if (files.empty()) {
    return absl::NotFoundError(absl::StrCat(
        source, ": no weights found (expected model.safetensors, or shards with "
                "model.safetensors.index.json)"));
  }
  TensorSource src;
  for (const std::string& f : files) {
    TAILOR_ASSIGN_OR_RETURN(auto st, SafetensorsFile::Open(dir / f));
    for (const auto& [name, t] : st->tensors()) {
      src.tensors[name] = t;
      src.file_of[name] = f;
    }
    model->files.push_back(st->file());
  }

  SetFamily(model.get(), *family);
  TAILOR_RETURN_IF_ERROR(TakeWeights(model.get(), source, [&](const TensorDesc& t) {
    return TakeTensor(src, t.hf_name, source);
  }));
  return model;
}

}  // namespace tailor::loader
