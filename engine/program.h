// A specialization lowered to a program: the family's graph (models/family.h) as a static list
// of kernel ops (kernels/op_table.h) with every shape fixed and every activation buffer placed
// in one arena by liveness. Immutable once built.
#ifndef TAILOR_ENGINE_PROGRAM_H_
#define TAILOR_ENGINE_PROGRAM_H_

#include <cstdint>
#include <string>
#include <vector>

#include "common/dtype.h"
#include "engine/executor.h"
#include "kernels/op_table.h"
#include "models/family.h"
#include "models/model.h"

namespace tailor {

// Where one weight tensor lives in the package's weights file.
struct TensorRef {
  DType dtype = DType::kF32;
  int64_t offset = -1;  // bytes from the start of the weights file (64-byte aligned); -1: none
  int64_t rows = 0, cols = 0;
  float act_scale = 0;  // w8a8: the static scale of the activations this weight multiplies
  int64_t bytes() const { return rows * RowBytes(dtype, cols); }
};

// The package's weights: one TensorRef per tensor of the family's list, in its order, q/k
// features in interleaved-rope order whatever the source format.
struct WeightLayout {
  std::vector<TensorRef> tensors;
  int64_t total_bytes = 0;
};

using kern::OpKind;
const char* OpKindName(OpKind k);  // kern::kOpKinds[k].name

struct Op {
  OpKind kind = kern::kOpEmbed;
  int32_t layer = -1;  // KvWrite, Attention
  int32_t rows = 0;  // rows the op covers: token rows (batch*seq_len), kept rows, or head rows
  int32_t k = 0;     // MatMul: summed dimension
  int32_t n = 0;     // MatMul: output features; other ops: row width
  TensorRef weight;  // the tensor the op reads (offset -1: none)
  int32_t in = -1, in2 = -1, out = -1;  // buffer ids
  int32_t split = 0;  // size of the output dimension that -ols partitions (n, rows or heads)
};

struct Buffer {
  std::string name;
  int64_t bytes = 0;
  int32_t first_op = -1, last_op = -1;  // live range, inclusive
  int64_t offset = 0;                   // in the arena, 64-byte aligned
};

struct Program {
  Specialization spec;
  int32_t token_rows = 0;  // batch_size * seq_len
  int32_t keep_rows = 0;   // batch_size: one kept (last valid) token per row
  int32_t max_blocks = 0;  // ceil(ctx_len / kv_block): block table length per row
  std::vector<Op> ops;
  std::vector<Buffer> buffers;
  int64_t arena_bytes = 0;
  int32_t logits_buffer = -1;  // [keep_rows, vocab] floats
  // For cost estimates and benchmarks.
  int64_t weight_bytes_read = 0;  // per step
  double flops = 0;               // per step, matmuls only
};

// Lowers `spec` of the model `config` (of `family`, whose tensors `weights` places); `kv_block`
// positions per KV block. Plans memory.
Program LowerProgram(const ModelConfig& config, const ModelFamily& family, const WeightLayout& weights,
                     const Specialization& spec, int32_t kv_block);

// Assigns arena offsets so that buffers whose live ranges overlap never share bytes, reusing
// space otherwise; returns the arena size. Exposed for tests.
int64_t PlanMemory(std::vector<Buffer>& buffers);

}  // namespace tailor

#endif  // TAILOR_ENGINE_PROGRAM_H_
