// Running one operation of a program: on the native path (runtime shapes) here, or through
// generated code (engine/codegen.h) that makes the same kernel calls with constant shapes.
#ifndef TAILOR_ENGINE_OPS_H_
#define TAILOR_ENGINE_OPS_H_

#include <cstdint>

#include "common/dtype.h"
#include "engine/program.h"
#include "kernels/cpu_kernels.h"

namespace tailor {

// Model-level constants every op of a package shares.
struct OpConstants {
  int32_t n_heads = 0, n_kv_heads = 0, head_dim = 0, n_layers = 0;
  int32_t kv_block = 16;
  DType kv_dtype = DType::kF32;
  float rms_eps = 1e-5f;
};

// kern::kWF32/kWF16/kWBF16 for a weight or KV dtype (Q8_0 never reaches programs).
int KernelType(DType t);

// Runs partition `part` of `parts` of `op` (partitions split op.split) with runtime shapes.
// `avx512` picks the kernel variant (both give the same bits).
void RunOpNative(const Op& op, const Program& program, const OpConstants& k,
                 const kern::OpArgs& args, int part, int parts, bool avx512);

// Whether this CPU runs the AVX-512 kernels (detected at run time).
bool CpuHasAvx512();

}  // namespace tailor

#endif  // TAILOR_ENGINE_OPS_H_
