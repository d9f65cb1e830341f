#include "engine/profile_dump.h"

#include <stdlib.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <limits>
#include <map>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "common/status_macros.h"
#include "engine/compiler.h"
#include "engine/runtime.h"

namespace tailor {
namespace {

namespace fs = std::filesystem;

// A fresh directory, removed with everything in it when destroyed.
class ScratchDir {
 public:
  static absl::StatusOr<std::unique_ptr<ScratchDir>> Make(const fs::path& root) {
    std::error_code ec;
    const fs::path base = root.empty() ? fs::temp_directory_path(ec) : root;
    std::string pattern = (base / "tailor-profile-XXXXXX").string();
    if (ec || mkdtemp(pattern.data()) == nullptr) {
      return absl::InternalError(absl::StrCat(base.string(), ": cannot make a temporary directory"));
    }
    return std::unique_ptr<ScratchDir>(new ScratchDir(pattern));
  }
  ~ScratchDir() {
    std::error_code ec;
    fs::remove_all(path_, ec);
  }
  const fs::path& path() const { return path_; }

 private:
  explicit ScratchDir(fs::path p) : path_(std::move(p)) {}
  fs::path path_;
};

// Receives the runtime's after_op calls and adds what profiled tensors hold to the profile.
// Single-threaded (Execute's thread).
class Recorder {
 public:
  Recorder(const Package& pkg, Profile* profile) : profile_(profile) {
    const std::vector<TensorDesc> descs = pkg.family->Tensors(pkg.config);
    std::map<std::string, size_t> index;
    for (size_t i = 0; i < profile->tensors.size(); ++i) index[profile->tensors[i].name] = i;
    for (size_t i = 0; i < descs.size() && i < pkg.weights.tensors.size(); ++i) {
      if (auto it = index.find(descs[i].name); it != index.end()) by_offset_[pkg.weights.tensors[i].offset] = it->second;
    }
    for (int32_t l = 0; l < pkg.config.n_layers; ++l) {
      k_of_layer_.push_back(index.at(KvTensorName(l, false)));
      v_of_layer_.push_back(index.at(KvTensorName(l, true)));
    }
  }

  void BeginStep(int32_t spec) { spec_ = spec; }
  const absl::Status& status() const { return status_; }

  void AfterOp(const Program& prog, const Op& op, const kern::OpArgs& args) {
    if (!status_.ok() || (op.kind != kern::kOpMatMul && op.kind != kern::kOpKvWrite)) return;
    // The valid rows: token rows at a position, or kept rows that hold a kept token.
    const bool kept = KeptBuffers(prog)[op.in];
    rows_.clear();
    for (int32_t r = 0; r < op.rows; ++r) {
      if ((kept ? args.keep[r] : args.pos[r]) >= 0) rows_.push_back(r);
    }
    auto buffer = [&](int32_t id) { return reinterpret_cast<const float*>(args.arena + prog.buffers[id].offset); };
    if (op.kind == kern::kOpMatMul) {
      const auto it = by_offset_.find(op.weight.offset);
      if (it == by_offset_.end()) {
        status_ = absl::InternalError(absl::StrCat("a matmul of ", prog.spec.Name(), " reads an unknown weight"));
        return;
      }
      Record(profile_->tensors[it->second], buffer(op.in), op.k);
    } else {
      Record(profile_->tensors[k_of_layer_.at(op.layer)], buffer(op.in), op.n);
      Record(profile_->tensors[v_of_layer_.at(op.layer)], buffer(op.in2), op.n);
    }
  }

 private:
  // Per buffer of `prog`: whether its rows are kept rows (the last-token gather's output and
  // everything computed from it).
  const std::vector<bool>& KeptBuffers(const Program& prog) {
    auto [it, inserted] = kept_.try_emplace(&prog);
    if (inserted) {
      std::vector<bool>& kept = it->second;
      kept.assign(prog.buffers.size(), false);
      for (const Op& op : prog.ops) {
        if (op.out < 0) continue;
        if (op.kind == kern::kOpGather || (op.in >= 0 && kept[op.in])) kept[op.out] = true;
      }
    }
    return it->second;
  }

