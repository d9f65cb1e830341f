// A fake Executor for scheduler tests: no weights, deterministic logits, strict plan checks.
//
// It validates plans as the real Runtime does (rows <= batch_size, 1..seq_len tokens per row,
// start_pos + tokens <= ctx_len, logits_to_keep 0 or 1, block tables long enough, block ids in
// the pool, token ids in the vocabulary) and more: no block appears twice in a row's table, and
// no block a row writes appears in another row's table of the same step (writing into a shared
// prefix block is a bug).
//
// Its KV "memory" stores, per block slot, the (token, position) written there. The logits of a
// kept row are a hash of the tokens read back through the row's block table at positions
// [0, start_pos + tokens): a slot that holds another position fails the step, and a slot holding
// the wrong token changes the logits, so prefix-cache and preemption bugs change the output.
// ReferenceLogits() computes the same logits from a token history directly.
//
// Thread-safe: Execute() may run on the engine's loop thread while a test reads steps().
#ifndef TAILOR_TESTS_FAKE_EXECUTOR_H_
#define TAILOR_TESTS_FAKE_EXECUTOR_H_

#include <chrono>
#include <condition_variable>
#include <map>
#include <cstdint>
#include <mutex>
#include <span>
#include <string>
#include <thread>
#include <vector>

#include "absl/container/flat_hash_set.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "engine/executor.h"
#include "scheduler/request.h"

namespace tailor::fake {

struct FakeExecutorOptions {
  std::vector<SpecShape> shapes;  // one specialization each
  std::vector<double> costs;      // seconds per step, like shapes (empty: batch*seq*ctx * 1e-6)
  int32_t vocab_size = 32;
  int32_t kv_block_size = 4;
  int32_t num_kv_blocks = 64;
  std::chrono::microseconds step_latency{0};  // simulated compute time per step
  int64_t fail_step = -1;                     // Execute() number (0-based) that fails
};

struct RecordedRow {
  RequestId id = 0;
  int32_t start_pos = 0;
  int32_t num_tokens = 0;
  int32_t logits_to_keep = 0;
  std::vector<BlockId> block_table;
};

struct RecordedStep {
  int32_t spec_index = 0;
  std::vector<RecordedRow> rows;
};

class FakeExecutor final : public Executor {
 public:
  explicit FakeExecutor(FakeExecutorOptions options) : options_(std::move(options)) {
    for (const SpecShape& s : options_.shapes) specs_.push_back(Specialization{s, 1});
    if (options_.costs.empty()) {
      for (const SpecShape& s : options_.shapes) {
        options_.costs.push_back(1e-6 * s.batch_size * s.seq_len * s.ctx_len);
      }
    }
    costs_ = CostTable::Fixed(options_.costs);
    slots_.assign(static_cast<size_t>(options_.num_kv_blocks) * options_.kv_block_size, Slot{});
  }

  std::span<const Specialization> specializations() const override { return specs_; }
  const CostTable& costs() const override { return costs_; }
  int32_t vocab_size() const override { return options_.vocab_size; }
  int32_t kv_block_size() const override { return options_.kv_block_size; }
  int32_t num_kv_blocks() const override { return options_.num_kv_blocks; }

  // Logits after `history` (all tokens of a sequence so far): vocab_size values in [0, 10).
  static std::vector<float> ReferenceLogits(std::span<const int32_t> history, int32_t vocab_size) {
    uint64_t h = 0xcbf29ce484222325ull;
    for (int32_t t : history) h = Mix(h ^ static_cast<uint64_t>(static_cast<uint32_t>(t) + 1));
    std::vector<float> logits(vocab_size);
    for (int32_t v = 0; v < vocab_size; ++v) {
      logits[v] = static_cast<float>(Mix(h + static_cast<uint64_t>(v) * 0x9e3779b97f4a7c15ull) % 10000) / 1000.0f;
    }
    return logits;
  }

