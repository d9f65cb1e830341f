#include "engine/smoothquant.h"

#include <algorithm>
#include <cmath>
#include <map>

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "kernels/reference_kernels.h"
#include "models/family.h"

namespace tailor {
namespace {

// What a value's columns are a per-channel multiple of: an RMSNorm's weight (entries) or a matmul's
// output rows (plus its bias). `map[c]`: the producer's channel behind column c (empty: identity).
struct Producer {
  int32_t tensor = -1;
  int32_t bias = -1;
  std::vector<int32_t> map;
};

// A producer and the matmuls that read its channels.
struct Group {
  Producer producer;
  std::vector<int32_t> consumers;
};

// Follows a family's graph to find which matmuls read which producer's channels. Values are
// numbered as created; only the facts the plan needs are kept.
class GroupRecorder final : public GraphBuilder {
 public:
  explicit GroupRecorder(const ModelConfig& config) : config_(config) {}

  Value Embed(int32_t) override { return Fresh(config_.dim); }
  Value RmsNorm(Value x, int32_t weight) override {
    const Value v = Fresh(x.width);
    producers_[v.id] = Producer{weight, -1, {}};
    return v;
  }
  void HeadRmsNorm(Value x, int32_t) override { producers_.erase(x.id); }  // not per input channel
  Value MatMul(Value x, int32_t weight) override {
    const auto it = producers_.find(x.id);
    if (it != producers_.end()) {
      Group& g = groups_[x.id];
      g.producer = it->second;
      g.consumers.push_back(weight);
    } else {
      unsmoothed_.push_back(weight);
    }
    const Value v = Fresh(0);
    matmul_of_[v.id] = weight;
    return v;
  }
  void AddBias(Value x, int32_t bias) override {
    const auto it = matmul_of_.find(x.id);
    if (it != matmul_of_.end()) bias_of_[it->second] = bias;
  }
  void Rope(Value, Value) override {}
  Value Attention(int32_t, Value, Value, Value v) override {
    const Value out = Fresh(config_.q_dim());
    const auto it = matmul_of_.find(v.id);
    if (it != matmul_of_.end()) {
      Producer p{it->second, -1, {}};
      const int32_t group_size = config_.n_heads / std::max(1, config_.n_kv_heads), hd = config_.head_dim;
      for (int32_t c = 0; c < config_.q_dim(); ++c) p.map.push_back((c / hd / group_size) * hd + c % hd);
      producers_[out.id] = std::move(p);
    }
    return out;
  }
  void Add(Value, Value) override {}
  void SwiGlu(Value gate, Value up) override {
    producers_.erase(gate.id);
    const auto it = matmul_of_.find(up.id);
    if (it != matmul_of_.end()) producers_[gate.id] = Producer{it->second, -1, {}};
  }
  Value LastTokens(Value x) override {
    const Value v = Fresh(x.width);
    const auto it = producers_.find(x.id);
    if (it != producers_.end()) producers_[v.id] = it->second;
    return v;
  }
  void Output(Value) override {}

  // Groups with their producers' biases filled in; every matmul not in a group in `unsmoothed`.
  std::vector<Group> Groups() const {
    std::vector<Group> out;
    for (const auto& [id, g] : groups_) {
      out.push_back(g);
      const auto bias = bias_of_.find(g.producer.tensor);
      if (bias != bias_of_.end()) out.back().producer.bias = bias->second;
    }
    return out;
  }
  const std::vector<int32_t>& unsmoothed() const { return unsmoothed_; }

 private:
  Value Fresh(int32_t width) { return Value{next_++, width}; }

