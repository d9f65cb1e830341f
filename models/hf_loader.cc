// Hugging Face directory loader: config.json, generation_config.json, tokenizer_config.json,
// model.safetensors or shards listed in model.safetensors.index.json, tokenizer.model.
#include <set>

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
  if (!j[key].is_number()) {
    return absl::InvalidArgumentError(
        absl::StrCat(source, ": field '", key, "' must be a number"));
  }
  *out = j[key].get<T>();
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

absl::Status ParseConfig(const json& j, const std::string& source, LlamaConfig* c) {
  static const std::set<std::string> kArchitectures = {"LlamaForCausalLM", "MistralForCausalLM"};
  std::string arch;
  if (j.contains("architectures") && j["architectures"].is_array() &&
      !j["architectures"].empty() && j["architectures"][0].is_string()) {
    arch = j["architectures"][0].get<std::string>();
  } else if (j.contains("model_type") && j["model_type"].is_string()) {
    std::string t = j["model_type"].get<std::string>();
    if (t == "llama") arch = "LlamaForCausalLM";
    if (t == "mistral") arch = "MistralForCausalLM";
    if (arch.empty()) arch = "model_type " + t;
  }
  if (!kArchitectures.count(arch)) {
    return absl::InvalidArgumentError(absl::StrCat(
        source, ": unsupported architecture '", arch,
        "' (supported: LlamaForCausalLM, MistralForCausalLM)"));
  }
  auto refuse = [&](absl::string_view what) {
    return absl::InvalidArgumentError(
        absl::StrCat(source, ": ", what, " is not implemented by tailor; refusing to load"));
  };
  if (j.contains("hidden_act") && j["hidden_act"] != "silu") {
    return refuse(absl::StrCat("activation '", j["hidden_act"].dump(), "' (only silu)"));
  }
  if (j.contains("rope_scaling") && !j["rope_scaling"].is_null()) {
    return refuse(absl::StrCat("rope_scaling ", j["rope_scaling"].dump()));
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
  if (j.contains("rope_parameters") && j["rope_parameters"].is_object()) {
    const json& rp = j["rope_parameters"];
    if (rp.contains("rope_type") && rp["rope_type"] != "default") {
      return refuse(absl::StrCat("rope_parameters ", rp.dump()));
    }
    TAILOR_RETURN_IF_ERROR(ReadNumber(rp, "rope_theta", source, &c->rope_theta, false));
  }
  c->head_dim = c->n_heads > 0 ? c->dim / c->n_heads : 0;
  TAILOR_RETURN_IF_ERROR(ReadNumber(j, "head_dim", source, &c->head_dim, false));
  if (j.contains("sliding_window") && !j["sliding_window"].is_null()) {
    int64_t window = 0;
    TAILOR_RETURN_IF_ERROR(ReadNumber(j, "sliding_window", source, &window, false));
    if (window < c->max_positions) {
      return refuse(absl::StrCat("sliding_window ", window, " (shorter than the ",
                                 c->max_positions, " maximum positions)"));
    }
  }
  c->tied_embeddings = j.value("tie_word_embeddings", false);
  c->rope_layout = RopeLayout::kHalf;
  if (j.contains("bos_token_id") && j["bos_token_id"].is_number_integer()) {
    c->bos_id = j["bos_token_id"].get<int32_t>();
  }
  if (j.contains("eos_token_id")) {
    auto ids = ReadIdList(j["eos_token_id"]);
    if (!ids.empty()) c->eos_ids = ids;
  }
  return absl::OkStatus();
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

}  // namespace

absl::StatusOr<std::unique_ptr<LlamaModel>> LoadHuggingFace(const fs::path& dir,
                                                            const LoadOptions& options) {
  const std::string source = dir.string();
  auto model = std::make_unique<LlamaModel>();
  model->format = ModelFormat::kHuggingFace;
  model->source = dir;
  model->config.name = fs::absolute(dir).lexically_normal().filename().string();
  if (model->config.name.empty()) model->config.name = fs::absolute(dir).parent_path().filename().string();

  const fs::path config_path = dir / "config.json";
  if (!fs::exists(config_path)) {
    return absl::NotFoundError(absl::StrCat(
        source, ": not a model directory (no config.json; expected a Hugging Face directory)"));
  }
  TAILOR_ASSIGN_OR_RETURN(json config, ReadJson(config_path));
  TAILOR_RETURN_IF_ERROR(ParseConfig(config, config_path.string(), &model->config));

  if (fs::exists(dir / "generation_config.json")) {
    TAILOR_ASSIGN_OR_RETURN(json gen, ReadJson(dir / "generation_config.json"));
    if (gen.contains("bos_token_id") && gen["bos_token_id"].is_number_integer()) {
      model->config.bos_id = gen["bos_token_id"].get<int32_t>();
    }
    if (gen.contains("eos_token_id")) {
      auto ids = ReadIdList(gen["eos_token_id"]);
      if (!ids.empty()) model->config.eos_ids = ids;
    }
    LlamaConfig::SamplingDefaults& d = model->config.sampling_defaults;
    if (gen.contains("do_sample") && gen["do_sample"].is_boolean()) d.do_sample = gen["do_sample"].get<bool>();
    if (gen.contains("temperature") && gen["temperature"].is_number()) d.temperature = gen["temperature"].get<float>();
    if (gen.contains("top_p") && gen["top_p"].is_number()) d.top_p = gen["top_p"].get<float>();
    if (gen.contains("top_k") && gen["top_k"].is_number_integer()) d.top_k = gen["top_k"].get<int32_t>();
    if (gen.contains("repetition_penalty") && gen["repetition_penalty"].is_number()) {
      d.repetition_penalty = gen["repetition_penalty"].get<float>();
    }
  }
  if (fs::exists(dir / "tokenizer_config.json")) {
    TAILOR_ASSIGN_OR_RETURN(json tc, ReadJson(dir / "tokenizer_config.json"));
    if (tc.contains("add_bos_token") && tc["add_bos_token"].is_boolean()) {
      model->config.add_bos = tc["add_bos_token"].get<bool>();
    }
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

  LlamaWeights& w = model->weights;
  TAILOR_ASSIGN_OR_RETURN(w.token_embedding, TakeTensor(src, "model.embed_tokens.weight", source));
  TAILOR_ASSIGN_OR_RETURN(w.output_norm, TakeTensor(src, "model.norm.weight", source));
  if (model->config.tied_embeddings) {
    w.output = w.token_embedding;
  } else {
    TAILOR_ASSIGN_OR_RETURN(w.output, TakeTensor(src, "lm_head.weight", source));
  }
  for (int32_t l = 0; l < model->config.n_layers; ++l) {
    const std::string p = absl::StrCat("model.layers.", l, ".");
    LlamaLayerWeights L;
    TAILOR_ASSIGN_OR_RETURN(L.attn_norm, TakeTensor(src, p + "input_layernorm.weight", source));
    TAILOR_ASSIGN_OR_RETURN(L.wq, TakeTensor(src, p + "self_attn.q_proj.weight", source));
    TAILOR_ASSIGN_OR_RETURN(L.wk, TakeTensor(src, p + "self_attn.k_proj.weight", source));
    TAILOR_ASSIGN_OR_RETURN(L.wv, TakeTensor(src, p + "self_attn.v_proj.weight", source));
    TAILOR_ASSIGN_OR_RETURN(L.wo, TakeTensor(src, p + "self_attn.o_proj.weight", source));
    TAILOR_ASSIGN_OR_RETURN(L.ffn_norm,
                            TakeTensor(src, p + "post_attention_layernorm.weight", source));
    TAILOR_ASSIGN_OR_RETURN(L.w_gate, TakeTensor(src, p + "mlp.gate_proj.weight", source));
    TAILOR_ASSIGN_OR_RETURN(L.w_up, TakeTensor(src, p + "mlp.up_proj.weight", source));
    TAILOR_ASSIGN_OR_RETURN(L.w_down, TakeTensor(src, p + "mlp.down_proj.weight", source));
    w.layers.push_back(L);
  }
  TAILOR_RETURN_IF_ERROR(CheckAllShapes(*model, source));

  if (options.tokenizer) {
    model->tokenizer_path = *options.tokenizer;
  } else if (fs::exists(dir / "tokenizer.model")) {
    model->tokenizer_path = dir / "tokenizer.model";
  } else {
    return absl::NotFoundError(absl::StrCat(
        source, ": no tokenizer.model (tailor reads SentencePiece tokenizers; give one with "
                "--tokenizer)"));
  }
  return model;
}

}  // namespace tailor::loader
