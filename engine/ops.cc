#include "engine/ops.h"

#include <array>
#include <cstdlib>
#include <string_view>
#include <utility>

namespace tailor {
namespace {

using kern::OpDesc;

using NativeFn = void (*)(const OpDesc&, const kern::OpArgs&, int part, int b, int e);

// RunKind of one kind for the descriptor's element types, with runtime shapes. Kinds that do not
// depend on an element type are instantiated once for it (kWF32); kv-typed kinds for each of
// kKvTypes, weight-typed ones for each of kWeightTypes (the quantized ones where allowed).
template <int kKind, class Isa>
void RunNativeKind(const OpDesc& d, const kern::OpArgs& a, int part, int b, int e) {
  constexpr kern::OpKindInfo info = kern::kOpKinds[kKind];
  const kern::RuntimeShapes s{d};
  auto with_kv = [&]<int kW>() {
    if constexpr (info.kv_typed) {
      [&]<size_t... I>(std::index_sequence<I...>) {
        ((d.kvtype == kern::kKvTypes[I] ? kern::RunKind<kKind, Isa, kW, kern::kKvTypes[I]>(s, a, part, b, e) : void()),
         ...);
      }(std::make_index_sequence<std::size(kern::kKvTypes)>{});
    } else {
      kern::RunKind<kKind, Isa, kW, kern::kWF32>(s, a, part, b, e);
    }
  };
  if constexpr (info.weight_typed) {
    [&]<size_t... I>(std::index_sequence<I...>) {
      auto one = [&]<int kW>() {
        if constexpr (info.quantized || !kern::IsQuantized(kW)) {
          if (d.wtype == kW) with_kv.template operator()<kW>();
        }
      };
      (one.template operator()<kern::kWeightTypes[I]>(), ...);
    }(std::make_index_sequence<std::size(kern::kWeightTypes)>{});
  } else {
    with_kv.template operator()<kern::kWF32>();
  }
}

// The native entry point of every kind for one kernel variant, indexed by OpKind.
template <class Isa>
constexpr std::array<NativeFn, kern::kNumOpKinds> NativeTable() {
  return []<size_t... K>(std::index_sequence<K...>) {
    return std::array<NativeFn, kern::kNumOpKinds>{&RunNativeKind<static_cast<int>(K), Isa>...};
  }(std::make_index_sequence<kern::kNumOpKinds>{});
}

template <class Isa>
void Run(const OpDesc& d, const kern::OpArgs& a, int part, int parts) {
  static constexpr std::array<NativeFn, kern::kNumOpKinds> kTable = NativeTable<Isa>();
  int b, e;
  kern::Partition(d.split, parts, part, &b, &e);
  kTable[d.kind](d, a, part, b, e);
}

}  // namespace

int KernelType(DType t) {
  switch (t) {
    case DType::kF16: return kern::kWF16;
    case DType::kBF16: return kern::kWBF16;
    case DType::kQ8: return kern::kWQ8;
    case DType::kI8: return kern::kKvI8;  // KV only
    case DType::kQ4: return kern::kWQ4;
    case DType::kW8: return kern::kWW8;
    default: return kern::kWF32;
  }
}

kern::OpDesc DescribeOp(const Op& op, const Program& p, const OpConstants& k) {
  auto offset = [&](int32_t buffer) { return buffer < 0 ? int64_t{-1} : p.buffers[buffer].offset; };
  OpDesc d;
  d.kind = op.kind;
  d.wtype = KernelType(op.weight.dtype);
  d.kvtype = KernelType(k.kv_dtype);
  d.layer = op.layer;
  d.rows = op.rows;
  d.k = op.k;
  d.n = op.n;
  d.split = op.split;
  d.n_heads = k.n_heads;
  d.n_kv_heads = k.n_kv_heads;
  d.head_dim = k.head_dim;
  d.kv_block = k.kv_block;
  d.max_blocks = p.max_blocks;
  d.n_layers = k.n_layers;
  d.ctx_len = p.spec.shape.ctx_len;
  d.eps = k.rms_eps;
  d.in = offset(op.in);
  d.in2 = offset(op.in2);
  d.out = offset(op.out);
  d.weight = op.weight.offset;
  d.scale = op.weight.act_scale;
  return d;
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
                      __builtin_cpu_supports("fma") && kern::CpuHasF16c();
  CpuIsa best = CpuIsa::kPortable;
  if (avx512) best = CpuIsa::kAvx512;
  // The AVX512-BF16 variants also run int8 matmuls with VNNI (every such CPU has it).
  if (avx512 && kern::CpuHasAvx512Bf16() && __builtin_cpu_supports("avx512vnni")) {
    best = AmxUsable() ? CpuIsa::kAmx : CpuIsa::kAvx512Bf16;
  }
  const char* cap = std::getenv("TAILOR_CPU_ISA");
  if (cap == nullptr) return best;
  const std::optional<CpuIsa> limit = ParseCpuIsa(cap);
  return limit && *limit < best ? *limit : best;  // an unknown name caps nothing
}

void RunOpNative(const kern::OpDesc& desc, const kern::OpArgs& args, int part, int parts, CpuIsa isa) {
  switch (isa) {
    case CpuIsa::kAmx: return Run<kern::AmxIsa>(desc, args, part, parts);
    case CpuIsa::kAvx512Bf16: return Run<kern::Avx512Bf16Isa>(desc, args, part, parts);
    case CpuIsa::kAvx512: return Run<kern::Avx512Isa>(desc, args, part, parts);
    default: return Run<kern::PortableIsa>(desc, args, part, parts);
  }
}

}  // namespace tailor
