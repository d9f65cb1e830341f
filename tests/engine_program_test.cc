// Lowering and memory planning: every op's shapes are fixed, buffers that are live at the same
// time never overlap, and space is reused.
#include "engine/program.h"

#include <random>

#include "gtest/gtest.h"

namespace tailor {
namespace {

ModelConfig Config() {
  ModelConfig c;
  c.dim = 64;
  c.n_layers = 3;
  c.n_heads = 8;
  c.n_kv_heads = 4;
  c.head_dim = 8;
  c.ffn_dim = 172;
  c.vocab_size = 512;
  c.max_positions = 512;
  return c;
}

// Every tensor of the family's list placed one after the other.
WeightLayout Layout(const ModelFamily& family, const ModelConfig& c) {
  WeightLayout w;
  int64_t off = 0;
  for (const TensorDesc& t : family.Tensors(c)) {
    TensorRef r{DType::kF32, off, t.rows, t.cols};
    off += (r.bytes() + 63) / 64 * 64;
    w.tensors.push_back(r);
  }
  w.total_bytes = off;
  return w;
}

void ExpectNoOverlap(const std::vector<Buffer>& buffers) {
  for (size_t i = 0; i < buffers.size(); ++i) {
    for (size_t j = i + 1; j < buffers.size(); ++j) {
      const Buffer& a = buffers[i];
      const Buffer& b = buffers[j];
      if (a.first_op < 0 || b.first_op < 0) continue;
      const bool live_together = a.first_op <= b.last_op && b.first_op <= a.last_op;
      const bool share_bytes = a.offset < b.offset + b.bytes && b.offset < a.offset + a.bytes;
      EXPECT_FALSE(live_together && share_bytes) << a.name << " and " << b.name;
    }
    EXPECT_EQ(buffers[i].offset % 64, 0) << buffers[i].name;
  }
}

TEST(Program, LoweringFixesShapesAndPlansMemory) {
  ModelConfig c = Config();
  c.tied_embeddings = true;
  // Ops per layer: llama 15; qwen2 adds three bias adds; qwen3 two per-head norms.
  for (const auto& [family_name, per_layer] : {std::pair{"llama", 15u}, {"qwen2", 18u}, {"qwen3", 17u}}) {
    const ModelFamily& family = *FindFamily(family_name);
    c.family = family_name;
    for (SpecShape shape : {SpecShape{1, 1, 128}, SpecShape{4, 16, 512}}) {
      Program p = LowerProgram(c, family, Layout(family, c), Specialization{shape, 2}, 16);
      EXPECT_EQ(p.token_rows, shape.batch_size * shape.seq_len);
      EXPECT_EQ(p.max_blocks, (shape.ctx_len + 15) / 16);
      EXPECT_EQ(p.ops.size(), 1u + per_layer * c.n_layers + 3u) << family_name;
      int64_t total = 0;
      for (const Buffer& b : p.buffers) {
        EXPECT_GE(b.first_op, 0) << b.name;
        EXPECT_LE(b.offset + b.bytes, p.arena_bytes) << b.name;
        total += b.bytes;
      }
      ExpectNoOverlap(p.buffers);
      EXPECT_LT(p.arena_bytes, total / 2) << "buffers of different layers should share space";
      for (const Op& op : p.ops) {
        EXPECT_GT(op.rows, 0);
        EXPECT_GT(op.split, 0);
        if (op.kind == kern::kOpMatMul) {
          EXPECT_EQ(op.n, op.weight.rows);
          EXPECT_EQ(op.k, op.weight.cols);
        }
        if (op.kind == kern::kOpRmsNorm) {  // per row, or per head (q/k norms) in place
          EXPECT_TRUE(op.n == c.dim || (op.n == c.head_dim && op.in == op.out)) << op.n;
          EXPECT_EQ(op.weight.cols, op.n);
        }
        if (op.kind == kern::kOpAddBias) {
          EXPECT_EQ(op.weight.cols, op.n);
        }
      }
      EXPECT_EQ(p.buffers[p.logits_buffer].bytes, int64_t{shape.batch_size} * c.vocab_size * 4);
    }
  }
}

TEST(Program, PlannerOnRandomLifetimes) {
  std::mt19937 rng(7);
  for (int trial = 0; trial < 50; ++trial) {
    std::vector<Buffer> buffers;
    for (int i = 0; i < 30; ++i) {
      int a = static_cast<int>(rng() % 40), len = static_cast<int>(rng() % 10);
      buffers.push_back(Buffer{"b" + std::to_string(i), 1 + static_cast<int64_t>(rng() % 5000), a, a + len, 0});
    }
    const int64_t arena = PlanMemory(buffers);
    ExpectNoOverlap(buffers);
    for (const Buffer& b : buffers) EXPECT_LE(b.offset + b.bytes, arena);
  }
}

}  // namespace
}  // namespace tailor
