#include "engine/ops.h"

#include <cstdlib>
#include <string_view>

namespace tailor {
namespace {

using kern::Avx512Isa;
using kern::PortableIsa;

template <class T>
T* At(const kern::OpArgs& a, const Program& p, int32_t buffer) {
  return reinterpret_cast<T*>(a.arena + p.buffers[buffer].offset);
}

template <class Isa, int kW>
void MatMul(const Op& op, const Program& p, const kern::OpArgs& a, int b, int e) {
  kern::MatMulOp<Isa, kW>(op.rows, op.k, At<const float>(a, p, op.in), a.weights + op.weight.offset,
                          At<float>(a, p, op.out), op.n, b, e,
                          a.packed != nullptr ? a.packed + op.weight.offset : nullptr);
}

template <class Isa, int kW>
void RmsNorm(const Op& op, const Program& p, const OpConstants& k, const kern::OpArgs& a, int b,
             int e) {
  kern::RmsNormOp<Isa, kW>(op.n, At<const float>(a, p, op.in), a.weights + op.weight.offset,
                           k.rms_eps, At<float>(a, p, op.out), b, e);
}

template <class Isa, int kKv>
void Attention(const Op& op, const Program& p, const OpConstants& k, const kern::OpArgs& a, int part,
               int b, int e) {
  kern::AttentionOp<Isa, kKv>(op.rows, k.n_heads, k.n_kv_heads, k.head_dim, k.kv_block,
                              p.max_blocks, k.n_layers, op.layer, At<const float>(a, p, op.in),
                              a.pos, a.row_of, a.tables, a.kv_pool, At<float>(a, p, op.out),
                              a.scores + part * kern::AttentionScratch(p.spec.shape.ctx_len), b, e);
}

template <int kKv>
void KvWrite(const Op& op, const Program& p, const OpConstants& k, const kern::OpArgs& a, int b,
             int e) {
  kern::KvWriteOp<kKv>(k.n_kv_heads * k.head_dim, k.kv_block, p.max_blocks, k.n_layers, op.layer,
                       At<const float>(a, p, op.in), At<const float>(a, p, op.in2), a.pos, a.row_of,
                       a.tables, a.kv_pool, b, e);
}

template <class Isa>
void Run(const Op& op, const Program& p, const OpConstants& k, const kern::OpArgs& a, int part,
         int parts) {
  int b, e;
  kern::Partition(op.split, parts, part, &b, &e);
  const int w = KernelType(op.weight.dtype);
  const int kv = KernelType(k.kv_dtype);
  switch (op.kind) {
    case OpKind::kEmbed:
      if (w == kern::kWF32) kern::EmbedOp<kern::kWF32>(op.n, a.tokens, a.pos, a.weights + op.weight.offset, At<float>(a, p, op.out), b, e);
      if (w == kern::kWF16) kern::EmbedOp<kern::kWF16>(op.n, a.tokens, a.pos, a.weights + op.weight.offset, At<float>(a, p, op.out), b, e);
      if (w == kern::kWBF16) kern::EmbedOp<kern::kWBF16>(op.n, a.tokens, a.pos, a.weights + op.weight.offset, At<float>(a, p, op.out), b, e);
      return;
    case OpKind::kRmsNorm:
      if (w == kern::kWF32) RmsNorm<Isa, kern::kWF32>(op, p, k, a, b, e);
      if (w == kern::kWF16) RmsNorm<Isa, kern::kWF16>(op, p, k, a, b, e);
      if (w == kern::kWBF16) RmsNorm<Isa, kern::kWBF16>(op, p, k, a, b, e);
      return;
    case OpKind::kMatMul:
      if (w == kern::kWF32) MatMul<Isa, kern::kWF32>(op, p, a, b, e);
      if (w == kern::kWF16) MatMul<Isa, kern::kWF16>(op, p, a, b, e);
      if (w == kern::kWBF16) MatMul<Isa, kern::kWBF16>(op, p, a, b, e);
      return;
    case OpKind::kRope:
      kern::RopeOp(k.n_heads, k.n_kv_heads, k.head_dim, At<float>(a, p, op.in), At<float>(a, p, op.in2),
                   a.pos, a.cos_sin, b, e);
      return;
    case OpKind::kKvWrite:
      if (kv == kern::kWF32) KvWrite<kern::kWF32>(op, p, k, a, b, e);
      if (kv == kern::kWF16) KvWrite<kern::kWF16>(op, p, k, a, b, e);
      if (kv == kern::kWBF16) KvWrite<kern::kWBF16>(op, p, k, a, b, e);
      return;
    case OpKind::kAttention:
      if (kv == kern::kWF32) Attention<Isa, kern::kWF32>(op, p, k, a, part, b, e);
      if (kv == kern::kWF16) Attention<Isa, kern::kWF16>(op, p, k, a, part, b, e);
      if (kv == kern::kWBF16) Attention<Isa, kern::kWBF16>(op, p, k, a, part, b, e);
      return;
    case OpKind::kAdd:
      kern::AddOp(op.n, At<float>(a, p, op.in), At<const float>(a, p, op.in2), b, e);
      return;
    case OpKind::kSwiGlu:
      kern::SwiGluOp<Isa>(op.n, At<float>(a, p, op.in), At<const float>(a, p, op.in2), b, e);
      return;
    case OpKind::kGather:
      kern::GatherOp(op.n, At<const float>(a, p, op.in), a.keep, At<float>(a, p, op.out), b, e);
      return;
  }
}

}  // namespace

int KernelType(DType t) {
  switch (t) {
    case DType::kF16: return kern::kWF16;
    case DType::kBF16: return kern::kWBF16;
    default: return kern::kWF32;
  }
}

const char* CpuIsaName(CpuIsa isa) {
  switch (isa) {
    case CpuIsa::kAvx512: return "avx512";
    case CpuIsa::kAvx512Bf16: return "avx512bf16";
    case CpuIsa::kAmx: return "amx";
    default: return "portable";
  }
}

std::optional<CpuIsa> ParseCpuIsa(std::string_view name) {
  for (CpuIsa isa : {CpuIsa::kPortable, CpuIsa::kAvx512, CpuIsa::kAvx512Bf16, CpuIsa::kAmx}) {
    if (name == CpuIsaName(isa)) return isa;
  }
  return std::nullopt;
}

bool AmxUsable() { return kern::amx::Available(); }

CpuIsa HostCpuIsa() {
  const bool avx512 = __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512dq") &&
                      __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512vl") &&
                      __builtin_cpu_supports("fma") && __builtin_cpu_supports("f16c");
  CpuIsa best = CpuIsa::kPortable;
  if (avx512) best = CpuIsa::kAvx512;
  if (avx512 && __builtin_cpu_supports("avx512bf16")) best = AmxUsable() ? CpuIsa::kAmx : CpuIsa::kAvx512Bf16;
  const char* cap = std::getenv("TAILOR_CPU_ISA");
  if (cap == nullptr) return best;
  const std::optional<CpuIsa> limit = ParseCpuIsa(cap);
  return limit && *limit < best ? *limit : best;  // an unknown name caps nothing
}

void RunOpNative(const Op& op, const Program& program, const OpConstants& k,
                 const kern::OpArgs& args, int part, int parts, CpuIsa isa) {
  switch (isa) {
    case CpuIsa::kAmx: return Run<kern::AmxIsa>(op, program, k, args, part, parts);
    case CpuIsa::kAvx512Bf16: return Run<kern::Avx512Bf16Isa>(op, program, k, args, part, parts);
    case CpuIsa::kAvx512: return Run<Avx512Isa>(op, program, k, args, part, parts);
    default: return Run<PortableIsa>(op, program, k, args, part, parts);
  }
}

}  // namespace tailor