  absl::StatusOr<StepOutput> Execute(const StepPlan& plan) override {
    std::lock_guard<std::mutex> lock(mu_);
    const int64_t call = calls_++;
    if (options_.step_latency.count() > 0) std::this_thread::sleep_for(options_.step_latency);
    if (auto it = spec_latency_.find(plan.spec_index); it != spec_latency_.end()) {
      std::this_thread::sleep_for(it->second);
    }
    if (call == options_.fail_step) return absl::InternalError("injected failure");
    if (absl::Status s = Validate(plan); !s.ok()) {
      errors_.push_back(std::string(s.message()));
      return s;
    }
    const int32_t B = options_.kv_block_size;
    RecordedStep rec{plan.spec_index, {}};
    StepOutput out;
    out.logits.resize(plan.rows.size());
    for (size_t r = 0; r < plan.rows.size(); ++r) {
      const StepRow& row = plan.rows[r];
      const int32_t n = static_cast<int32_t>(row.tokens.size());
      for (int32_t i = 0; i < n; ++i) {
        const int32_t p = row.start_pos + i;
        slots_[static_cast<size_t>(row.block_table[p / B]) * B + p % B] = Slot{row.tokens[i], p};
      }
      const int32_t end = row.start_pos + n;
      rec.rows.push_back(RecordedRow{row.id, row.start_pos, n, row.logits_to_keep,
                                     std::vector<BlockId>(row.block_table.begin(),
                                                          row.block_table.begin() + (end + B - 1) / B)});
    }
    // Reads after all writes: rows of one step never share written blocks (checked), so the
    // order does not matter.
    for (size_t r = 0; r < plan.rows.size(); ++r) {
      const StepRow& row = plan.rows[r];
      if (row.logits_to_keep == 0) continue;
      const int32_t end = row.start_pos + static_cast<int32_t>(row.tokens.size());
      std::vector<int32_t> history(end);
      for (int32_t p = 0; p < end; ++p) {
        const Slot& slot = slots_[static_cast<size_t>(row.block_table[p / B]) * B + p % B];
        if (slot.pos != p) {
          std::string e = absl::StrCat("row ", r, " (request ", row.id, ") reads position ", p, " from block ",
                                       row.block_table[p / B], ", which holds position ", slot.pos);
          errors_.push_back(e);
          return absl::FailedPreconditionError(e);
        }
        history[p] = slot.token;
      }
      out.logits[r] = ReferenceLogits(history, options_.vocab_size);
    }
    steps_.push_back(std::move(rec));
    return out;
  }

  // From now on, steps of `spec` take `latency` (on top of step_latency): a specialization that
  // turned slow.
  void SetSpecLatency(int32_t spec, std::chrono::microseconds latency) {
    std::lock_guard<std::mutex> lock(mu_);
    spec_latency_[spec] = latency;
  }

  std::vector<RecordedStep> steps() const {
    std::lock_guard<std::mutex> lock(mu_);
    return steps_;
  }
  void ClearSteps() {
    std::lock_guard<std::mutex> lock(mu_);
    steps_.clear();
  }
  // Messages of every plan refused so far (a correct scheduler produces none).
  std::vector<std::string> errors() const {
    std::lock_guard<std::mutex> lock(mu_);
    return errors_;
  }

 private:
  struct Slot {
    int32_t token = -1;
    int32_t pos = -1;  // -1: never written
  };

  static uint64_t Mix(uint64_t x) {
    x += 0x9e3779b97f4a7c15ull;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
    return x ^ (x >> 31);
  }

