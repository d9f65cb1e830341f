#include "engine/codegen.h"

#include <fcntl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <fstream>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "common/checksum.h"
#include "common/status_macros.h"
#include "engine/kernels_text.h"
#include "engine/runtime.h"

namespace tailor {
namespace {

namespace fs = std::filesystem;

std::string C(int64_t v) { return absl::StrCat("Const<", v, ">{}"); }

std::string Buf(const Program& p, int32_t b, bool is_const) {
  return absl::StrCat("reinterpret_cast<", is_const ? "const float*" : "float*", ">(a->arena + ",
                      p.buffers[b].offset, ")");
}

const char* WType(DType t) {
  switch (KernelType(t)) {
    case kern::kWF16: return "kWF16";
    case kern::kWBF16: return "kWBF16";
    default: return "kWF32";
  }
}

// The call an op makes: the same kernel and arguments as RunOpNative, with constant shapes.
std::string OpCall(const Op& op, const Program& p, const OpConstants& k) {
  const std::string w = absl::StrCat("a->weights + ", op.weight.offset);
  const std::string kv = WType(k.kv_dtype);
  switch (op.kind) {
    case OpKind::kEmbed:
      return absl::StrCat("EmbedOp<", WType(op.weight.dtype), ">(", C(op.n), ", a->tokens, a->pos, ", w,
                          ", ", Buf(p, op.out, false), ", b, e);");
    case OpKind::kRmsNorm:
      return absl::StrCat("RmsNormOp<Isa, ", WType(op.weight.dtype), ">(", C(op.n), ", ",
                          Buf(p, op.in, true), ", ", w, ", ", absl::StrFormat("%af", k.rms_eps), ", ",
                          Buf(p, op.out, false), ", b, e);");
    case OpKind::kMatMul:
      return absl::StrCat("MatMulOp<Isa, ", WType(op.weight.dtype), ">(", C(op.rows), ", ", C(op.k),
                          ", ", Buf(p, op.in, true), ", ", w, ", ", Buf(p, op.out, false), ", ", op.n,
                          ", b, e, a->packed ? a->packed + ", op.weight.offset, " : nullptr);");
    case OpKind::kRope:
      return absl::StrCat("RopeOp(", C(k.n_heads), ", ", C(k.n_kv_heads), ", ", C(k.head_dim), ", ",
                          Buf(p, op.in, false), ", ", Buf(p, op.in2, false), ", a->pos, a->cos_sin, b, e);");
    case OpKind::kKvWrite:
      return absl::StrCat("KvWriteOp<", kv, ">(", C(k.n_kv_heads * k.head_dim), ", ", C(k.kv_block), ", ",
                          C(p.max_blocks), ", ", C(k.n_layers), ", ", op.layer, ", ", Buf(p, op.in, true),
                          ", ", Buf(p, op.in2, true), ", a->pos, a->row_of, a->tables, a->kv_pool, b, e);");
    case OpKind::kAttention:
      return absl::StrCat("AttentionOp<Isa, ", kv, ">(", op.rows, ", ", C(k.n_heads), ", ",
                          C(k.n_kv_heads), ", ", C(k.head_dim), ", ", C(k.kv_block), ", ", C(p.max_blocks),
                          ", ", C(k.n_layers), ", ", op.layer, ", ", Buf(p, op.in, true),
                          ", a->pos, a->row_of, a->tables, a->kv_pool, ", Buf(p, op.out, false),
                          ", a->scores + part * AttentionScratch(", p.spec.shape.ctx_len, "), b, e);");
    case OpKind::kAdd:
      return absl::StrCat("AddOp(", C(op.n), ", ", Buf(p, op.in, false), ", ", Buf(p, op.in2, true),
                          ", b, e);");
    case OpKind::kSwiGlu:
      return absl::StrCat("SwiGluOp<Isa>(", C(op.n), ", ", Buf(p, op.in, false), ", ", Buf(p, op.in2, true),
                          ", b, e);");
    case OpKind::kGather:
      return absl::StrCat("GatherOp(", C(op.n), ", ", Buf(p, op.in, true), ", a->keep, ",
                          Buf(p, op.out, false), ", b, e);");
  }
  return "";
}

// Runs argv, capturing stderr; returns its exit status.
absl::Status RunProcess(const std::vector<std::string>& argv) {
  char tmpl[] = "/tmp/tailor_cxx_XXXXXX";
  int err_fd = mkstemp(tmpl);
  if (err_fd < 0) return absl::InternalError("cannot create a temporary file for compiler output");
  unlink(tmpl);
  pid_t pid = fork();
  if (pid == 0) {
    dup2(err_fd, 1);
    dup2(err_fd, 2);
    std::vector<char*> args;
    for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
    args.push_back(nullptr);
    execvp(args[0], args.data());
    _exit(127);
  }
  int status = 0;
  waitpid(pid, &status, 0);
  std::string output;
  lseek(err_fd, 0, SEEK_SET);
  char buf[4096];
  ssize_t n;
  while ((n = read(err_fd, buf, sizeof buf)) > 0 && output.size() < 8192) output.append(buf, n);
  close(err_fd);
  if (WIFEXITED(status) && WEXITSTATUS(status) == 0) return absl::OkStatus();
  if (WIFEXITED(status) && WEXITSTATUS(status) == 127) {
    return absl::FailedPreconditionError(absl::StrCat(
        "cannot run the C++ compiler '", argv[0], "' (set CXX, or compile with --target native)"));
  }
  return absl::InternalError(absl::StrCat("the C++ compiler failed (", absl::StrJoin(argv, " "),
                                          "):\n", output));
}

}  // namespace

std::string GenerateProgramSource(const Program& p, const OpConstants& k, CpuIsa isa) {
  std::string s = absl::StrCat(
      "// Generated by tailor compile: specialization ", p.spec.Name(), " (-ols=", p.spec.ols,
      "), ", p.ops.size(), " ops, arena ", p.arena_bytes,
      " bytes.\n// Every shape is a compile-time constant; the kernels are tailor_kernels.h.\n"
      "#include \"tailor_kernels.h\"\n\n"
      "using namespace tailor::kern;\nusing Isa = ",
      isa == CpuIsa::kAmx          ? "AmxIsa"
      : isa == CpuIsa::kAvx512Bf16 ? "Avx512Bf16Isa"
      : isa == CpuIsa::kAvx512     ? "Avx512Isa"
                                   : "PortableIsa", ";\n\n");
  for (size_t i = 0; i < p.ops.size(); ++i) {
    const Op& op = p.ops[i];
    absl::StrAppend(&s, "// ", OpKindName(op.kind), op.layer >= 0 ? absl::StrCat(" layer ", op.layer) : "",
                    "\nextern \"C\" void tailor_op_", i,
                    "(const OpArgs* a, int part, int parts) {\n  int b, e;\n  Partition(", op.split,
                    ", parts, part, &b, &e);\n  (void)part;\n  ", OpCall(op, p, k), "\n}\n");
  }
  absl::StrAppend(&s, "\nusing OpFn = void (*)(const OpArgs*, int, int);\nextern \"C\" const OpFn tailor_ops[] = {");
  for (size_t i = 0; i < p.ops.size(); ++i) absl::StrAppend(&s, i ? ", " : "", "tailor_op_", i);
  absl::StrAppend(&s, "};\nextern \"C\" const int tailor_num_ops = ", p.ops.size(),
                  ";\nextern \"C\" const char tailor_program_key[] = \"", ProgramKey(p, k), "\";\n");
  return s;
}

absl::StatusOr<BuiltKernel> BuildKernel(const fs::path& dir, const std::string& name,
                                        const std::string& source, const BuildOptions& options) {
  std::error_code ec;
  fs::create_directories(dir / "kernels", ec);
  fs::create_directories(dir / "build", ec);
  if (ec) return absl::InternalError(absl::StrCat(dir.string(), ": cannot create directories: ", ec.message()));
  const std::string header = absl::StrCat(kKernelsText, "\n", kAmxText, "\n", kOpsText);  // for the cache key
  auto write = [](const fs::path& path, const std::string& text) -> absl::Status {
    std::ofstream out(path, std::ios::trunc | std::ios::binary);
    out << text;
    return out ? absl::OkStatus() : absl::InternalError(absl::StrCat(path.string(), ": cannot write"));
  };
  TAILOR_RETURN_IF_ERROR(write(dir / "kernels" / "cpu_kernels.h", kKernelsText));
  TAILOR_RETURN_IF_ERROR(write(dir / "kernels" / "amx_kernels.h", kAmxText));
  TAILOR_RETURN_IF_ERROR(write(dir / "kernels" / "tailor_kernels.h", kOpsText));
  BuiltKernel out;
  out.source = absl::StrCat("kernels/", name, ".cc");
  TAILOR_RETURN_IF_ERROR(write(dir / out.source, source));
  const std::string key_text = absl::StrCat(absl::StrJoin(options.cxx, " "), "\n",
                                            absl::StrJoin(options.flags, " "), "\n", header, "\n", source);
  const std::string hash = ChecksumHex(std::as_bytes(std::span<const char>(key_text.data(), key_text.size())));
  out.object = absl::StrCat("build/", hash, ".so");
  if (fs::exists(dir / out.object)) {
    out.cache_hit = true;
    return out;
  }
  const fs::path tmp = dir / absl::StrCat("build/", hash, ".so.tmp");
  std::vector<std::string> argv = options.cxx;
  argv.insert(argv.end(), options.flags.begin(), options.flags.end());
  argv.insert(argv.end(), {"-I", (dir / "kernels").string(), "-o", tmp.string(), (dir / out.source).string()});
  TAILOR_RETURN_IF_ERROR(RunProcess(argv));
  fs::rename(tmp, dir / out.object, ec);
  if (ec) return absl::InternalError(absl::StrCat(tmp.string(), ": ", ec.message()));
  return out;
}

std::string CompilerVersion(const BuildOptions& options) {
  std::string cmd;
  for (const auto& a : options.cxx) absl::StrAppend(&cmd, "'", a, "' ");
  absl::StrAppend(&cmd, "--version 2>/dev/null");
  FILE* f = popen(cmd.c_str(), "r");
  if (f == nullptr) return "unknown";
  char line[256] = {};
  std::string out = fgets(line, sizeof line, f) ? std::string(line) : "unknown";
  pclose(f);
  while (!out.empty() && (out.back() == '\n' || out.back() == '\r')) out.pop_back();
  return out;
}

}  // namespace tailor
