// The runtime: opens a package, owns the paged KV pool and the activation arena, and runs one
// specialization's program per step, on generated kernels (dlopen) or on the native path.
// Execute() is not thread-safe: one step loop owns a Runtime. Everything else is immutable.
#ifndef TAILOR_ENGINE_RUNTIME_H_
#define TAILOR_ENGINE_RUNTIME_H_

#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "common/huge_pages.h"
#include "engine/executor.h"
#include "engine/ops.h"
#include "engine/package.h"
#include "engine/program.h"
#include "engine/thread_pool.h"

namespace tailor {

struct RuntimeOptions {
  // Size of the KV block pool in MiB; 0: enough for the largest specialization's full batch.
  int64_t kv_cache_mb = 0;
  // Run the native path even where generated kernels exist (the reference for generated code).
  bool force_native = false;
  // Receives warnings (e.g. a package built for CPU features this machine lacks).
  std::function<void(const std::string&)> warn;
  // Time every op of every step by kind (op_seconds(); for benchmarks: it adds a clock read per op).
  bool profile_ops = false;
  // Called after each op of every step with the op, its program and the step's arguments (the
  // arena holds every buffer the op and the ops before it wrote; pos/keep tell the valid rows).
  // On Execute's thread, after the op's partitions have all finished, never concurrently; the
  // observer must not write to the arena. For calibration profiles (engine/profile_dump.h);
  // unset, it costs one branch per op.
  std::function<void(const Program& program, const Op& op, const kern::OpArgs& args)> after_op;
  // The worker threads of -ols=N programs (spin budget, fallback to one thread under contention).
  ThreadPoolOptions threads;
};

class Runtime final : public Executor {
 public:
  static absl::StatusOr<std::unique_ptr<Runtime>> Open(const std::filesystem::path& dir,
                                                       const RuntimeOptions& options);
  ~Runtime() override;

  std::span<const Specialization> specializations() const override { return specs_; }
  const CostTable& costs() const override { return costs_; }
  int32_t vocab_size() const override { return package_->config.vocab_size; }
  int32_t kv_block_size() const override { return package_->kv_block; }
  int32_t num_kv_blocks() const override { return num_blocks_; }
  absl::StatusOr<StepOutput> Execute(const StepPlan& plan) override;

  const Package& package() const { return *package_; }
  // With RuntimeOptions::profile_ops: seconds spent in each op kind (kern::OpKind) since open or
  // the last reset, summed over steps.
  const std::vector<double>& op_seconds() const { return op_seconds_; }
  void reset_op_seconds() { op_seconds_.assign(kern::kNumOpKinds, 0.0); }
  const Program& program(int32_t spec) const { return programs_[spec]; }
  bool uses_generated_kernels() const { return !generated_.empty(); }
  ThreadPoolStats thread_stats() const { return pool_->stats(); }
  int64_t kv_block_bytes() const { return block_bytes_; }
  // What the runtime holds in memory: its weights (the huge-page copy, or on AMX runtimes the
  // file mapping plus the packed tiles), its KV pool, and how much of those the kernel backs with
  // huge pages now (-1: cannot tell). Reads /proc/self/smaps: for start-up reports, not per step.
  struct Memory {
    int64_t weights_bytes = 0, kv_bytes = 0, huge_page_bytes = -1;
  };
  Memory memory() const;

 private:
  // Fills packed_ (AMX runtimes), partitions on pool_ in `parts`.
  absl::Status PackAmxWeights(int parts);

  using OpFn = void (*)(const kern::OpArgs*, int, int);

  Runtime() = default;
  absl::Status Validate(const StepPlan& plan) const;

