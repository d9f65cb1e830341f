#include "engine/runtime.h"

#include <dlfcn.h>
#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <chrono>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <set>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/checksum.h"
#include "common/huge_pages.h"
#include "common/status_macros.h"
#include "engine/codegen.h"

namespace tailor {
namespace {

// Gives back the pages of [p, p + size) of a file mapping (whole pages inside the range only).
void DropFilePages(const std::byte* p, size_t size) {
  const uintptr_t page = static_cast<uintptr_t>(sysconf(_SC_PAGESIZE));
  const uintptr_t from = (reinterpret_cast<uintptr_t>(p) + page - 1) / page * page;
  const uintptr_t to = (reinterpret_cast<uintptr_t>(p) + size) / page * page;
  if (to > from) madvise(reinterpret_cast<void*>(from), to - from, MADV_DONTNEED);
}

std::string ShapeList(std::span<const Specialization> specs) {
  std::vector<std::string> names;
  for (const auto& s : specs) {
    names.push_back(absl::StrCat("(batch_size ", s.shape.batch_size, ", seq_len ", s.shape.seq_len,
                                 ", ctx_len ", s.shape.ctx_len, ")"));
  }
  return absl::StrJoin(names, ", ");
}

}  // namespace

std::string ProgramKey(const Program& p, const OpConstants& k) {
  // The kernels' text: generated code inlines them and the native path must compute the same
  // bits over the same weight layouts, so a package made with other kernels is recompiled.
  static const std::string kernels = [] {
    const std::string text = KernelsText();
    return ChecksumHex(std::as_bytes(std::span<const char>(text.data(), text.size())));
  }();
  std::string text = absl::StrCat("v4 ", kernels, " ", p.spec.Name(), " ols", p.spec.ols);
  for (const Op& op : p.ops) absl::StrAppend(&text, ";", OpDescLiteral(DescribeOp(op, p, k)));
  return ChecksumHex(std::as_bytes(std::span<const char>(text.data(), text.size())));
}

Runtime::~Runtime() {
  pool_.reset();
  for (void* h : dl_handles_) dlclose(h);
}

// AMX tiles stream weights best from the blocked layout: each Packable bf16 matmul weight gets
// its copy once (the same bits as from the row-major weights), packed in `parts` on the pool.
absl::Status Runtime::PackAmxWeights(int parts) {
  const MappedFile& file = *package_->weights_file;
  TAILOR_ASSIGN_OR_RETURN(packed_, HugePageBuffer::Allocate(file.size(), /*touch=*/false));
  std::set<int64_t> done;
  for (const Program& prog : programs_) {
    for (const Op& op : prog.ops) {
      if (op.kind != kern::kOpMatMul || op.weight.dtype != DType::kBF16 || !kern::amx::Packable(op.n, op.k) ||
          !done.insert(op.weight.offset).second) {
        continue;
      }
      const auto* w = reinterpret_cast<const uint16_t*>(file.data() + op.weight.offset);
      auto* out = reinterpret_cast<uint16_t*>(packed_.data() + op.weight.offset);
      pool_->Run(parts, [&](int part) {  // 16-row blocks [b, e) each; block j's tiles sit at 16 j k
        int b, e;
        kern::Partition(op.n / 16, parts, part, &b, &e);
        const int64_t at = int64_t{16} * b * op.k;
        kern::amx::PackWeights(w + at, int64_t{16} * (e - b), op.k, out + at);
      });
      // The row-major pages are read again only by a partition that starts off a 16-row
      // boundary or by an embedding lookup: give them back (they stay in the page cache, and
      // a later read faults them in again), so the process holds one copy, not two.
      if (file.file_backed()) DropFilePages(reinterpret_cast<const std::byte*>(w), size_t{2} * op.n * op.k);
    }
  }
  packed_.Protect();
  return absl::OkStatus();
}

absl::StatusOr<std::unique_ptr<Runtime>> Runtime::Open(const std::filesystem::path& dir,
                                                       const RuntimeOptions& options) {
  auto rt = std::unique_ptr<Runtime>(new Runtime());
  TAILOR_ASSIGN_OR_RETURN(rt->package_, OpenPackage(dir));
  const Package& pkg = *rt->package_;
  const ModelConfig& c = pkg.config;
  rt->constants_ = OpConstants{c.n_heads, c.n_kv_heads, c.head_dim, c.n_layers, pkg.kv_block,
                               pkg.kv_dtype, c.rms_eps};
  // The native path computes what the package's generated code computes (bf16 matmuls on AMX
  // and on the other variants differ in the last bits), unless this CPU (or TAILOR_CPU_ISA)
  // does not allow that variant; then the generated code does not run either.
  const CpuIsa host_isa = HostCpuIsa();
  const std::optional<CpuIsa> built_for = ParseCpuIsa(pkg.kernel_isa);
  const bool isa_allowed = !built_for || *built_for <= host_isa;
  rt->isa_ = built_for && *built_for < host_isa ? *built_for : host_isa;

  int max_ols = 1, max_ctx = 1, max_rows = 1, max_batch = 1, max_table = 1;
  int64_t max_arena = 0, max_blocks_needed = 1;
  for (const PackageSpec& ps : pkg.specs) {
    rt->specs_.push_back(ps.spec);
    rt->costs_.models.push_back(ps.cost_model);
    Program prog = LowerProgram(c, *pkg.family, pkg.weights, ps.spec, pkg.kv_block);
    if (prog.arena_bytes != ps.arena_bytes) {
      return absl::FailedPreconditionError(absl::StrCat(
          (dir / "manifest.json").string(), ": specialization ", ps.spec.Name(), " has arena ",
          ps.arena_bytes, " bytes but this tailor plans ", prog.arena_bytes,
          ": the package was made by another version; recompile it"));
    }
    max_ols = std::max(max_ols, ps.spec.ols);
    max_ctx = std::max(max_ctx, ps.spec.shape.ctx_len);
    max_rows = std::max(max_rows, prog.token_rows);
    max_batch = std::max(max_batch, ps.spec.shape.batch_size);
    max_table = std::max(max_table, ps.spec.shape.batch_size * prog.max_blocks);
    max_arena = std::max(max_arena, prog.arena_bytes);
    max_blocks_needed = std::max<int64_t>(max_blocks_needed, int64_t{ps.spec.shape.batch_size} * prog.max_blocks);
    std::vector<kern::OpDesc> descs;
    for (const Op& op : prog.ops) descs.push_back(DescribeOp(op, prog, rt->constants_));
    rt->descs_.push_back(std::move(descs));
    rt->programs_.push_back(std::move(prog));
  }


  // Generated kernels, unless forced native or built for CPU features this machine lacks.
  bool use_generated = pkg.target == Target::kGenerated && !options.force_native;
  if (use_generated) {
    std::vector<std::string> host = HostCpuFeatures(), missing;
    for (const auto& f : pkg.cpu_features) {
      if (std::find(host.begin(), host.end(), f) == host.end()) missing.push_back(f);
    }
    if (!isa_allowed) {
      missing.push_back(absl::StrCat(pkg.kernel_isa, " kernels (this machine allows ", CpuIsaName(host_isa),
                                     std::getenv("TAILOR_CPU_ISA") ? ", capped by TAILOR_CPU_ISA" : "", ")"));
    }
    if (!missing.empty()) {
      if (options.warn) {
        options.warn(absl::StrCat("package ", dir.string(), " was built for CPU features this machine lacks (",
                                  absl::StrJoin(missing, ", "), "); running it on the native path"));
      }
      use_generated = false;
    }
  }
  if (use_generated) {
    for (size_t i = 0; i < pkg.specs.size(); ++i) {
      const PackageSpec& ps = pkg.specs[i];
      const std::filesystem::path obj = dir / ps.kernel_object;
      TAILOR_ASSIGN_OR_RETURN(auto mapped, MappedFile::Open(obj));
      if (ChecksumHex(mapped->bytes()) != ps.kernel_checksum) {
        return absl::InvalidArgumentError(
            absl::StrCat(obj.string(), ": checksum mismatch: the kernel object is corrupt"));
      }
      void* h = dlopen(std::filesystem::absolute(obj).c_str(), RTLD_NOW | RTLD_LOCAL);
      if (h == nullptr) {
        return absl::InvalidArgumentError(absl::StrCat(obj.string(), ": cannot load: ", dlerror()));
      }
      rt->dl_handles_.push_back(h);
      auto* key = static_cast<const char*>(dlsym(h, "tailor_program_key"));
      auto* num = static_cast<const int*>(dlsym(h, "tailor_num_ops"));
      auto* ops = static_cast<const OpFn*>(dlsym(h, "tailor_ops"));
      const Program& prog = rt->programs_[i];
      if (key == nullptr || num == nullptr || ops == nullptr ||
          std::string(key) != ProgramKey(prog, rt->constants_) ||
          *num != static_cast<int>(prog.ops.size())) {
        return absl::FailedPreconditionError(absl::StrCat(
            obj.string(), ": the kernel object does not match specialization ", ps.spec.Name(),
            " (made by another version?); recompile the package"));
      }
      rt->generated_.emplace_back(ops, ops + *num);
    }
  }

  // KV pool.
  rt->block_bytes_ = kern::KvBlockBytes(KernelType(pkg.kv_dtype), c.n_layers, pkg.kv_block, c.n_kv_heads, c.head_dim);
  int64_t blocks = options.kv_cache_mb > 0 ? (options.kv_cache_mb << 20) / rt->block_bytes_ : max_blocks_needed;
  // One sequence at the largest ctx_len must fit, and the pool must fit in this machine's memory.
  const int64_t one_sequence = (max_ctx + pkg.kv_block - 1) / pkg.kv_block;
  if (options.kv_cache_mb > 0 && blocks < one_sequence) {
    const int64_t need_mb = ((one_sequence * rt->block_bytes_) + (int64_t{1} << 20) - 1) >> 20;
    return absl::InvalidArgumentError(absl::StrCat(
        "--kv-cache-mb ", options.kv_cache_mb, " holds ", blocks, " KV blocks of ", rt->block_bytes_,
        " bytes, less than one sequence of the largest ctx_len (", max_ctx, " positions: ", one_sequence,
        " blocks); give at least ", need_mb));
  }
  const int64_t memory_bytes = static_cast<int64_t>(sysconf(_SC_PHYS_PAGES)) * sysconf(_SC_PAGESIZE);
  if (options.kv_cache_mb > 0 && memory_bytes > 0 && (options.kv_cache_mb << 20) > memory_bytes) {
    return absl::InvalidArgumentError(absl::StrCat("--kv-cache-mb ", options.kv_cache_mb,
                                                   " is more than this machine's memory (",
                                                   memory_bytes >> 20, " MiB)"));
  }
  if (blocks < 1) {
    return absl::InvalidArgumentError(absl::StrCat("--kv-cache-mb ", options.kv_cache_mb,
                                                   " holds no KV block (one block is ",
                                                   rt->block_bytes_, " bytes)"));
  }
  blocks = std::min<int64_t>(blocks, INT32_MAX / 2);
  rt->num_blocks_ = static_cast<int32_t>(blocks);
  absl::StatusOr<HugePageBuffer> kv = HugePageBuffer::Allocate(static_cast<size_t>(blocks * rt->block_bytes_));
  if (!kv.ok() && options.kv_cache_mb > 0) {
    return absl::InvalidArgumentError(absl::StrCat("--kv-cache-mb ", options.kv_cache_mb,
                                                   ": cannot allocate that much memory"));
  }
  if (!kv.ok()) {
    return absl::ResourceExhaustedError(absl::StrCat("cannot allocate ", blocks * rt->block_bytes_,
                                                     " bytes of KV cache: ", kv.status().message()));
  }
  rt->kv_ = *std::move(kv);
  TAILOR_ASSIGN_OR_RETURN(rt->arena_, HugePageBuffer::Allocate(static_cast<size_t>(max_arena)));

  // Rope table in float64, stored as float: (cos, sin) of pos * inv_freq[i].
  const int half = c.head_dim / 2;
  const std::vector<double> inv_freq = RopeInvFreq(c);
  rt->cos_sin_.resize(static_cast<size_t>(max_ctx) * half * 2);
  for (int p = 0; p < max_ctx; ++p) {
    for (int i = 0; i < half; ++i) {
      const double angle = p * inv_freq[i];
      rt->cos_sin_[(static_cast<size_t>(p) * half + i) * 2] = static_cast<float>(std::cos(angle));
      rt->cos_sin_[(static_cast<size_t>(p) * half + i) * 2 + 1] = static_cast<float>(std::sin(angle));
    }
  }
  rt->pool_ = std::make_unique<ThreadPool>(ThreadPool::ThreadsFor(max_ols), options.threads);
  rt->profile_ops_ = options.profile_ops;
  rt->after_op_ = options.after_op;
  rt->reset_op_seconds();
  if (rt->isa_ == CpuIsa::kAmx) {
    TAILOR_RETURN_IF_ERROR(rt->PackAmxWeights(max_ols));
  } else {
    // Steps read the weights from a huge-page copy (common/huge_pages.h); the file's pages are
    // given back slice by slice as they are copied (they stay in the page cache).
    const MappedFile& file = *pkg.weights_file;
    TAILOR_ASSIGN_OR_RETURN(rt->weights_copy_, HugePageBuffer::CopyOf(file.bytes(), [&](size_t at, size_t n) {
                              if (file.file_backed()) DropFilePages(file.data() + at, n);
                            }));
    rt->weights_copy_.Protect();
  }
  rt->scores_.resize(static_cast<size_t>(max_ols) * kern::AttentionScratch(max_ctx));
  for (const TensorRef& t : pkg.weights.tensors) {
    if ((t.dtype == DType::kQ8 || t.dtype == DType::kQ4 || t.dtype == DType::kW8) && !rt->q8_scratch_) {  // int8 matmuls quantize activations here
      rt->q8_scratch_ = std::make_unique<kern::q8::QuantizedRows[]>(static_cast<size_t>(max_ols));
    }
  }
  rt->tokens_.resize(max_rows);
  rt->pos_.resize(max_rows);
  rt->row_of_.resize(max_rows);
  rt->tables_.resize(max_table);
  rt->keep_.resize(max_batch);
  return rt;
}

Runtime::Memory Runtime::memory() const {
  Memory m;
  m.weights_bytes = static_cast<int64_t>(package_->weights_file->size());
  m.kv_bytes = static_cast<int64_t>(kv_.size());
  int64_t huge = 0;
  for (const HugePageBuffer* b : {&weights_copy_, &packed_, &kv_}) {
    if (b->data() == nullptr) continue;
    const int64_t h = HugePageBytesIn(b->data(), b->size());
    if (h < 0) return m;
    huge += h;
  }
  m.huge_page_bytes = huge;
  return m;
}

absl::Status Runtime::Validate(const StepPlan& plan) const {
  if (plan.spec_index < 0 || plan.spec_index >= static_cast<int32_t>(specs_.size())) {
    return absl::InvalidArgumentError(absl::StrCat("specialization index ", plan.spec_index,
                                                   " out of range (", specs_.size(), " compiled)"));
  }
  const SpecShape& s = specs_[plan.spec_index].shape;
  const int32_t B = package_->kv_block;
  auto no_fit = [&](const std::string& what) {
    return absl::InvalidArgumentError(absl::StrCat(
        what, "; specialization ", plan.spec_index, " is (batch_size ", s.batch_size, ", seq_len ",
        s.seq_len, ", ctx_len ", s.ctx_len, "); compiled: ", ShapeList(specs_)));
  };
  if (static_cast<int32_t>(plan.rows.size()) > s.batch_size) {
    return no_fit(absl::StrCat("the step has ", plan.rows.size(), " rows"));
  }
  for (size_t r = 0; r < plan.rows.size(); ++r) {
    const StepRow& row = plan.rows[r];
    const int64_t n = static_cast<int64_t>(row.tokens.size());
    if (n == 0 || n > s.seq_len) return no_fit(absl::StrCat("row ", r, " has ", n, " tokens"));
    if (row.start_pos < 0 || row.start_pos + n > s.ctx_len) {
      return no_fit(absl::StrCat("row ", r, " needs positions [", row.start_pos, ", ", row.start_pos + n, ")"));
    }
    if (row.logits_to_keep < 0 || row.logits_to_keep > 1) {
      return absl::InvalidArgumentError(absl::StrCat("row ", r, ": logits_to_keep ", row.logits_to_keep,
                                                     " (this runtime keeps 0 or 1 per row)"));
    }
    const int64_t needed = (row.start_pos + n + B - 1) / B;
    if (static_cast<int64_t>(row.block_table.size()) < needed) {
      return absl::InvalidArgumentError(absl::StrCat("row ", r, ": block table has ", row.block_table.size(),
                                                     " blocks, positions up to ", row.start_pos + n,
                                                     " need ", needed));
    }
    for (size_t i = 0; i < static_cast<size_t>(needed); ++i) {
      if (row.block_table[i] < 0 || row.block_table[i] >= num_blocks_) {
        return absl::InvalidArgumentError(absl::StrCat("row ", r, ": block id ", row.block_table[i],
                                                       " outside the pool [0, ", num_blocks_, ")"));
      }
    }
    for (int32_t t : row.tokens) {
      if (t < 0 || t >= package_->config.vocab_size) {
        return absl::InvalidArgumentError(absl::StrCat("row ", r, ": token id ", t, " outside the vocabulary [0, ",
                                                       package_->config.vocab_size, ")"));
      }
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<StepOutput> Runtime::Execute(const StepPlan& plan) {
  TAILOR_RETURN_IF_ERROR(Validate(plan));
  const Program& prog = programs_[plan.spec_index];
  const SpecShape& s = prog.spec.shape;
  std::fill(tokens_.begin(), tokens_.begin() + prog.token_rows, 0);
  std::fill(pos_.begin(), pos_.begin() + prog.token_rows, -1);
  std::fill(tables_.begin(), tables_.begin() + int64_t{s.batch_size} * prog.max_blocks, 0);
  std::fill(keep_.begin(), keep_.begin() + s.batch_size, -1);
  for (int32_t m = 0; m < prog.token_rows; ++m) row_of_[m] = m / s.seq_len;
  for (size_t r = 0; r < plan.rows.size(); ++r) {
    const StepRow& row = plan.rows[r];
    for (size_t i = 0; i < row.tokens.size(); ++i) {
      tokens_[r * s.seq_len + i] = row.tokens[i];
      pos_[r * s.seq_len + i] = row.start_pos + static_cast<int32_t>(i);
    }
    const size_t used = std::min<size_t>(row.block_table.size(), prog.max_blocks);
    std::copy(row.block_table.begin(), row.block_table.begin() + used, tables_.begin() + r * prog.max_blocks);
    if (row.logits_to_keep > 0) keep_[r] = static_cast<int32_t>(r * s.seq_len + row.tokens.size() - 1);
  }
  const std::byte* weights = weights_copy_.data() != nullptr ? weights_copy_.data() : package_->weights_file->data();
  kern::OpArgs args{arena_.data(),   weights,        kv_.data(),     tokens_.data(),
                    pos_.data(),     row_of_.data(), tables_.data(), keep_.data(),
                    cos_sin_.data(), scores_.data(), packed_.data(), q8_scratch_.get()};
  const bool gen = !generated_.empty();
  for (size_t i = 0; i < prog.ops.size(); ++i) {
    const Op& op = prog.ops[i];
    const int parts = std::max(1, std::min(prog.spec.ols, op.split));
    const auto t0 = profile_ops_ ? std::chrono::steady_clock::now() : std::chrono::steady_clock::time_point();
    if (gen) {
      OpFn fn = generated_[plan.spec_index][i];
      pool_->Run(parts, [&](int part) { fn(&args, part, parts); });
    } else {
      const kern::OpDesc& d = descs_[plan.spec_index][i];
      pool_->Run(parts, [&](int part) { RunOpNative(d, args, part, parts, isa_); });
    }
    if (profile_ops_) op_seconds_[op.kind] += std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    if (after_op_) after_op_(prog, op, args);
  }
  StepOutput out;
  out.logits.resize(plan.rows.size());
  const int32_t V = package_->config.vocab_size;
  const float* logits = reinterpret_cast<const float*>(arena_.data() + prog.buffers[prog.logits_buffer].offset);
  for (size_t r = 0; r < plan.rows.size(); ++r) {
    if (plan.rows[r].logits_to_keep > 0) out.logits[r].assign(logits + r * V, logits + (r + 1) * V);
  }
  return out;
}

absl::StatusOr<std::unique_ptr<SyntheticStep>> MakeSyntheticStep(const Runtime& rt, int32_t spec_index,
                                                                 int32_t end_pos, int32_t rows) {
  const SpecShape& s = rt.specializations()[spec_index].shape;
  const int32_t B = rt.kv_block_size();
  const int32_t per_row = (s.ctx_len + B - 1) / B;
  if (int64_t{per_row} * s.batch_size > rt.num_kv_blocks()) {
    return absl::ResourceExhaustedError(absl::StrCat("the KV pool (", rt.num_kv_blocks(), " blocks) is too small for a full ",
                                                     rt.specializations()[spec_index].Name(), " step"));
  }
  const int32_t n = rows <= 0 ? s.batch_size : std::min(rows, s.batch_size);
  auto step = std::make_unique<SyntheticStep>();
  step->tables.resize(n);
  step->tokens.assign(s.seq_len, 1);
  step->plan.spec_index = spec_index;
  const int32_t start = std::clamp(end_pos, s.seq_len, s.ctx_len) - s.seq_len;
  for (int32_t r = 0; r < n; ++r) {
    for (int32_t b = 0; b < per_row; ++b) step->tables[r].push_back(r * per_row + b);
    step->plan.rows.push_back(StepRow{r, step->tokens, start, step->tables[r], 1});
  }
  return step;
}

namespace {

// Least squares of y over the columns of x (each row: 1, rows, attended), columns in `use`.
// Returns the coefficients (0 for unused columns); false when the system is singular.
bool FitLinear(const std::vector<std::array<double, 3>>& x, const std::vector<double>& y, std::array<bool, 3> use,
               std::array<double, 3>* coef) {
  std::vector<int> cols;
  for (int c = 0; c < 3; ++c) {
    if (use[c]) cols.push_back(c);
  }
  const int n = static_cast<int>(cols.size());
  double a[3][4] = {};  // normal equations, augmented; columns scaled to unit max for conditioning
  double norm[3] = {1, 1, 1};
  for (int i = 0; i < n; ++i) {
    for (const auto& row : x) norm[i] = std::max(norm[i], std::fabs(row[cols[i]]));
  }
  for (size_t k = 0; k < x.size(); ++k) {
    for (int i = 0; i < n; ++i) {
      const double xi = x[k][cols[i]] / norm[i];
      for (int j = 0; j < n; ++j) a[i][j] += xi * x[k][cols[j]] / norm[j];
      a[i][n] += xi * y[k];
    }
  }
  for (int i = 0; i < n; ++i) {  // Gauss-Jordan with partial pivoting
    int p = i;
    for (int r = i + 1; r < n; ++r) {
      if (std::fabs(a[r][i]) > std::fabs(a[p][i])) p = r;
    }
    if (std::fabs(a[p][i]) < 1e-12) return false;
    std::swap(a[i], a[p]);
    for (int r = 0; r < n; ++r) {
      if (r == i) continue;
      const double f = a[r][i] / a[i][i];
      for (int c = i; c <= n; ++c) a[r][c] -= f * a[i][c];
    }
  }
  *coef = {0, 0, 0};
  for (int i = 0; i < n; ++i) (*coef)[cols[i]] = a[i][n] / a[i][i] / norm[i];
  return true;
}

}  // namespace

StepCostModel FitStepCostModel(const std::vector<CostSample>& samples) {
  std::vector<std::array<double, 3>> x;
  std::vector<double> y;
  for (const CostSample& s : samples) {
    x.push_back({1.0, static_cast<double>(s.rows), static_cast<double>(s.attended)});
    y.push_back(s.seconds);
  }
  // Non-negative least squares over three terms: the least-squares fit of every subset of the
  // terms whose coefficients all come out >= 0, the one with the smallest residual.
  double best_rss = std::numeric_limits<double>::infinity();
  StepCostModel best;
  for (int subset = 1; subset < 8; ++subset) {
    const std::array<bool, 3> use = {(subset & 1) != 0, (subset & 2) != 0, (subset & 4) != 0};
    std::array<double, 3> c;
    if (!FitLinear(x, y, use, &c) || c[0] < 0 || c[1] < 0 || c[2] < 0) continue;
    double rss = 0;
    for (size_t k = 0; k < x.size(); ++k) {
      const double e = c[0] * x[k][0] + c[1] * x[k][1] + c[2] * x[k][2] - y[k];
      rss += e * e;
    }
    if (rss < best_rss) {
      best_rss = rss;
      best = StepCostModel{c[0], c[1], c[2]};
    }
  }
  if (best_rss < std::numeric_limits<double>::infinity()) return best;
  double mean = 0;
  for (double v : y) mean += v / static_cast<double>(y.size());
  return StepCostModel{mean, 0, 0};
}

absl::StatusOr<MeasuredCost> MeasureStepCost(Runtime& rt, int32_t spec, int repeats, const PointTiming& timing) {
  if (spec < 0 || spec >= static_cast<int32_t>(rt.specializations().size())) {
    return absl::InvalidArgumentError(absl::StrCat("specialization index ", spec, " out of range"));
  }
  const SpecShape& s = rt.specializations()[spec].shape;
  std::vector<int32_t> row_counts = {s.batch_size};
  if (s.batch_size > 1) row_counts.push_back(1);
  std::vector<int32_t> ends = {s.seq_len};
  if ((s.seq_len + s.ctx_len) / 2 > s.seq_len) ends.push_back((s.seq_len + s.ctx_len) / 2);
  if (s.ctx_len > ends.back()) ends.push_back(s.ctx_len);
  MeasuredCost m;
  std::vector<CostSample> samples;
  for (int32_t rows : row_counts) {
    for (int32_t end : ends) {
      TAILOR_ASSIGN_OR_RETURN(auto step, MakeSyntheticStep(rt, spec, end, rows));
      TAILOR_RETURN_IF_ERROR(rt.Execute(step->plan).status());  // warms caches
      std::vector<double> t;
      double spent = 0;
      for (int rep = 0; rep < std::max(1, repeats); ++rep) {
        if (rep >= 2 && timing.max_point_seconds > 0 && spent >= timing.max_point_seconds) break;
        const auto t0 = std::chrono::steady_clock::now();
        TAILOR_RETURN_IF_ERROR(rt.Execute(step->plan).status());
        t.push_back(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
        spent += t.back();
      }
      const size_t pick = timing.fastest ? 0 : t.size() / 2;
      std::nth_element(t.begin(), t.begin() + pick, t.end());
      const double seconds = std::max(t[pick], 1e-9);
      samples.push_back(CostSample{rows, AttendedPositions(rows, s.seq_len, end), seconds});
      if (rows == s.batch_size && end == s.ctx_len) m.full_seconds = seconds;
      if (rows == s.batch_size && end == s.seq_len) m.at_start_seconds = seconds;
    }
  }
  m.model = FitStepCostModel(samples);
  return m;
}

absl::StatusOr<std::vector<MeasuredCost>> MeasureStepCosts(Runtime& rt, int repeats) {
  std::vector<MeasuredCost> out;
  for (size_t i = 0; i < rt.specializations().size(); ++i) {
    TAILOR_ASSIGN_OR_RETURN(MeasuredCost m, MeasureStepCost(rt, static_cast<int32_t>(i), repeats));
    out.push_back(m);
  }
  return out;
}

}  // namespace tailor
