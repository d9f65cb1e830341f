#include "common/dtype.h"

namespace tailor {

namespace {

struct Format {
  DType type;
  const char* name;
  int64_t block_elements;
  int64_t block_bytes;
};
constexpr Format kFormats[] = {
    {DType::kF32, "f32", 1, 4},           {DType::kF16, "f16", 1, 2},
    {DType::kBF16, "bf16", 1, 2},         {DType::kQ8_0, "gguf_q8_0", 32, 34},
    {DType::kQ4_0, "gguf_q4_0", 32, 18},  {DType::kQ4_K, "gguf_q4_k", 256, 144},
    {DType::kQ5_K, "gguf_q5_k", 256, 176}, {DType::kQ6_K, "gguf_q6_k", 256, 210},
    {DType::kQ8, "q8_0", 32, 34},          {DType::kQ4, "q4", 32, 18},
    {DType::kW8, "w8a8", 32, 32},
    {DType::kI8, "int8", 1, 1},
};

const Format& FormatOf(DType t) {
  for (const Format& f : kFormats) {
    if (f.type == t) return f;
  }
  return kFormats[0];
}

}  // namespace

const char* DTypeName(DType t) { return FormatOf(t).name; }

std::optional<DType> ParseDType(std::string_view name) {
  for (const Format& f : kFormats) {
    if (name == f.name) return f.type;
  }
  return std::nullopt;
}

int64_t BlockElements(DType t) { return FormatOf(t).block_elements; }
int64_t BlockBytes(DType t) { return FormatOf(t).block_bytes; }

int64_t RowBytes(DType t, int64_t n) {
  return n / BlockElements(t) * BlockBytes(t) + (t == DType::kW8 ? 4 : 0);  // w8a8: the row's scale
}

uint16_t F32ToF16(float f) {
  uint32_t x;
  std::memcpy(&x, &f, sizeof x);
  uint32_t sign = (x >> 16) & 0x8000u;
  uint32_t abs = x & 0x7fffffffu;
  if (abs >= 0x7f800000u) {  // inf or nan
    return static_cast<uint16_t>(sign | 0x7c00u | (abs > 0x7f800000u ? 0x200u : 0u));
  }
  if (abs >= 0x477ff000u) return static_cast<uint16_t>(sign | 0x7c00u);  // overflow -> inf
  if (abs < 0x38800000u) {  // subnormal or zero in f16
    if (abs < 0x33000000u) return static_cast<uint16_t>(sign);
    uint32_t exp = abs >> 23;
    uint32_t mant = (abs & 0x7fffffu) | 0x800000u;
    uint32_t shift = 126 - exp;  // value = mant * 2^(exp-150) = half * 2^-24
    uint32_t half = mant >> shift;
    uint32_t rem = mant & ((1u << shift) - 1u);
    uint32_t mid = 1u << (shift - 1);
    if (rem > mid || (rem == mid && (half & 1u))) ++half;
    return static_cast<uint16_t>(sign | half);
  }
  uint32_t half = ((abs - 0x38000000u) >> 13);
  uint32_t rem = abs & 0x1fffu;
  if (rem > 0x1000u || (rem == 0x1000u && (half & 1u))) ++half;
  return static_cast<uint16_t>(sign | half);
}

}  // namespace tailor
