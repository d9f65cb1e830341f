#include "api/plan_costs.h"

#include <stdlib.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <fstream>
#include <sstream>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/strip.h"
#include "common/checksum.h"
#include "common/status_macros.h"
#include "engine/compiler.h"
#include "engine/ops.h"
#include "engine/profile.h"
#include "engine/runtime.h"
#include "nlohmann/json.hpp"
#include "scheduler/spec_set_search.h"

namespace tailor {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

constexpr int kCacheVersion = 1;

// Removes a temporary directory (and what is in it) when it goes out of scope.
class TempDirGuard {
 public:
  explicit TempDirGuard(fs::path dir) : dir_(std::move(dir)) {}
  ~TempDirGuard() {
    std::error_code ec;
    fs::remove_all(dir_, ec);
  }
  const fs::path& path() const { return dir_; }

 private:
  fs::path dir_;
};

absl::StatusOr<fs::path> MakeTempDir() {
  std::string templ = (fs::temp_directory_path() / "tailor-plan-XXXXXX").string();
  if (mkdtemp(templ.data()) == nullptr) {
    return absl::InternalError(absl::StrCat("cannot create a temporary directory ", templ));
  }
  return fs::path(templ);
}

json ContextJson(const Model& model, const CostMeasureOptions& o, const std::string& cpu) {
  const ModelFingerprint f = FingerprintOf(model);
  return json{{"model", f.Describe()},
              {"weights_checksum", f.weights_checksum},
              {"weights", o.weights_label},
              {"kv_dtype", DTypeName(o.kv_dtype)},
              {"kv_block", o.kv_block},
              {"target", "native"},
              {"cpu", cpu},
              {"isa", CpuIsaName(HostCpuIsa())},
              {"hardware_threads", std::thread::hardware_concurrency()}};
}

json CostJson(const MeasuredCost& m) {
  return json{{"fixed_seconds", m.model.fixed_seconds},
              {"per_row_seconds", m.model.per_row_seconds},
              {"per_position_seconds", m.model.per_position_seconds},
              {"full_seconds", m.full_seconds},
              {"at_start_seconds", m.at_start_seconds}};
}

// A cost entry: a number (fixed seconds) or an object of the three terms; each finite, >= 0.
absl::StatusOr<StepCostModel> CostOf(const json& j, const std::string& where) {
  auto term = [&](const char* name, double* out) -> absl::Status {
    if (!j.contains(name)) return absl::OkStatus();
    if (!j[name].is_number() || !std::isfinite(j[name].get<double>()) || j[name].get<double>() < 0) {
      return absl::InvalidArgumentError(absl::StrCat(where, ": \"", name, "\" must be a number of seconds >= 0"));
    }
    *out = j[name].get<double>();
    return absl::OkStatus();
  };
  StepCostModel m;
  if (j.is_number()) {
    if (!std::isfinite(j.get<double>()) || j.get<double>() < 0) {
      return absl::InvalidArgumentError(absl::StrCat(where, ": seconds must be a number >= 0"));
    }
    m.fixed_seconds = j.get<double>();
    return m;
  }
  if (!j.is_object()) {
    return absl::InvalidArgumentError(absl::StrCat(
        where, ": expected seconds or {\"fixed_seconds\", \"per_row_seconds\", \"per_position_seconds\"}"));
  }
  for (const auto& [key, value] : j.items()) {
    (void)value;
    if (key != "fixed_seconds" && key != "per_row_seconds" && key != "per_position_seconds" &&
        key != "full_seconds" && key != "at_start_seconds") {
      return absl::InvalidArgumentError(absl::StrCat(
          where, ": unknown field \"", key, "\" (expected fixed_seconds, per_row_seconds, per_position_seconds)"));
    }
  }
  TAILOR_RETURN_IF_ERROR(term("fixed_seconds", &m.fixed_seconds));
  TAILOR_RETURN_IF_ERROR(term("per_row_seconds", &m.per_row_seconds));
  TAILOR_RETURN_IF_ERROR(term("per_position_seconds", &m.per_position_seconds));
  return m;
}

// The cache file's costs when its context matches; empty otherwise (a warning when unreadable).
json ReadCache(const fs::path& file, const json& context, const CostMeasureOptions& o) {
  std::error_code ec;
  if (!fs::exists(file, ec)) return json::object();
  std::ifstream in(file);
  std::stringstream text;
  text << in.rdbuf();
  json j = json::parse(text.str(), nullptr, /*allow_exceptions=*/false);
  if (!j.is_object() || j.value("version", 0) != kCacheVersion || !j.contains("context") ||
      j["context"] != context || !j.contains("costs") || !j["costs"].is_object()) {
    if (o.warn) o.warn(absl::StrCat("ignoring the unreadable or foreign cost cache ", file.string()));
    return json::object();
  }
  return j["costs"];
}

void WriteCache(const fs::path& file, const json& context, const json& costs, const CostMeasureOptions& o) {
  std::error_code ec;
  fs::create_directories(file.parent_path(), ec);
  const fs::path tmp = fs::path(absl::StrCat(file.string(), ".tmp", getpid()));
  {
    std::ofstream out(tmp, std::ios::trunc);
    out << json{{"version", kCacheVersion}, {"context", context}, {"costs", costs}}.dump(1) << "\n";
    if (!out) {
      if (o.warn) o.warn(absl::StrCat("cannot write the cost cache ", tmp.string(), "; costs are not kept"));
      fs::remove(tmp, ec);
      return;
    }
  }
  fs::rename(tmp, file, ec);
  if (ec && o.warn) o.warn(absl::StrCat("cannot write the cost cache ", file.string(), ": ", ec.message()));
}

}  // namespace

