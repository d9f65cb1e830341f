#include "scheduler/trace.h"

#include <algorithm>
#include <climits>
#include <cmath>
#include <fstream>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "nlohmann/json.hpp"

namespace tailor {
namespace {

absl::Status Bad(absl::string_view spec, absl::string_view why) {
  return absl::InvalidArgumentError(absl::StrCat("length distribution \"", spec, "\": ", why,
                                                 " (expected fixed:N, uniform:LO:HI, exp:MEAN or "
                                                 "lognormal:MEDIAN:SIGMA)"));
}

}  // namespace

int32_t LengthDist::Sample(std::mt19937_64& rng) const {
  double x = a;
  switch (kind) {
    case Kind::kFixed:
      break;
    case Kind::kUniform:
      x = std::uniform_int_distribution<int64_t>(static_cast<int64_t>(a), static_cast<int64_t>(b))(rng);
      break;
    case Kind::kExponential:
      x = std::ceil(std::exponential_distribution<double>(1.0 / a)(rng));
      break;
    case Kind::kLogNormal:
      x = std::round(std::lognormal_distribution<double>(std::log(a), b)(rng));
      break;
  }
  return static_cast<int32_t>(std::clamp(x, 1.0, 1e9));
}

std::string LengthDist::ToString() const {
  switch (kind) {
    case Kind::kFixed:
      return absl::StrCat("fixed:", a);
    case Kind::kUniform:
      return absl::StrCat("uniform:", a, ":", b);
    case Kind::kExponential:
      return absl::StrCat("exp:", a);
    case Kind::kLogNormal:
      return absl::StrCat("lognormal:", a, ":", b);
  }
  return "";
}

absl::StatusOr<LengthDist> ParseLengthDist(absl::string_view spec) {
  std::vector<absl::string_view> parts = absl::StrSplit(spec, ':');
  std::vector<double> v;
  for (size_t i = 1; i < parts.size(); ++i) {
    double x;
    if (!absl::SimpleAtod(parts[i], &x) || !std::isfinite(x)) return Bad(spec, "a parameter is not a number");
    v.push_back(x);
  }
  LengthDist d;
  if (parts[0] == "fixed" && v.size() == 1 && v[0] >= 1) {
    d = {LengthDist::Kind::kFixed, v[0], 0};
  } else if (parts[0] == "uniform" && v.size() == 2 && v[0] >= 1 && v[1] >= v[0]) {
    d = {LengthDist::Kind::kUniform, v[0], v[1]};
  } else if (parts[0] == "exp" && v.size() == 1 && v[0] >= 1) {
    d = {LengthDist::Kind::kExponential, v[0], 0};
  } else if (parts[0] == "lognormal" && v.size() == 2 && v[0] >= 1 && v[1] >= 0) {
    d = {LengthDist::Kind::kLogNormal, v[0], v[1]};
  } else {
    return Bad(spec, "unknown kind, wrong number of parameters, or a length below 1");
  }
  return d;
}

absl::StatusOr<std::vector<TraceRequest>> GenerateTrace(const TraceOptions& o) {
  auto bad = [](absl::string_view field, auto value, absl::string_view expected) {
    return absl::InvalidArgumentError(absl::StrCat(field, " ", value, ": expected ", expected));
  };
  if (o.num_requests < 0) return bad("num_requests", o.num_requests, ">= 0");
  if (o.first_free_id < 0 || o.first_free_id >= o.vocab_size) {
    return bad("first_free_id", o.first_free_id, absl::StrCat("in [0, vocab_size ", o.vocab_size, ")"));
  }
  if (!(o.shared_prefix_fraction >= 0 && o.shared_prefix_fraction <= 1)) {
    return bad("shared_prefix_fraction", o.shared_prefix_fraction, "in [0, 1]");
  }
  const bool sharing = o.shared_prefix_fraction > 0;
  if (sharing && (o.num_prefixes < 1 || o.prefix_len < 1)) {
    return bad("num_prefixes and prefix_len", absl::StrCat(o.num_prefixes, ", ", o.prefix_len), ">= 1");
  }
  const int32_t bos = o.bos_id >= 0 ? 1 : 0;
  if (o.max_total_len < bos + (sharing ? o.prefix_len : 0) + 2) {
    return bad("max_total_len", o.max_total_len, "room for the prefix, one prompt token and one output token");
  }
  std::mt19937_64 rng(o.seed);
  std::uniform_int_distribution<int32_t> token(o.first_free_id, o.vocab_size - 1);
  std::vector<std::vector<int32_t>> prefixes(sharing ? o.num_prefixes : 0);
  for (auto& p : prefixes) {
    for (int32_t i = 0; i < o.prefix_len; ++i) p.push_back(token(rng));
  }
  std::exponential_distribution<double> gap(o.rate > 0 ? o.rate : 1.0);
  std::uniform_real_distribution<double> unit(0.0, 1.0);
  std::vector<TraceRequest> trace;
  double t = 0;
  for (int32_t i = 0; i < o.num_requests; ++i) {
    TraceRequest r;
    r.id = i;
    if (o.rate > 0) t += gap(rng);
    r.arrival_s = t;
    if (sharing && unit(rng) < o.shared_prefix_fraction) {
      r.prefix_group = std::uniform_int_distribution<int32_t>(0, o.num_prefixes - 1)(rng);
    }
    const int32_t fixed = bos + (r.prefix_group >= 0 ? o.prefix_len : 0);
    // Output first (it decides decode work), then the prompt's own part, each clipped to fit.
    r.max_tokens = std::min(o.output_len.Sample(rng), o.max_total_len - fixed - 1);
    const int32_t own = std::min(o.prompt_len.Sample(rng), o.max_total_len - fixed - r.max_tokens);
    if (o.bos_id >= 0) r.prompt_ids.push_back(o.bos_id);
    if (r.prefix_group >= 0) {
      const auto& p = prefixes[r.prefix_group];
      r.prompt_ids.insert(r.prompt_ids.end(), p.begin(), p.end());
    }
    // The BOS counts toward the drawn length of a prompt without a shared prefix.
    const int32_t own_tokens = r.prefix_group >= 0 ? own : std::max(1, own - bos);
    for (int32_t k = 0; k < own_tokens; ++k) r.prompt_ids.push_back(token(rng));
    trace.push_back(std::move(r));
  }
  return trace;
}

std::string TraceRequestToJson(const TraceRequest& r) {
  nlohmann::ordered_json j;
  j["id"] = r.id;
  j["arrival_s"] = std::round(r.arrival_s * 1e6) / 1e6;
  j["prompt_ids"] = r.prompt_ids;
  j["max_tokens"] = r.max_tokens;
  j["prefix_group"] = r.prefix_group;
  return j.dump();
}

absl::Status WriteTraceJsonl(const std::filesystem::path& path, const std::vector<TraceRequest>& trace) {
  std::ofstream out(path);
  if (!out) return absl::InvalidArgumentError(absl::StrCat("cannot write ", path.string()));
  for (const TraceRequest& r : trace) out << TraceRequestToJson(r) << "\n";
  out.close();
  if (!out) return absl::InternalError(absl::StrCat("writing ", path.string(), " failed"));
  return absl::OkStatus();
}

absl::StatusOr<std::vector<TraceRequest>> ReadTraceJsonl(const std::filesystem::path& path) {
  std::ifstream in(path);
  if (!in) return absl::InvalidArgumentError(absl::StrCat("cannot read the trace ", path.string()));
  std::vector<TraceRequest> trace;
  std::string line;
  for (int64_t n = 1; std::getline(in, line); ++n) {
    if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
    auto err = [&](absl::string_view what) {
      return absl::InvalidArgumentError(absl::StrCat(path.string(), " line ", n, ": ", what));
    };
    const nlohmann::json j = nlohmann::json::parse(line, nullptr, /*allow_exceptions=*/false);
    if (!j.is_object()) return err("not a JSON object");
    TraceRequest r;
    r.id = static_cast<int64_t>(trace.size());
    if (j.contains("id")) {
      if (!j["id"].is_number_integer()) return err("\"id\" must be an integer");
      r.id = j["id"].get<int64_t>();
    }
    if (!j.contains("arrival_s") || !j["arrival_s"].is_number() || j["arrival_s"].get<double>() < 0) {
      return err("\"arrival_s\" must be a number >= 0");
    }
    r.arrival_s = j["arrival_s"].get<double>();
    if (!j.contains("prompt_ids") || !j["prompt_ids"].is_array() || j["prompt_ids"].empty()) {
      return err("\"prompt_ids\" must be a non-empty list of token ids");
    }
    for (const auto& t : j["prompt_ids"]) {
      if (!t.is_number_integer() || t.get<int64_t>() < 0 || t.get<int64_t>() > INT32_MAX) {
        return err("\"prompt_ids\" must hold integers in [0, 2^31)");
      }
      r.prompt_ids.push_back(t.get<int32_t>());
    }
    if (!j.contains("max_tokens") || !j["max_tokens"].is_number_integer() || j["max_tokens"].get<int64_t>() < 1 ||
        j["max_tokens"].get<int64_t>() > INT32_MAX) {
      return err("\"max_tokens\" must be an integer >= 1");
    }
    r.max_tokens = j["max_tokens"].get<int32_t>();
    if (j.contains("prefix_group") && j["prefix_group"].is_number_integer()) {
      r.prefix_group = j["prefix_group"].get<int32_t>();
    }
    trace.push_back(std::move(r));
  }
  std::stable_sort(trace.begin(), trace.end(),
                   [](const TraceRequest& a, const TraceRequest& b) { return a.arrival_s < b.arrival_s; });
  return trace;
}

double Percentile(std::vector<double> values, double p) {
  if (values.empty()) return 0;
  std::sort(values.begin(), values.end());
  const double rank = std::ceil(p / 100.0 * static_cast<double>(values.size()));
  const size_t index = static_cast<size_t>(std::clamp(rank, 1.0, static_cast<double>(values.size()))) - 1;
  return values[index];
}

}  // namespace tailor