  const ModelConfig& config_;
  int32_t next_ = 0;
  std::map<int32_t, Producer> producers_;  // value id -> what scales its columns
  std::map<int32_t, Group> groups_;        // input value id -> its group
  std::map<int32_t, int32_t> matmul_of_;   // value id -> the weight of the matmul that made it
  std::map<int32_t, int32_t> bias_of_;     // matmul weight -> its bias
  std::vector<int32_t> unsmoothed_;
};

absl::StatusOr<const TensorCalibration*> Statistics(const CalibrationTable& table, const TensorDesc& t) {
  TAILOR_ASSIGN_OR_RETURN(const TensorCalibration* cal, table.ForTensor(t.name));
  if (static_cast<int64_t>(cal->channel_absmax.size()) != t.cols) {
    return absl::InvalidArgumentError(absl::StrCat("the calibration profile has ", cal->channel_absmax.size(),
                                                   " channels for ", t.name, ", which has ", t.cols));
  }
  return cal;
}

// The activation scale of a w8a8 matmul whose input column c is divided by s[c] (s empty: 1):
// the method's clip, scaled by how smoothing changed the largest |x|, over 127.
float ActScale(const TensorCalibration& cal, const std::vector<float>& s) {
  float absmax = 0;
  for (size_t c = 0; c < cal.channel_absmax.size(); ++c) {
    absmax = std::max(absmax, cal.channel_absmax[c] / (s.empty() ? 1.0f : s[c]));
  }
  if (!(cal.absmax > 0) || !(absmax > 0)) return 1.0f;  // never non-zero: any scale is exact
  return cal.clip * (absmax / cal.absmax) / 127.0f;
}

}  // namespace

absl::StatusOr<W8a8Plan> PlanW8a8(const Model& model, const std::vector<DType>& dtypes,
                                  const CalibrationTable& calibration, float alpha) {
  const size_t n = model.tensors.size();
  W8a8Plan plan;
  plan.input_scale.resize(n);
  plan.feature_scale.resize(n);
  plan.act_scale.assign(n, 0.0f);
  GroupRecorder recorder(model.config);
  model.family->EmitGraph(model.config, model.tensors, recorder);
  std::vector<int32_t> plain = recorder.unsmoothed();
  const std::vector<Group> groups = recorder.Groups();
  std::map<int32_t, int> uses;  // producer tensor -> groups it feeds (one scaling serves one group)
  for (const Group& g : groups) ++uses[g.producer.tensor];
  for (const Group& g : groups) {
    const TensorDesc& producer = model.tensors[g.producer.tensor];
    bool smooth = alpha > 0 && !producer.rope_features && producer.kind != TensorKind::kEmbedding &&
                  uses[g.producer.tensor] == 1;
    for (int32_t c : g.consumers) {
      smooth = smooth && dtypes[c] == DType::kW8 && model.tensors[c].kind != TensorKind::kEmbedding;
    }
    if (!smooth) {
      plain.insert(plain.end(), g.consumers.begin(), g.consumers.end());
      continue;
    }
    // Per producer channel: the largest |x| and |w| over the columns it feeds.
    const int64_t cols = model.tensors[g.consumers[0]].cols;
    const int64_t channels = producer.kind == TensorKind::kVector ? producer.cols : producer.rows;
    auto channel = [&](int64_t c) { return g.producer.map.empty() ? c : g.producer.map[c]; };
    std::vector<float> xmax(channels, 0.0f), wmax(channels, 0.0f), row(cols);
    for (int32_t c : g.consumers) {
      TAILOR_ASSIGN_OR_RETURN(const TensorCalibration* cal, Statistics(calibration, model.tensors[c]));
      for (int64_t j = 0; j < cols; ++j) xmax[channel(j)] = std::max(xmax[channel(j)], cal->channel_absmax[j]);
      for (int64_t r = 0; r < model.tensors[c].rows; ++r) {
        ref::DequantizeRow(model.weights[c], r, row.data());
        for (int64_t j = 0; j < cols; ++j) wmax[channel(j)] = std::max(wmax[channel(j)], std::fabs(row[j]));
      }
    }
    std::vector<float> s(channels, 1.0f), inverse(channels, 1.0f);
    for (int64_t p = 0; p < channels; ++p) {
      if (xmax[p] > 0 && wmax[p] > 0) {
        const double v = std::pow(xmax[p], alpha) / std::pow(wmax[p], 1.0 - alpha);
        s[p] = static_cast<float>(std::clamp(v, 1e-4, 1e4));
        inverse[p] = 1.0f / s[p];
      }
    }
    plan.feature_scale[g.producer.tensor] = inverse;
    if (g.producer.bias >= 0) plan.feature_scale[g.producer.bias] = inverse;
    std::vector<float> per_column(cols);
    for (int64_t j = 0; j < cols; ++j) per_column[j] = s[channel(j)];
    for (int32_t c : g.consumers) {
      plan.input_scale[c] = per_column;
      TAILOR_ASSIGN_OR_RETURN(const TensorCalibration* cal, Statistics(calibration, model.tensors[c]));
      plan.act_scale[c] = ActScale(*cal, per_column);
    }
  }
  for (int32_t c : plain) {
    if (dtypes[c] != DType::kW8) continue;
    TAILOR_ASSIGN_OR_RETURN(const TensorCalibration* cal, Statistics(calibration, model.tensors[c]));
    plan.act_scale[c] = ActScale(*cal, {});
  }
  return plan;
}

}  // namespace tailor
