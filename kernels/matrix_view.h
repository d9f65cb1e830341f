// Non-owning views that kernels compute over.
#ifndef TAILOR_KERNELS_MATRIX_VIEW_H_
#define TAILOR_KERNELS_MATRIX_VIEW_H_

#include <cstddef>
#include <cstdint>

#include "common/dtype.h"

namespace tailor {

// A row-major [rows, cols] matrix of one dtype (a 1-D vector is one row). Rows are contiguous;
// a Q8_0 row is cols/32 blocks. Does not own `data`.
struct MatrixView {
  DType dtype = DType::kF32;
  int64_t rows = 0;  // output features
  int64_t cols = 0;  // input features (contiguous)
  const std::byte* data = nullptr;

  int64_t row_bytes() const { return RowBytes(dtype, cols); }
  const std::byte* row(int64_t r) const { return data + r * row_bytes(); }
  int64_t bytes() const { return rows * row_bytes(); }
};

}  // namespace tailor

#endif  // TAILOR_KERNELS_MATRIX_VIEW_H_
