// Calibration profiles (the seed's `-dump-profile` / `-load-profile`): statistics of the values
// that quantization cares about, gathered by running each specialization's fp32 program over
// calibration inputs (engine/profile_dump.h), stored in a `.pgq` file, merged across runs, and
// turned into clipping ranges and channel importances (CalibrationTable) for the compiler.
//
// What is profiled ("profiled tensors"), named as the package names tensors:
//   - the input of every matmul, under the name of the weight it multiplies
//     ("blk.3.attn_q.weight"; q, k and v share an input and each gets its own copy);
//   - the keys and values each layer writes to the KV cache, after rope for keys ("blk.3.k",
//     "blk.3.v").
// Channels are the input features of the matmul (its k) or kv_dim for K/V, in the package's
// feature order. Only valid rows (position >= 0, kept rows for ops after the last-token gather)
// count.
//
// File format (`.pgq`, little-endian), version kProfileVersion:
//   bytes 0..7    magic "TLRPGQ\r\n"
//   u32           version
//   u32           H: bytes of the header
//   H bytes       header, UTF-8 JSON:
//                 {"model": {fingerprint}, "settings": {"histogram_bins": 512},
//                  "specializations": [{"name", "batch_size", "seq_len", "ctx_len", "inputs",
//                                       "token_rows"}],
//                  "tensors": [{"name", "channels", "rows_per_spec": [per specialization],
//                               "min", "max" (null when no rows), "histogram_exponent"}]}
//   payload       per tensor, in header order: u64 counts[bins], f32 channel_absmax[channels],
//                 f64 channel_sum_squares[channels]
//   u64           Checksum64 (common/checksum.h) of every byte before it
// Readers check every size against the file before allocating, so a corrupt file is refused
// with a message and never makes the reader allocate more than the file's size justifies.
#ifndef TAILOR_ENGINE_PROFILE_H_
#define TAILOR_ENGINE_PROFILE_H_

#include <cstdint>
#include <filesystem>
#include <limits>
#include <map>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "engine/executor.h"
#include "engine/package.h"
#include "models/family.h"
#include "models/model.h"

namespace tailor {

inline constexpr uint32_t kProfileVersion = 1;
inline constexpr int32_t kDefaultHistogramBins = 512;

// Identifies the model a profile belongs to: its shape and a checksum of its weights as the
// source file stores them (so another checkpoint of the same shape, or the same checkpoint in
// another file format or dtype, is another model).
struct ModelFingerprint {
  std::string name;  // for messages only; not compared
  std::string family, architecture;
  int32_t dim = 0, n_layers = 0, n_heads = 0, n_kv_heads = 0, head_dim = 0, ffn_dim = 0, vocab_size = 0;
  std::string weights_checksum;  // 16 hex digits

  bool SameModel(const ModelFingerprint& other) const;  // every field but `name`
  std::string Describe() const;  // "stories260K (llama, llama, dim 64, ..., weights 0123...)"
};

// Reads every weight of `model` (its source bytes) once.
ModelFingerprint FingerprintOf(const Model& model);

// A histogram of values over [-R, R), R = 2^exponent, in `bins` equal bins (bins a power of two
// >= 4), bin i covering [(i - bins/2) w, (i - bins/2 + 1) w) with w = 2R / bins. The range grows
// by powers of two as larger values arrive: doubling R merges bins (2j, 2j+1) into bins/4 + j,
// which is exactly where the values would have been binned at the larger range, so histograms
// merge exactly (the one with the smaller range is rebinned to the larger) and the result does
// not depend on the order values arrived in. Not thread-safe.
class Histogram {
 public:
  static constexpr int32_t kMinExponent = -126;
  static constexpr int32_t kMaxExponent = 128;

  explicit Histogram(int32_t bins = kDefaultHistogramBins);
  // From stored counts (ParseProfile checks them).
  Histogram(int32_t exponent, std::vector<uint64_t> counts);

  int32_t bins() const { return static_cast<int32_t>(counts_.size()); }
  int32_t exponent() const { return exponent_; }
  double range() const;        // R = 2^exponent
  double bin_width() const;    // 2R / bins
  const std::vector<uint64_t>& counts() const { return counts_; }
  uint64_t total() const;

  // Grows the range until every |x| <= absmax falls inside it (absmax finite, >= 0).
  void Cover(float absmax);
  // Counts x, which must lie in the current range (Cover it first).
  void Add(float x);
  // Grows the range to at least 2^exponent.
  void GrowTo(int32_t exponent);
  // Adds `other` (same number of bins), rebinning the one with the smaller range.
  void Merge(const Histogram& other);
  // Counts of |x| in bins/2 bins of width bin_width() over [0, R): bin k covers [k w, (k+1) w)
  // (the negative bins folded onto it).
  std::vector<uint64_t> AbsCounts() const;

 private:
  int32_t exponent_ = kMinExponent;
  std::vector<uint64_t> counts_;
};

// Statistics of one profiled tensor.
struct TensorProfile {
  std::string name;
  int32_t channels = 0;
  std::vector<int64_t> rows_per_spec;  // rows seen, indexed like Profile::specs
  float min = std::numeric_limits<float>::infinity();    // +inf while no rows
  float max = -std::numeric_limits<float>::infinity();   // -inf while no rows
  Histogram histogram;
  std::vector<float> channel_absmax;        // [channels]
  std::vector<double> channel_sum_squares;  // [channels]