std::string CpuModelName() {
  std::ifstream in("/proc/cpuinfo");
  std::string line;
  while (std::getline(in, line)) {
    absl::string_view v(line);
    if (!absl::ConsumePrefix(&v, "model name")) continue;
    const size_t colon = v.find(':');
    if (colon == absl::string_view::npos) continue;
    return std::string(absl::StripAsciiWhitespace(v.substr(colon + 1)));
  }
  return "unknown CPU";
}

absl::StatusOr<std::vector<StepCostModel>> MeasuredCosts(const Model& model, const std::vector<Specialization>& specs,
                                                         const CostMeasureOptions& o, CostMeasureReport* report) {
  auto progress = [&](const std::string& line) {
    if (o.progress) o.progress(line);
  };
  CostMeasureReport r;
  r.cpu = CpuModelName();
  const json context = ContextJson(model, o, r.cpu);
  json cached = json::object();
  if (!o.cache_dir.empty()) {
    const std::string key = context.dump();
    r.cache_file = o.cache_dir / absl::StrCat("plan-costs-", ChecksumHex(std::as_bytes(std::span(key))), ".json");
    cached = ReadCache(r.cache_file, context, o);
  }
  std::vector<StepCostModel> out(specs.size());
  std::vector<bool> known(specs.size(), false);
  for (size_t i = 0; i < specs.size(); ++i) {
    const std::string name = CandidateName(specs[i]);
    if (o.remeasure || !cached.contains(name)) continue;
    auto m = CostOf(cached[name], name);
    if (!m.ok()) continue;
    out[i] = *m;
    known[i] = true;
    ++r.cached;
  }
  // What to time: every unknown spec, or (sharing) the largest ctx_len of each unknown
  // (batch_size, seq_len, -ols), the others taking its cost model.
  std::vector<int32_t> source(specs.size(), -1);  // the spec whose cost an unknown one takes
  std::vector<int32_t> todo_index;
  for (size_t i = 0; i < specs.size(); ++i) {
    if (known[i]) continue;
    int32_t top = static_cast<int32_t>(i);
    if (o.share_across_ctx) {
      for (size_t j = 0; j < specs.size(); ++j) {
        const Specialization &a = specs[j], &b = specs[top];
        const bool same = a.ols == b.ols && a.shape.batch_size == b.shape.batch_size &&
                          a.shape.seq_len == b.shape.seq_len;
        if (same && (a.shape.ctx_len > b.shape.ctx_len || (a.shape.ctx_len == b.shape.ctx_len && known[j]))) {
          top = static_cast<int32_t>(j);
        }
      }
    }
    source[i] = top;
    if (!known[top] && std::find(todo_index.begin(), todo_index.end(), top) == todo_index.end()) {
      todo_index.push_back(top);
    }
  }
  if (!todo_index.empty()) {
    const auto t0 = std::chrono::steady_clock::now();
    auto elapsed = [&] { return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count(); };
    TAILOR_ASSIGN_OR_RETURN(fs::path dir, MakeTempDir());
    TempDirGuard guard(dir);
    std::vector<Specialization> todo;
    for (int32_t i : todo_index) todo.push_back(specs[i]);
    CompileOptions co;
    co.out = dir / "package";
    co.weight_dtype = o.weight_dtype;
    co.keep_source_formats = o.keep_source_formats;
    co.kv_dtype = o.kv_dtype;
    co.kv_block = o.kv_block;
    co.target = Target::kNative;
    co.compile_only = true;  // timed below, one candidate at a time
    progress(absl::StrFormat("measuring %d candidates on the native path (%d cached)", todo.size(), r.cached));
    TAILOR_RETURN_IF_ERROR(CompilePackage(model, todo, co));
    RuntimeOptions ro;
    ro.warn = o.warn;
    TAILOR_ASSIGN_OR_RETURN(auto rt, Runtime::Open(co.out, ro));
    for (size_t k = 0; k < todo.size(); ++k) {
      const double start = elapsed();
      TAILOR_ASSIGN_OR_RETURN(MeasuredCost m, MeasureStepCost(*rt, static_cast<int32_t>(k), o.repeats,
                                                              PointTiming{o.max_point_seconds, /*fastest=*/true}));
      out[todo_index[k]] = m.model;
      known[todo_index[k]] = true;
      ++r.measured;
      const std::string name = CandidateName(todo[k]);
      cached[name] = CostJson(m);
      if (!o.cache_dir.empty()) WriteCache(r.cache_file, context, cached, o);
      progress(absl::StrFormat("[%d/%d] %s: %.3f ms per full step at ctx_len (%.3f ms at its start); model %.3f ms + "
                               "%.4f ms/row + %.3g ms/attended position (%.1f s)",
                               k + 1, todo.size(), name, m.full_seconds * 1e3, m.at_start_seconds * 1e3,
                               m.model.fixed_seconds * 1e3, m.model.per_row_seconds * 1e3,
                               m.model.per_position_seconds * 1e3, elapsed() - start));
    }
    r.measure_seconds = elapsed();
  }
  for (size_t i = 0; i < specs.size(); ++i) {
    if (source[i] < 0 || source[i] == static_cast<int32_t>(i)) continue;
    out[i] = out[source[i]];
    ++r.derived;
  }
  if (report != nullptr) *report = r;
  return out;
}

