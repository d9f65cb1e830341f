// Profiles in memory: fingerprints, histograms, merging, checks, and the calibration table.
// The file format is in profile_io.cc, the recording in profile_dump.cc.
#include "engine/profile.h"

#include <algorithm>
#include <cmath>
#include <set>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/checksum.h"
#include "engine/program.h"

namespace tailor {

bool ModelFingerprint::SameModel(const ModelFingerprint& o) const {
  return family == o.family && architecture == o.architecture && dim == o.dim && n_layers == o.n_layers &&
         n_heads == o.n_heads && n_kv_heads == o.n_kv_heads && head_dim == o.head_dim && ffn_dim == o.ffn_dim &&
         vocab_size == o.vocab_size && weights_checksum == o.weights_checksum;
}

std::string ModelFingerprint::Describe() const {
  return absl::StrCat(name, " (", family, ", ", architecture, ", dim ", dim, ", ", n_layers, " layers, ", n_heads,
                      " heads (", n_kv_heads, " kv), head_dim ", head_dim, ", ffn ", ffn_dim, ", vocab ", vocab_size,
                      ", weights ", weights_checksum, ")");
}

ModelFingerprint FingerprintOf(const Model& model) {
  const ModelConfig& c = model.config;
  ModelFingerprint f;
  f.name = c.name;
  f.family = c.family;
  f.architecture = c.architecture;
  f.dim = c.dim;
  f.n_layers = c.n_layers;
  f.n_heads = c.n_heads;
  f.n_kv_heads = c.n_kv_heads;
  f.head_dim = c.head_dim;
  f.ffn_dim = c.ffn_dim;
  f.vocab_size = c.vocab_size;
  // Each tensor's bytes hashed on their own, then the list of (name, dtype, shape, hash).
  std::string list;
  for (size_t i = 0; i < model.tensors.size() && i < model.weights.size(); ++i) {
    const WeightView& w = model.weights[i];
    const uint64_t h = w.data == nullptr ? 0 : Checksum64(std::span<const std::byte>(w.data, w.bytes()));
    absl::StrAppend(&list, model.tensors[i].name, " ", DTypeName(w.dtype), " ", w.rows, "x", w.cols, " ", h, "\n");
  }
  f.weights_checksum = ChecksumHex(std::as_bytes(std::span<const char>(list.data(), list.size())));
  return f;
}

// ---------------------------------------------------------------------------------------------
// Histogram

Histogram::Histogram(int32_t bins) : counts_(static_cast<size_t>(bins), 0) {}

Histogram::Histogram(int32_t exponent, std::vector<uint64_t> counts)
    : exponent_(exponent), counts_(std::move(counts)) {}

double Histogram::range() const { return std::ldexp(1.0, exponent_); }
double Histogram::bin_width() const { return 2.0 * range() / bins(); }

uint64_t Histogram::total() const {
  uint64_t t = 0;
  for (uint64_t c : counts_) t += c;
  return t;
}

void Histogram::Cover(float absmax) {
  if (!(absmax > 0)) return;
  // The smallest e with 2^e > absmax: frexp gives absmax = m 2^k, m in [0.5, 1), so 2^k > absmax.
  int k = 0;
  std::frexp(static_cast<double>(absmax), &k);
  GrowTo(std::min(k, kMaxExponent));
}

void Histogram::GrowTo(int32_t exponent) {
  if (exponent <= exponent_) return;
  const int64_t shift = std::min<int64_t>(exponent - exponent_, 62);
  const int64_t half = bins() / 2;
  std::vector<uint64_t> grown(counts_.size(), 0);
  for (int64_t i = 0; i < bins(); ++i) {
    if (counts_[i] == 0) continue;
    // Bin i covers [(i - half) w, (i - half + 1) w); at width w 2^shift it falls in bin
    // floor((i - half) / 2^shift) + half (>> floors negative values in C++20).
    grown[((i - half) >> shift) + half] += counts_[i];
  }
  counts_ = std::move(grown);
  exponent_ = exponent;
}

void Histogram::Add(float x) {
  const int64_t half = bins() / 2;
  // x 2^-e (bins/2) is exact in double for every float x and exponent in range.
  const double scaled = static_cast<double>(x) * std::ldexp(static_cast<double>(half), -exponent_);
  const int64_t i = static_cast<int64_t>(std::floor(scaled)) + half;
  counts_[std::clamp<int64_t>(i, 0, bins() - 1)] += 1;
}

void Histogram::Merge(const Histogram& other) {
  GrowTo(other.exponent_);
  Histogram rebinned = other;
  rebinned.GrowTo(exponent_);
  for (size_t i = 0; i < counts_.size(); ++i) counts_[i] += rebinned.counts_[i];
}

std::vector<uint64_t> Histogram::AbsCounts() const {
  const int32_t half = bins() / 2;
  std::vector<uint64_t> out(half, 0);
  for (int32_t k = 0; k < half; ++k) out[k] = counts_[half + k] + counts_[half - 1 - k];
  return out;
}

// ---------------------------------------------------------------------------------------------
// Profiles

int64_t TensorProfile::rows() const {
  int64_t n = 0;
  for (int64_t r : rows_per_spec) n += r;
  return n;
}

float TensorProfile::absmax() const { return rows() == 0 ? 0.0f : std::max(std::fabs(min), std::fabs(max)); }

const TensorProfile* Profile::Find(std::string_view name) const {
  for (const TensorProfile& t : tensors) {
    if (t.name == name) return &t;
  }
  return nullptr;
}

std::string KvTensorName(int32_t layer, bool value) { return absl::StrCat("blk.", layer, value ? ".v" : ".k"); }

std::vector<ProfiledTensor> ProfiledTensors(const ModelConfig& config, const ModelFamily& family) {
  // Lower a one-token program over a layout whose offsets identify tensors (64 bytes apart).
  const std::vector<TensorDesc> descs = family.Tensors(config);
  WeightLayout layout;
  for (size_t i = 0; i < descs.size(); ++i) {
    layout.tensors.push_back(TensorRef{DType::kF32, static_cast<int64_t>(i) * 64, descs[i].rows, descs[i].cols});
  }
  Specialization one;
  one.shape = SpecShape{1, 1, 16};
  const Program p = LowerProgram(config, family, layout, one, 16);
  std::vector<ProfiledTensor> out;
  std::set<std::string> seen;
  auto add = [&](std::string name, int32_t channels) {
    if (seen.insert(name).second) out.push_back({std::move(name), channels});
  };
  for (const Op& op : p.ops) {
    if (op.kind == kern::kOpMatMul) {
      add(descs.at(static_cast<size_t>(op.weight.offset / 64)).name, op.k);
    } else if (op.kind == kern::kOpKvWrite) {
      add(KvTensorName(op.layer, false), op.n);
      add(KvTensorName(op.layer, true), op.n);
    }
  }
  return out;
}

Profile EmptyProfile(const Model& model, std::span<const Specialization> specs, int32_t histogram_bins) {
  Profile p;
  p.model = FingerprintOf(model);
  p.histogram_bins = histogram_bins;
  for (const Specialization& s : specs) p.specs.push_back(ProfileSpec{s.Name(), s.shape, 0, 0});
  for (ProfiledTensor& t : ProfiledTensors(model.config, *model.family)) {
    TensorProfile tp;
    tp.name = std::move(t.name);
    tp.channels = t.channels;
    tp.rows_per_spec.assign(specs.size(), 0);
    tp.histogram = Histogram(histogram_bins);
    tp.channel_absmax.assign(t.channels, 0.0f);
    tp.channel_sum_squares.assign(t.channels, 0.0);
    p.tensors.push_back(std::move(tp));
  }
  return p;
}

absl::StatusOr<Profile> MergeProfiles(const Profile& a, const Profile& b) {
  if (!a.model.SameModel(b.model)) {
    return absl::InvalidArgumentError(absl::StrCat("profiles of different models: ", a.model.Describe(), " and ",
                                                   b.model.Describe()));
  }
  if (a.histogram_bins != b.histogram_bins) {
    return absl::InvalidArgumentError(absl::StrCat("profiles with different settings: histograms of ", a.histogram_bins,
                                                   " and ", b.histogram_bins, " bins"));
  }
  if (a.tensors.size() != b.tensors.size()) {
    return absl::InvalidArgumentError(
        absl::StrCat("profiles of different tensor lists (", a.tensors.size(), " and ", b.tensors.size(), " tensors)"));
  }
  Profile out;
  out.model = a.model;
  out.histogram_bins = a.histogram_bins;
  out.specs = a.specs;
  // Where each of b's specializations goes in the union.
  std::vector<size_t> b_to_out;
  for (const ProfileSpec& s : b.specs) {
    size_t at = 0;
    while (at < out.specs.size() && out.specs[at].name != s.name) ++at;
    if (at == out.specs.size()) {
      out.specs.push_back(ProfileSpec{s.name, s.shape, 0, 0});
    } else if (!(out.specs[at].shape == s.shape)) {
      return absl::InvalidArgumentError(absl::StrCat("specialization ", s.name, " has different shapes"));
    }
    out.specs[at].inputs += s.inputs;
    out.specs[at].token_rows += s.token_rows;
    b_to_out.push_back(at);
  }
  for (size_t i = 0; i < a.tensors.size(); ++i) {
    const TensorProfile& x = a.tensors[i];
    const TensorProfile& y = b.tensors[i];
    if (x.name != y.name || x.channels != y.channels) {
      return absl::InvalidArgumentError(absl::StrCat("profiles of different tensor lists (tensor ", i, ": ", x.name,
                                                     " [", x.channels, "] and ", y.name, " [", y.channels, "])"));
    }
    TensorProfile t = x;
    t.rows_per_spec.resize(out.specs.size(), 0);
    for (size_t s = 0; s < y.rows_per_spec.size(); ++s) t.rows_per_spec[b_to_out[s]] += y.rows_per_spec[s];
    t.min = std::min(x.min, y.min);  // +inf / -inf while a side has no rows
    t.max = std::max(x.max, y.max);
    t.histogram.Merge(y.histogram);
    for (int32_t c = 0; c < t.channels; ++c) {
      t.channel_absmax[c] = std::max(x.channel_absmax[c], y.channel_absmax[c]);
      t.channel_sum_squares[c] = x.channel_sum_squares[c] + y.channel_sum_squares[c];
    }
    out.tensors.push_back(std::move(t));
  }
  return out;
}

absl::Status CheckProfileServes(const Profile& profile, const Model& model, std::span<const Specialization> specs,
                                const std::string& source) {
  const ModelFingerprint mine = FingerprintOf(model);
  if (!profile.model.SameModel(mine)) {
    return absl::InvalidArgumentError(absl::StrCat(source, ": the profile belongs to another model: it was dumped for ",
                                                   profile.model.Describe(), "; this model is ", mine.Describe(),
                                                   "; dump a profile for this model"));
  }
  for (const ProfiledTensor& t : ProfiledTensors(model.config, *model.family)) {
    const TensorProfile* p = profile.Find(t.name);
    if (p == nullptr || p->rows() == 0) {
      return absl::InvalidArgumentError(
          absl::StrCat(source, ": the profile has no statistics for tensor ", t.name, ", which the package needs"));
    }
    if (p->channels != t.channels) {
      return absl::InvalidArgumentError(absl::StrCat(source, ": tensor ", t.name, " has ", p->channels,
                                                     " channels in the profile; the model has ", t.channels));
    }
  }
  std::vector<std::string> missing;
  for (const Specialization& s : specs) {
    const std::string name = s.Name();
    const auto it = std::find_if(profile.specs.begin(), profile.specs.end(),
                                 [&](const ProfileSpec& p) { return p.name == name; });
    if (it == profile.specs.end() || it->inputs == 0) missing.push_back(name);
  }
  if (!missing.empty()) {
    return absl::InvalidArgumentError(absl::StrCat(source, ": the profile has no samples for specialization",
                                                   missing.size() > 1 ? "s " : " ", absl::StrJoin(missing, ", "),
                                                   " (dump it with inputs for every specialization compiled)"));
  }
  return absl::OkStatus();
}

// ---------------------------------------------------------------------------------------------
// Calibration

const char* CalibrationMethodName(CalibrationMethod m) {
  switch (m) {
    case CalibrationMethod::kMinMax:
      return "minmax";
    case CalibrationMethod::kPercentile:
      return "percentile";
    case CalibrationMethod::kMse:
      return "mse";
  }
  return "?";
}

std::optional<CalibrationMethod> ParseCalibrationMethod(std::string_view name) {
  for (CalibrationMethod m : {CalibrationMethod::kMinMax, CalibrationMethod::kPercentile, CalibrationMethod::kMse}) {
    if (name == CalibrationMethodName(m)) return m;
  }
  return std::nullopt;
}

float PercentileClip(const Histogram& h, float absmax, double percentile) {
  if (!(absmax > 0)) return 0.0f;
  if (percentile >= 100.0) return absmax;
  const std::vector<uint64_t> abs = h.AbsCounts();
  const double total = static_cast<double>(h.total());
  if (total == 0) return absmax;
  const double target = std::max(percentile, 0.0) / 100.0 * total;
  const double w = h.bin_width();
  double below = 0;
  for (size_t k = 0; k < abs.size(); ++k) {
    const double n = static_cast<double>(abs[k]);
    if (n > 0 && below + n >= target) {
      const double value = (static_cast<double>(k) + (target - below) / n) * w;
      return static_cast<float>(std::min<double>(value, absmax));
    }
    below += n;
  }
  return absmax;
}

float MseClip(const Histogram& h, float absmax) {
  if (!(absmax > 0)) return 0.0f;
  const std::vector<uint64_t> abs = h.AbsCounts();
  const double w = h.bin_width();
  auto error = [&](double c) {
    const double s = c / 127.0;
    const double noise = s * s / 12.0;
    double e = 0;
    for (size_t k = 0; k < abs.size(); ++k) {
      if (abs[k] == 0) continue;
      const double centre = (static_cast<double>(k) + 0.5) * w;
      e += static_cast<double>(abs[k]) * (centre <= c ? noise : (centre - c) * (centre - c));
    }
    return e;
  };
  double best = absmax, best_error = error(absmax);
  for (size_t k = 0; k < abs.size(); ++k) {
    const double c = (static_cast<double>(k) + 1) * w;
    if (c >= absmax) break;
    const double e = error(c);
    if (e < best_error) {  // ties keep the larger clip found first (absmax)
      best = c;
      best_error = e;
    }
  }
  return static_cast<float>(std::min<double>(best, absmax));
}

std::shared_ptr<const CalibrationTable> CalibrationTable::Build(const Profile& profile, CalibrationMethod method,
                                                                double percentile, std::string profile_name) {
  auto table = std::shared_ptr<CalibrationTable>(new CalibrationTable());
  table->method_ = method;
  table->percentile_ = percentile;
  for (const TensorProfile& t : profile.tensors) {
    TensorCalibration c;
    c.rows = t.rows();
    c.absmax = t.absmax();
    switch (method) {
      case CalibrationMethod::kMinMax:
        c.clip = c.absmax;
        break;
      case CalibrationMethod::kPercentile:
        c.clip = PercentileClip(t.histogram, c.absmax, percentile);
        break;
      case CalibrationMethod::kMse:
        c.clip = MseClip(t.histogram, c.absmax);
        break;
    }
    c.channel_absmax = t.channel_absmax;
    c.channel_mean_square.resize(t.channels, 0.0f);
    for (int32_t ch = 0; ch < t.channels && c.rows > 0; ++ch) {
      c.channel_mean_square[ch] = static_cast<float>(t.channel_sum_squares[ch] / static_cast<double>(c.rows));
    }
    table->tensors_.emplace(t.name, std::move(c));
  }
  PackageCalibration& r = table->record_;
  r.profile = std::move(profile_name);
  r.profile_checksum = profile.file_checksum;
  r.method = CalibrationMethodName(method);
  r.percentile = percentile;
  r.histogram_bins = profile.histogram_bins;
  for (const ProfileSpec& s : profile.specs) r.specializations.push_back(s.name);
  return table;
}

absl::StatusOr<const TensorCalibration*> CalibrationTable::ForTensor(std::string_view name) const {
  const auto it = tensors_.find(name);
  if (it == tensors_.end()) {
    return absl::NotFoundError(absl::StrCat("the calibration profile has no statistics for tensor ", std::string(name)));
  }
  return &it->second;
}

}  // namespace tailor
