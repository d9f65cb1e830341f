// w8a8's static activation scales and SmoothQuant (Xiao et al., 2023): per input channel j of a
// matmul, the activations are divided by s_j and the weight's column j multiplied by it,
//   s_j = max|x_j|^alpha / max|w_j|^(1 - alpha),
// which moves activation outliers into the weights, where per-row scales absorb them. The
// division is folded into what produces the activations, so it costs nothing at run time:
//   - an RMSNorm's weight (entry j / s_j) for the matmuls it feeds (q/k/v, gate/up, lm_head);
//   - the up projection's row j (and bias) for the down projection (silu(gate) * up is linear in up);
//   - the v projection's row j (and bias) for the output projection (attention is linear in v;
//     under grouped-query attention the q heads sharing a kv head share its channels' s).
// A group is smoothed only when every matmul it feeds is w8a8 and none is the (tied) embedding.
#ifndef TAILOR_ENGINE_SMOOTHQUANT_H_
#define TAILOR_ENGINE_SMOOTHQUANT_H_

#include <vector>

#include "absl/status/statusor.h"
#include "common/dtype.h"
#include "engine/profile.h"
#include "models/model.h"

namespace tailor {

// Per tensor of model.tensors (family order). Empty vectors mean 1 everywhere.
struct W8a8Plan {
  // Multiplies package input column c of a matrix: [cols] or empty.
  std::vector<std::vector<float>> input_scale;
  // Multiplies package output feature f (a matrix's row, a vector's entry): [rows or cols] or empty.
  std::vector<std::vector<float>> feature_scale;
  // w8a8 tensors: the static activation scale (clip of the smoothed activations / 127, > 0);
  // 0 for the others.
  std::vector<float> act_scale;
};

// `dtypes`: each tensor's package dtype; w8a8 tensors need statistics in `calibration` (an error
// names the missing one). alpha in [0, 1]; 0 plans no smoothing (scales from the raw profile).
absl::StatusOr<W8a8Plan> PlanW8a8(const Model& model, const std::vector<DType>& dtypes,
                                  const CalibrationTable& calibration, float alpha);

}  // namespace tailor

#endif  // TAILOR_ENGINE_SMOOTHQUANT_H_
