// Generated kernels: C++ source for one program in which every shape is a compile-time
// constant, built by the host C++ compiler into a shared object that the runtime dlopen()s.
#ifndef TAILOR_ENGINE_CODEGEN_H_
#define TAILOR_ENGINE_CODEGEN_H_

#include <filesystem>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "engine/ops.h"
#include "engine/program.h"

namespace tailor {

// The C++ aggregate initializer of `desc` ("OpDesc{...}"), as generated code passes it.
std::string OpDescLiteral(const kern::OpDesc& desc);

// Every kernel header's name and text (kKernelFiles), for keys that must change with them.
std::string KernelsText();

// Source text of the program's ops as extern "C" functions tailor_op_<i>(args, part, parts),
// the table tailor_ops, tailor_num_ops and tailor_program_key. `avx512` picks the kernel variant.
std::string GenerateProgramSource(const Program& program, const OpConstants& constants, CpuIsa isa);

struct BuildOptions {
  std::vector<std::string> cxx = {"c++"};  // compiler command (CXX split on spaces)
  std::vector<std::string> flags = {"-std=c++20", "-O3", "-march=native", "-ffp-contract=off",
                                    "-fPIC", "-shared", "-w"};
};

struct BuiltKernel {
  std::string source;    // relative to the package directory
  std::string object;    // relative to the package directory
  bool cache_hit = false;
};

// Writes `source` as kernels/<name>.cc in `package_dir` (with the kernel header beside it) and
// builds it into build/<content hash>.so unless that object exists already.
absl::StatusOr<BuiltKernel> BuildKernel(const std::filesystem::path& package_dir,
                                        const std::string& name, const std::string& source,
                                        const BuildOptions& options);

// "g++ (Debian 12.2.0-14) 12.2.0": the first line of `cxx --version`, for the fingerprint.
std::string CompilerVersion(const BuildOptions& options);

}  // namespace tailor

#endif  // TAILOR_ENGINE_CODEGEN_H_