  // Adds rows_ of data [rows, width] to `t`.
  void Record(TensorProfile& t, const float* data, int32_t width) {
    if (width != t.channels) {
      status_ = absl::InternalError(absl::StrCat(t.name, ": ", width, " channels, the profile expects ", t.channels));
      return;
    }
    if (rows_.empty()) return;
    float lo = std::numeric_limits<float>::infinity(), hi = -lo;
    for (int32_t r : rows_) {
      const float* row = data + static_cast<int64_t>(r) * width;
      for (int32_t c = 0; c < width; ++c) {
        lo = std::min(lo, row[c]);
        hi = std::max(hi, row[c]);
        if (!std::isfinite(row[c])) {
          status_ = absl::InvalidArgumentError(absl::StrCat("non-finite value in ", t.name, " on specialization ",
                                                            profile_->specs[spec_].name));
          return;
        }
      }
    }
    t.histogram.Cover(std::max(std::fabs(lo), std::fabs(hi)));
    for (int32_t r : rows_) {
      const float* row = data + static_cast<int64_t>(r) * width;
      for (int32_t c = 0; c < width; ++c) {
        const float x = row[c];
        t.histogram.Add(x);
        t.channel_absmax[c] = std::max(t.channel_absmax[c], std::fabs(x));
        t.channel_sum_squares[c] += static_cast<double>(x) * x;
      }
    }
    t.min = std::min(t.min, lo);
    t.max = std::max(t.max, hi);
    t.rows_per_spec[spec_] += static_cast<int64_t>(rows_.size());
  }

