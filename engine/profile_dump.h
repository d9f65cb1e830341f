// `-dump-profile`: runs every specialization's fp32 program over calibration inputs and records
// the statistics of engine/profile.h.
#ifndef TAILOR_ENGINE_PROFILE_DUMP_H_
#define TAILOR_ENGINE_PROFILE_DUMP_H_

#include <cstdint>
#include <filesystem>
#include <functional>
#include <span>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "engine/executor.h"
#include "engine/profile.h"
#include "models/model.h"

namespace tailor {

// One input of a calibration inputs file (the `tailor exec` format): rows are KV slots kept
// across inputs; padding (position -1) already removed.
struct CalibrationInput {
  struct Row {
    int32_t slot = 0;   // the row's index in the input: its KV slot
    int32_t start = 0;  // position of tokens[0]
    std::vector<int32_t> tokens;  // valid tokens at consecutive positions
  };
  int32_t listed_rows = 0;  // rows the input lists, empty ones included
  std::vector<Row> rows;    // rows with at least one valid token, in slot order

  // Rows with tokens, the most tokens in a row, the furthest position + 1.
  StepShape Shape() const;
  // The seed's rule (as `tailor calibrate` makes inputs): exactly batch_size rows, each with
  // seq_len valid tokens, every position below ctx_len.
  bool BelongsTo(const SpecShape& spec) const;
};

// Names of the specializations no input belongs to, in config order.
std::vector<std::string> UncoveredSpecializations(std::span<const Specialization> specs,
                                                  std::span<const CalibrationInput> inputs);

struct DumpOptions {
  int32_t histogram_bins = kDefaultHistogramBins;  // a power of two in [4, 65536]
  std::string source = "inputs";  // the inputs' file, named in errors
  // Where the temporary fp32 package goes (a fresh directory inside it, removed afterwards);
  // empty: the system's temporary directory.
  std::filesystem::path temp_root;
  std::function<void(const std::string&)> progress;  // lines for stderr
};

// Compiles `model` into a temporary fp32 package of `specs` (native target), then runs every
// input, in order, on every specialization that can run it (Covers), KV slots kept across inputs
// as `tailor exec` keeps them, and records every profiled tensor (engine/profile.h) after each
// op. Refuses (InvalidArgument, nothing run) inputs that leave a specialization without an
// input of its own (the message lists them), an input no specialization can run, token ids
// outside the vocabulary. Non-finite activations are errors naming the tensor.
absl::StatusOr<Profile> DumpProfile(const Model& model, const std::vector<Specialization>& specs,
                                    std::span<const CalibrationInput> inputs, const DumpOptions& options);

}  // namespace tailor

#endif  // TAILOR_ENGINE_PROFILE_DUMP_H_
