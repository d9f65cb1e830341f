// A package's manifest.json (engine/package.h): OpenPackage on a directory holding the input as
// manifest.json beside fixed weights and tokenizer files. With TAILOR_FUZZ_PACKAGE set to a
// package directory (scripts/fuzz.sh passes build/default-package), its weights.bin and
// tokenizer.model are linked in, so that package's manifest (a seed) opens whole and mutations
// reach every check; otherwise small placeholder files stand in. An input that carries a
// "manifest_checksum" field is sealed first (SealManifestText), as `tailor compile` does, so that
// mutations reach the checks after the checksum; inputs without it exercise the refusal.
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <utility>

#include "engine/package.h"
#include "engine/package_trust.h"
#include "tests/fuzz/fuzz_util.h"

namespace {

namespace fs = std::filesystem;

// The package directory, made once per process and removed at exit.
struct PackageDir {
  fs::path dir;
  ~PackageDir() {
    std::error_code ec;
    if (!dir.empty()) fs::remove_all(dir, ec);
  }
};
PackageDir* g_package = nullptr;

void WriteFile(const fs::path& path, const std::string& bytes) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  static PackageDir package;
  std::string templ = (fs::temp_directory_path() / "tailor-fuzz-package-XXXXXX").string();
  if (::mkdtemp(templ.data()) == nullptr) std::abort();
  package.dir = templ;
  const char* source = std::getenv("TAILOR_FUZZ_PACKAGE");
  bool linked = false;
  if (source != nullptr && fs::exists(fs::path(source) / "weights.bin")) {
    std::error_code ec;
    for (const auto& e : fs::directory_iterator(source)) {
      if (e.path().filename() == "manifest.json" || !e.is_regular_file()) continue;
      fs::create_symlink(fs::absolute(e.path()), package.dir / e.path().filename(), ec);
    }
    linked = !ec;
  }
  if (!linked) {
    WriteFile(package.dir / "weights.bin", std::string(4096, '\0'));
    WriteFile(package.dir / "tokenizer.model", "placeholder");
  }
  g_package = &package;
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string text(tailor::fuzz::AsText(data, size));
  if (auto sealed = tailor::SealManifestText(text); sealed.ok()) text = *std::move(sealed);
  WriteFile(g_package->dir / "manifest.json", text);
  auto p = tailor::OpenPackage(g_package->dir);
  if (p.ok()) {
    TAILOR_FUZZ_CHECK(!(*p)->specs.empty());
    TAILOR_FUZZ_CHECK((*p)->config.dim > 0 && (*p)->config.vocab_size > 0);
  }
  return 0;
}