  Profile* profile_;
  int32_t spec_ = 0;
  absl::Status status_;
  std::map<int64_t, size_t> by_offset_;  // weight offset in the package -> profile tensor
  std::vector<size_t> k_of_layer_, v_of_layer_;
  std::map<const Program*, std::vector<bool>> kept_;
  std::vector<int32_t> rows_;  // valid rows of the op being recorded
};

std::string ShapeText(const StepShape& s) {
  return absl::StrCat("(rows ", s.rows, ", tokens per row ", s.max_tokens_per_row, ", positions ", s.max_end_pos, ")");
}

}  // namespace

StepShape CalibrationInput::Shape() const {
  StepShape s;
  for (const Row& r : rows) {
    ++s.rows;
    s.max_tokens_per_row = std::max<int32_t>(s.max_tokens_per_row, static_cast<int32_t>(r.tokens.size()));
    s.max_end_pos = std::max<int32_t>(s.max_end_pos, r.start + static_cast<int32_t>(r.tokens.size()));
  }
  return s;
}

bool CalibrationInput::BelongsTo(const SpecShape& spec) const {
  if (listed_rows != spec.batch_size || static_cast<int32_t>(rows.size()) != spec.batch_size) return false;
  for (const Row& r : rows) {
    if (static_cast<int32_t>(r.tokens.size()) != spec.seq_len || r.start + spec.seq_len > spec.ctx_len) return false;
  }
  return true;
}

std::vector<std::string> UncoveredSpecializations(std::span<const Specialization> specs,
                                                  std::span<const CalibrationInput> inputs) {
  std::vector<std::string> out;
  for (const Specialization& s : specs) {
    const bool covered = std::any_of(inputs.begin(), inputs.end(),
                                     [&](const CalibrationInput& in) { return in.BelongsTo(s.shape); });
    if (!covered) out.push_back(s.Name());
  }
  return out;
}

absl::StatusOr<Profile> DumpProfile(const Model& model, const std::vector<Specialization>& specs,
                                    std::span<const CalibrationInput> inputs, const DumpOptions& o) {
  auto progress = [&](const std::string& line) {
    if (o.progress) o.progress(line);
  };
  const int32_t bins = o.histogram_bins;
  if (bins < 4 || bins > 65536 || (bins & (bins - 1)) != 0) {
    return absl::InvalidArgumentError(absl::StrCat("histogram bins: ", bins, " (expected a power of two in [4, 65536])"));
  }
  if (const std::vector<std::string> missing = UncoveredSpecializations(specs, inputs); !missing.empty()) {
    return absl::InvalidArgumentError(absl::StrCat(
        o.source, ": no input belongs to specialization", missing.size() > 1 ? "s " : " ", absl::StrJoin(missing, ", "),
        "; every specialization needs at least one input of exactly its batch_size rows of seq_len tokens below "
        "its ctx_len (`tailor calibrate` makes such a file)"));
  }
  // Every input must run somewhere, with token ids the model has; slots own their furthest block.
  int32_t slots = 0;
  std::vector<int32_t> slot_end;
  for (size_t i = 0; i < inputs.size(); ++i) {
    const CalibrationInput& in = inputs[i];
    const StepShape shape = in.Shape();
    if (shape.rows == 0) {
      return absl::InvalidArgumentError(absl::StrCat(o.source, ": inputs[", i, "] has no valid token"));
    }
    if (std::none_of(specs.begin(), specs.end(), [&](const Specialization& s) { return Covers(s.shape, shape); })) {
      return absl::InvalidArgumentError(
          absl::StrCat(o.source, ": inputs[", i, "] needs ", ShapeText(shape), "; no specialization can run it"));
    }
    for (const CalibrationInput::Row& r : in.rows) {
      if (r.slot < 0 || r.start < 0) {
        return absl::InvalidArgumentError(absl::StrCat(o.source, ": inputs[", i, "] has a negative slot or position"));
      }
      for (int32_t t : r.tokens) {
        if (t < 0 || t >= model.config.vocab_size) {
          return absl::InvalidArgumentError(absl::StrCat(o.source, ": inputs[", i, "] row ", r.slot, ": token id ", t,
                                                         " outside the vocabulary [0, ", model.config.vocab_size, ")"));
        }
      }
      slots = std::max(slots, r.slot + 1);
      slot_end.resize(slots, 0);
      slot_end[r.slot] = std::max<int32_t>(slot_end[r.slot], r.start + static_cast<int32_t>(r.tokens.size()));
    }
  }

  const auto t0 = std::chrono::steady_clock::now();
  TAILOR_ASSIGN_OR_RETURN(auto scratch, ScratchDir::Make(o.temp_root));
  CompileOptions co;
  co.out = scratch->path() / "fp32";
  co.weight_dtype = DType::kF32;
  co.kv_dtype = DType::kF32;
  co.target = Target::kNative;
  co.compile_only = true;
  co.tokenizer_bytes = "";  // not used
  // One thread per program: -ols never changes results, and the recorder runs between ops
  // (workers would spin through it).
  std::vector<Specialization> serial = specs;
  for (Specialization& s : serial) s.ols = 1;
  TAILOR_RETURN_IF_ERROR(CompilePackage(model, serial, co));

  Profile profile = EmptyProfile(model, specs, bins);
  std::unique_ptr<Recorder> recorder;
  RuntimeOptions ro;
  ro.force_native = true;
  ro.after_op = [&recorder](const Program& p, const Op& op, const kern::OpArgs& a) {
    if (recorder) recorder->AfterOp(p, op, a);
  };
  TAILOR_ASSIGN_OR_RETURN(auto rt, Runtime::Open(co.out, ro));
  const int32_t block = rt->kv_block_size();
  std::vector<std::vector<BlockId>> tables(slots);
  BlockId next_block = 0;
  for (int32_t r = 0; r < slots; ++r) {
    for (int32_t b = 0; b < (slot_end[r] + block - 1) / block; ++b) tables[r].push_back(next_block++);
  }
  if (next_block > rt->num_kv_blocks()) {  // more slots than the largest batch: a larger pool
    ro.kv_cache_mb = (int64_t{next_block} * rt->kv_block_bytes() + (1 << 20) - 1) >> 20;
    rt.reset();
    TAILOR_ASSIGN_OR_RETURN(rt, Runtime::Open(co.out, ro));
  }
  recorder = std::make_unique<Recorder>(rt->package(), &profile);
  const double compile_seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();

  int64_t steps = 0;
  for (size_t i = 0; i < inputs.size(); ++i) {
    const CalibrationInput& in = inputs[i];
    const StepShape shape = in.Shape();
    StepPlan plan;
    int64_t tokens = 0;
    for (const CalibrationInput::Row& r : in.rows) {
      plan.rows.push_back(StepRow{r.slot, r.tokens, r.start, tables[r.slot], 1});
      tokens += static_cast<int64_t>(r.tokens.size());
    }
    for (size_t s = 0; s < specs.size(); ++s) {
      if (!Covers(specs[s].shape, shape)) continue;
      plan.spec_index = static_cast<int32_t>(s);
      recorder->BeginStep(plan.spec_index);
      TAILOR_RETURN_IF_ERROR(rt->Execute(plan).status());
      if (!recorder->status().ok()) {
        return absl::Status(recorder->status().code(),
                            absl::StrCat(o.source, ": inputs[", i, "]: ", recorder->status().message()));
      }
      profile.specs[s].inputs += 1;
      profile.specs[s].token_rows += tokens;
      ++steps;
    }
  }
  const double run_seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count() - compile_seconds;
  progress(absl::StrFormat("%d inputs run as %d steps over %d specializations (fp32 programs: %.2f s to compile, "
                           "%.2f s to run)",
                           inputs.size(), steps, specs.size(), compile_seconds, run_seconds));
  return profile;
}

}  // namespace tailor