absl::StatusOr<std::map<std::string, StepCostModel>> ReadInjectedCosts(const fs::path& path) {
  std::ifstream in(path);
  if (!in) return absl::InvalidArgumentError(absl::StrCat("--costs: cannot read ", path.string()));
  std::stringstream text;
  text << in.rdbuf();
  json j = json::parse(text.str(), nullptr, /*allow_exceptions=*/false);
  if (!j.is_object() || j.empty()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "--costs ", path.string(), ": expected a JSON object mapping candidate names (e.g. \"b4_s1_c512_ols1\") to "
        "{\"fixed_seconds\", \"per_row_seconds\", \"per_position_seconds\"}"));
  }
  std::map<std::string, StepCostModel> out;
  for (const auto& [key, value] : j.items()) {
    const std::string where = absl::StrCat("--costs ", path.string(), ": \"", key, "\"");
    auto spec = ParseCandidateName(key);
    if (!spec.ok()) return absl::InvalidArgumentError(absl::StrCat("--costs ", path.string(), ": ", spec.status().message()));
    TAILOR_ASSIGN_OR_RETURN(StepCostModel m, CostOf(value, where));
    if (!out.emplace(CandidateName(*spec), m).second) {
      return absl::InvalidArgumentError(absl::StrCat(where, ": the same candidate twice"));
    }
  }
  return out;
}

}  // namespace tailor