  std::unique_ptr<Package> package_;
  std::vector<Specialization> specs_;
  CostTable costs_;
  std::vector<Program> programs_;
  std::vector<std::vector<kern::OpDesc>> descs_;  // per spec, per op: what the native path runs
  bool profile_ops_ = false;
  std::function<void(const Program&, const Op&, const kern::OpArgs&)> after_op_;  // RuntimeOptions::after_op
  std::vector<double> op_seconds_;  // per op kind, with profile_ops_
  std::vector<std::vector<OpFn>> generated_;  // per spec; empty on the native path
  std::vector<void*> dl_handles_;
  OpConstants constants_;
  CpuIsa isa_ = CpuIsa::kPortable;
  std::unique_ptr<ThreadPool> pool_;
  int32_t num_blocks_ = 0;
  int64_t block_bytes_ = 0;
  // The KV pool, the step arena and (except on AMX runtimes) a copy of the weights, on huge pages
  // (common/huge_pages.h). weights_copy_ is read-only once copied.
  HugePageBuffer kv_, arena_, weights_copy_;
  std::vector<float> cos_sin_;  // [max ctx_len, head_dim / 2, 2]
  std::vector<float> scores_;   // [threads, kern::AttentionScratch(max ctx_len)]
  std::unique_ptr<kern::q8::QuantizedRows[]> q8_scratch_;  // [threads] when int8 weights exist
  // AMX only: the size of the weights file, holding at each Packable bf16 matmul weight's offset
  // its amx::PackWeights copy (the other pages never touched nor read); read-only once packed. The
  // row-major weights stay the file mapping's.
  HugePageBuffer packed_;
  // Step inputs, sized for the largest specialization.
  std::vector<int32_t> tokens_, pos_, row_of_, tables_, keep_;
};

// Key that ties generated code to the program it was generated for.
std::string ProgramKey(const Program& program, const OpConstants& constants);

// `rows` rows (<= 0: the full batch) of specialization `spec_index`: every row holds seq_len
// tokens (id 1) ending at position `end_pos` (clamped to [seq_len, ctx_len]), row r on blocks
// [r * per_row, ...). The plan's spans point into the struct (keep it alive and in place while
// the plan is used).
struct SyntheticStep {
  std::vector<std::vector<BlockId>> tables;
  std::vector<int32_t> tokens;
  StepPlan plan;
};
absl::StatusOr<std::unique_ptr<SyntheticStep>> MakeSyntheticStep(const Runtime& runtime, int32_t spec_index,
                                                                 int32_t end_pos, int32_t rows = 0);

// One timed step: rows used, attended positions (StepShape::attended), seconds.
struct CostSample {
  int32_t rows = 0;
  int64_t attended = 0;
  double seconds = 0;
};
// The least-squares StepCostModel through `samples`, every coefficient >= 0.
StepCostModel FitStepCostModel(const std::vector<CostSample>& samples);

struct MeasuredCost {
  StepCostModel model;
  double full_seconds = 0;      // a full batch ending at ctx_len
  double at_start_seconds = 0;  // a full batch ending at seq_len
};
// Times each specialization at the full batch and one row, each ending at seq_len, half-way
// and ctx_len; each point the median of `repeats` runs after a warm-up (robust to a noisy
// neighbour in either direction), and fits the cost model through them.
absl::StatusOr<std::vector<MeasuredCost>> MeasureStepCosts(Runtime& runtime, int repeats);
// How MeasureStepCost times each point (the defaults are MeasureStepCosts').
struct PointTiming {
  // > 0: a point stops repeating once its timed runs took this long (after at least two, or
  // `repeats` if fewer): bounds the time slow specializations take.
  double max_point_seconds = 0;
  // The fastest run instead of the median: on a machine shared with other load, which only ever
  // adds time, the figure least disturbed by it.
  bool fastest = false;
};
// The same for one specialization (index into runtime.specializations()).
absl::StatusOr<MeasuredCost> MeasureStepCost(Runtime& runtime, int32_t spec, int repeats,
                                             const PointTiming& timing = {});

}  // namespace tailor

#endif  // TAILOR_ENGINE_RUNTIME_H_