  absl::Status Validate(const StepPlan& plan) const {
    if (plan.spec_index < 0 || plan.spec_index >= static_cast<int32_t>(specs_.size())) {
      return absl::InvalidArgumentError(absl::StrCat("specialization index ", plan.spec_index, " out of range"));
    }
    const SpecShape& s = specs_[plan.spec_index].shape;
    const int32_t B = options_.kv_block_size;
    if (plan.rows.empty()) return absl::InvalidArgumentError("a step with no rows");
    if (static_cast<int32_t>(plan.rows.size()) > s.batch_size) {
      return absl::InvalidArgumentError(absl::StrCat(plan.rows.size(), " rows > batch_size ", s.batch_size));
    }
    absl::flat_hash_set<BlockId> written;
    absl::flat_hash_set<RequestId> ids;
    for (size_t r = 0; r < plan.rows.size(); ++r) {
      const StepRow& row = plan.rows[r];
      const int64_t n = static_cast<int64_t>(row.tokens.size());
      if (!ids.insert(row.id).second) return absl::InvalidArgumentError(absl::StrCat("request ", row.id, " twice"));
      if (n == 0 || n > s.seq_len) {
        return absl::InvalidArgumentError(absl::StrCat("row ", r, ": ", n, " tokens, seq_len ", s.seq_len));
      }
      if (row.start_pos < 0 || row.start_pos + n > s.ctx_len) {
        return absl::InvalidArgumentError(absl::StrCat("row ", r, ": positions [", row.start_pos, ", ",
                                                       row.start_pos + n, ") beyond ctx_len ", s.ctx_len));
      }
      if (row.logits_to_keep < 0 || row.logits_to_keep > 1) {
        return absl::InvalidArgumentError(absl::StrCat("row ", r, ": logits_to_keep ", row.logits_to_keep));
      }
      const int64_t needed = (row.start_pos + n + B - 1) / B;
      if (static_cast<int64_t>(row.block_table.size()) < needed) {
        return absl::InvalidArgumentError(
            absl::StrCat("row ", r, ": block table has ", row.block_table.size(), " blocks, needs ", needed));
      }
      absl::flat_hash_set<BlockId> seen;
      for (int64_t i = 0; i < needed; ++i) {
        const BlockId b = row.block_table[i];
        if (b < 0 || b >= options_.num_kv_blocks) {
          return absl::InvalidArgumentError(absl::StrCat("row ", r, ": block id ", b, " outside the pool"));
        }
        if (!seen.insert(b).second) {
          return absl::InvalidArgumentError(absl::StrCat("row ", r, ": block ", b, " twice in its table"));
        }
      }
      for (int32_t t : row.tokens) {
        if (t < 0 || t >= options_.vocab_size) {
          return absl::InvalidArgumentError(absl::StrCat("row ", r, ": token id ", t, " outside the vocabulary"));
        }
      }
      for (int64_t b = row.start_pos / B; b < needed; ++b) {
        if (!written.insert(row.block_table[b]).second) {
          return absl::InvalidArgumentError(absl::StrCat("block ", row.block_table[b], " written by two rows"));
        }
      }
    }
    // A block written by one row must not be in any other row's table.
    for (size_t r = 0; r < plan.rows.size(); ++r) {
      const StepRow& row = plan.rows[r];
      const int64_t needed = (row.start_pos + static_cast<int64_t>(row.tokens.size()) + B - 1) / B;
      for (int64_t i = 0; i < needed; ++i) {
        const BlockId b = row.block_table[i];
        if (i >= row.start_pos / B) continue;  // this row's own written blocks
        if (written.contains(b)) {
          return absl::InvalidArgumentError(
              absl::StrCat("row ", r, " reads block ", b, ", which another row of the step writes"));
        }
      }
    }
    return absl::OkStatus();
  }

  FakeExecutorOptions options_;
  std::vector<Specialization> specs_;
  CostTable costs_;
  mutable std::mutex mu_;
  std::vector<Slot> slots_;
  std::map<int32_t, std::chrono::microseconds> spec_latency_;
  std::vector<RecordedStep> steps_;
  std::vector<std::string> errors_;
  int64_t calls_ = 0;
};

// The greedy continuation (`n` tokens) of `prompt` under FakeExecutor's logits: what any correct
// schedule must produce for a greedy request.
inline std::vector<int32_t> ReferenceGreedy(std::vector<int32_t> prompt, int32_t n, int32_t vocab_size) {
  std::vector<int32_t> out;
  for (int32_t i = 0; i < n; ++i) {
    std::vector<float> logits = FakeExecutor::ReferenceLogits(prompt, vocab_size);
    int32_t best = 0;
    for (int32_t v = 1; v < vocab_size; ++v) {
      if (logits[v] > logits[best]) best = v;
    }
    out.push_back(best);
    prompt.push_back(best);
  }
  return out;
}

// Collects the events of many requests; thread-safe; Wait*() block on a condition variable.
class EventCollector {
 public:
  struct Result {
    std::vector<int32_t> tokens;
    std::vector<TokenEvent> events;
    FinishReason finish = FinishReason::kNone;
    int32_t num_final_events = 0;
  };

  TokenCallback Callback() {
    return [this](const TokenEvent& e) {
      std::lock_guard<std::mutex> lock(mu_);
      Result& r = results_[e.id];
      if (e.token >= 0) r.tokens.push_back(e.token);
      r.events.push_back(e);
      if (e.finish != FinishReason::kNone) {
        r.finish = e.finish;
        ++r.num_final_events;
        ++finished_;
      }
      cv_.notify_all();
    };
  }

  void WaitFinished(size_t count) {
    std::unique_lock<std::mutex> lock(mu_);
    cv_.wait(lock, [&] { return finished_ >= count; });
  }
  void WaitTokens(RequestId id, size_t count) {
    std::unique_lock<std::mutex> lock(mu_);
    cv_.wait(lock, [&] { return results_[id].tokens.size() >= count || results_[id].finish != FinishReason::kNone; });
  }
  Result Get(RequestId id) {
    std::lock_guard<std::mutex> lock(mu_);
    return results_[id];
  }
  size_t finished() {
    std::lock_guard<std::mutex> lock(mu_);
    return finished_;
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  std::map<RequestId, Result> results_;
  size_t finished_ = 0;
};

}  // namespace tailor::fake

#endif  // TAILOR_TESTS_FAKE_EXECUTOR_H_
