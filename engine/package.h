// A compiled package (the --out / -aic-binary-dir directory):
//   manifest.json    versioned: model config, tokenizer, chat template, specializations with
//                    their options, arena sizes, costs and kernel objects, checksums, fingerprint
//   weights.bin      every weight once, 64-byte aligned, memory-mapped by the runtime
//   tokenizer.model  the SentencePiece model (also for GGUF / llama2.c vocabularies), or
//   tokenizer.json   the Hugging Face tokenizer (also for GGUF gpt2 vocabularies)
//   kernels/         generated sources and shared objects (--target generated)
// A package contains native code: open only packages from a trusted source. Every file loaded is
// checked against the manifest's checksums, and refused when others may write it (package_trust.h).
#ifndef TAILOR_ENGINE_PACKAGE_H_
#define TAILOR_ENGINE_PACKAGE_H_

#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "common/mapped_file.h"
#include "engine/executor.h"
#include "engine/program.h"
#include "models/family.h"
#include "models/model.h"

namespace tailor {

// 2: named tensors (weights.tensors), the model's family, rotary frequencies, special tokens.
// 3: manifest_checksum, the manifest's checksum of itself (package_trust.h).
inline constexpr int kPackageVersion = 3;

enum class Target { kGenerated, kNative };

struct PackageSpec {
  Specialization spec;
  int64_t arena_bytes = 0;
  double cost_seconds = 0;   // per step, rows at their last positions (ending at ctx_len)
  double cost_seconds_at_start = 0;  // per step, rows ending at seq_len; 0: not known
  std::string cost_source;   // "measured", "estimated" or "table"
  // The step cost as a function of rows used and attended positions (executor.h): fitted to
  // timings at several rows and positions ("measured"), else through the two figures above.
  StepCostModel cost_model;
  std::string kernel_source;  // relative to the package; empty on the native target
  std::string kernel_object;
  std::string kernel_checksum;
};

// Which calibration profile a package was compiled with (manifest field "calibration", written
// when a profile was loaded; optional when reading).
struct PackageCalibration {
  std::string profile;           // the profile file's name, as given to -load-profile
  std::string profile_checksum;  // ChecksumHex of the profile file
  std::string method;            // -quantization-calibration: "minmax", "percentile" or "mse"
  double percentile = 99.99;     // -percentile-calibration-value (used by "percentile")
  int32_t histogram_bins = 0;
  std::vector<std::string> specializations;  // the profile's, by name ("b1_s1_c128")
  bool operator==(const PackageCalibration&) const = default;
};

struct Package {
  std::filesystem::path dir;
  ModelConfig config;  // q/k rows stored for interleaved rope
  const ModelFamily* family = nullptr;  // FindFamily(config.family)
  std::string source_format;
  std::string chat_template;
  std::string bos_token, eos_token;  // their text, for chat templates
  DType weight_dtype = DType::kF32;
  DType kv_dtype = DType::kF32;
  int32_t kv_block = 16;
  Target target = Target::kGenerated;
  WeightLayout weights;
  std::string weights_checksum;
  std::string tokenizer_file = "tokenizer.model";
  std::string tokenizer_checksum;
  std::vector<PackageSpec> specs;
  // Fingerprint.
  std::string tailor_version;
  std::string compiler;
  std::vector<std::string> cpu_features;  // features the generated code was built for
  // Kernel variant the generated code was built with (CpuIsaName); empty: the host's best.
  std::string kernel_isa;
  std::optional<PackageCalibration> calibration;  // the profile the package was compiled with

  std::shared_ptr<const MappedFile> weights_file;  // set by OpenPackage

  std::vector<Specialization> Specializations() const;
};

// Reads and checks a package: ownership and permissions of the directory and every file it
// loads, manifest checksum, syntax and version, weights size and checksum, tokenizer checksum,
// kernel object paths inside the package. Errors name the file and what is wrong.
absl::StatusOr<std::unique_ptr<Package>> OpenPackage(const std::filesystem::path& dir);

// Writes dir/manifest.json (atomically: a temporary file renamed).
absl::Status WriteManifest(const Package& package);


// CPU features of this machine that generated code may use ("avx512f", ...).
std::vector<std::string> HostCpuFeatures();

}  // namespace tailor

#endif  // TAILOR_ENGINE_PACKAGE_H_