  int64_t rows() const;
  float absmax() const;  // max(|min|, |max|); 0 while no rows
};

// A specialization the profile ran, and what it saw.
struct ProfileSpec {
  std::string name;  // Specialization::Name(): "b4_s16_c512"
  SpecShape shape;
  int64_t inputs = 0;      // steps run on it
  int64_t token_rows = 0;  // valid token rows (tokens) those steps held
};

struct Profile {
  ModelFingerprint model;
  int32_t histogram_bins = kDefaultHistogramBins;
  std::vector<ProfileSpec> specs;
  std::vector<TensorProfile> tensors;  // ProfiledTensors order
  // ChecksumHex of the file it was read from; empty for a profile made in memory.
  std::string file_checksum;

  const TensorProfile* Find(std::string_view name) const;  // nullptr if absent
};

// A profiled tensor of a model: its name and channels (see the file comment).
struct ProfiledTensor {
  std::string name;
  int32_t channels = 0;
  bool operator==(const ProfiledTensor&) const = default;
};
// Every profiled tensor of `config`'s graph in `family`, in program order.
std::vector<ProfiledTensor> ProfiledTensors(const ModelConfig& config, const ModelFamily& family);
// "blk.3.k" / "blk.3.v".
std::string KvTensorName(int32_t layer, bool value);

// An empty profile of `model` over `specs` (every tensor with no rows).
Profile EmptyProfile(const Model& model, std::span<const Specialization> specs, int32_t histogram_bins);

// The file format above.
std::string SerializeProfile(const Profile& profile);
// Errors (InvalidArgument) name `source` and what is wrong: truncated, wrong magic or version,
// sizes or values that do not add up, checksum mismatch.
absl::StatusOr<Profile> ParseProfile(std::span<const std::byte> bytes, const std::string& source);
absl::StatusOr<Profile> ReadProfile(const std::filesystem::path& path);
// Written to a temporary file beside `path`, then renamed (a failed write leaves nothing).
absl::Status WriteProfile(const Profile& profile, const std::filesystem::path& path);

// a + b: counts, min/max, histograms (rebinned to the larger range) and channel statistics
// summed; specializations matched by name (the union, in a's order then b's). Refuses
// (InvalidArgument) profiles of different models, histogram settings or tensor lists.
absl::StatusOr<Profile> MergeProfiles(const Profile& a, const Profile& b);

// Checks that `profile` serves compiling `model` into `specs`: the same model (fingerprint),
// every profiled tensor present with its channels, and samples for every specialization.
// Errors (InvalidArgument) name `source` and the first thing missing.
absl::Status CheckProfileServes(const Profile& profile, const Model& model, std::span<const Specialization> specs,
                                const std::string& source);

// How a clipping range is chosen from a tensor's statistics.
enum class CalibrationMethod { kMinMax, kPercentile, kMse };
const char* CalibrationMethodName(CalibrationMethod m);  // "minmax", "percentile", "mse"
std::optional<CalibrationMethod> ParseCalibrationMethod(std::string_view name);

// The `percentile` (in (0, 100]) percentile of |x| from the histogram, interpolated linearly
// within its bin, at most `absmax`; 100 gives absmax.
float PercentileClip(const Histogram& histogram, float absmax, double percentile);
// The clip c in (0, absmax] minimizing the expected squared error of 8-bit symmetric
// quantization (scale c / 127) over the histogram: rounding noise (c/127)^2 / 12 for values
// inside, (|x| - c)^2 for values clipped (bin centres); candidates are the |x| bin edges and
// absmax; ties go to the larger clip.
float MseClip(const Histogram& histogram, float absmax);

// What the compiler gets for one profiled tensor.
struct TensorCalibration {
  float absmax = 0;  // largest |x| seen
  float clip = 0;    // the method's clipping range, in [0, absmax]
  int64_t rows = 0;  // rows seen
  std::vector<float> channel_absmax;       // [channels] largest |x| per input channel
  std::vector<float> channel_mean_square;  // [channels] mean of x^2 per input channel
};

// Per profiled tensor, the clipping range and channel statistics chosen from a profile.
// Immutable after Build; safe to share across threads.
class CalibrationTable {
 public:
  // `percentile` is used by kPercentile only (in (0, 100]).
  static std::shared_ptr<const CalibrationTable> Build(const Profile& profile, CalibrationMethod method,
                                                       double percentile, std::string profile_name);

  // NotFound naming the tensor when the profile has no statistics for it.
  absl::StatusOr<const TensorCalibration*> ForTensor(std::string_view name) const;

  CalibrationMethod method() const { return method_; }
  double percentile() const { return percentile_; }
  // What the package manifest records ("calibration").
  const PackageCalibration& record() const { return record_; }

 private:
  CalibrationTable() = default;
  CalibrationMethod method_ = CalibrationMethod::kMinMax;
  double percentile_ = 99.99;
  std::map<std::string, TensorCalibration, std::less<>> tensors_;
  PackageCalibration record_;
};

}  // namespace tailor

#endif  // TAILOR_ENGINE_PROFILE_H_
