// Running one operation of a program: on the native path (runtime shapes) here, or through
// generated code (engine/codegen.h) that makes the same kernel calls with constant shapes.
#ifndef TAILOR_ENGINE_OPS_H_
#define TAILOR_ENGINE_OPS_H_

#include <cstdint>
#include <optional>
#include <string_view>

#include "common/dtype.h"
#include "engine/program.h"
#include "kernels/op_table.h"

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

// Kernel variants, in order of capability. The first three compute the same bits: portable C++,
// AVX-512, and AVX-512 with the BF16 dot-product instruction for bf16-weight matmuls. kAmx runs
// bf16-weight matmuls on AMX tiles (every row count), whose last bits differ from the others;
// each variant on its own is batch-invariant.
enum class CpuIsa { kPortable, kAvx512, kAvx512Bf16, kAmx };
const char* CpuIsaName(CpuIsa isa);  // "portable", "avx512", "avx512bf16", "amx"
std::optional<CpuIsa> ParseCpuIsa(std::string_view name);  // CpuIsaName's inverse; nullopt if unknown

// Whether this CPU has AMX-BF16 and the kernel lets this process use the tiles (asks for it).
bool AmxUsable();

// The descriptor of `op` (kernels/op_table.h): its operands' arena offsets from the program's
// memory plan, the model constants from `k`. What both the native path and generated code run.
kern::OpDesc DescribeOp(const Op& op, const Program& program, const OpConstants& k);

// Runs partition `part` of `parts` of `desc` (partitions split desc.split) with runtime shapes.
void RunOpNative(const kern::OpDesc& desc, const kern::OpArgs& args, int part, int parts, CpuIsa isa);

// The best variant this CPU runs (detected at run time), capped by the environment variable
// TAILOR_CPU_ISA when it names a variant (e.g. avx512bf16: the same bits on every AVX512-BF16 CPU).
CpuIsa HostCpuIsa();

}  // namespace tailor

#endif  // TAILOR_ENGINE_OPS_H_
