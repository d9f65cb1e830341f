#include "api/flags.h"

#include <cerrno>
#include <cmath>
#include <algorithm>
#include <cstdlib>
#include <iostream>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace tailor {

std::optional<std::string> ParsedFlags::Get(const std::string& name) const {
  auto it = values_.find(name);
  if (it == values_.end()) return std::nullopt;
  return it->second;
}

std::string ParsedFlags::Spelling(const std::string& name) const {
  auto it = spellings_.find(name);
  return it == spellings_.end() ? "--" + name : it->second;
}

absl::StatusOr<std::string> ParsedFlags::GetString(const std::string& name,
                                                   const std::string& fallback) const {
  return Get(name).value_or(fallback);
}

absl::StatusOr<int64_t> ParsedFlags::GetInt(const std::string& name, int64_t fallback, int64_t min,
                                            int64_t max) const {
  auto v = Get(name);
  if (!v) return fallback;
  errno = 0;
  char* end = nullptr;
  long long x = std::strtoll(v->c_str(), &end, 10);
  if (v->empty() || *end != '\0' || errno != 0 || x < min || x > max) {
    return absl::InvalidArgumentError(absl::StrCat(Spelling(name), ": '", *v,
                                                   "' is not an integer in [", min, ", ", max, "]"));
  }
  return x;
}

absl::StatusOr<double> ParsedFlags::GetDouble(const std::string& name, double fallback, double min,
                                              double max) const {
  auto v = Get(name);
  if (!v) return fallback;
  errno = 0;
  char* end = nullptr;
  double x = std::strtod(v->c_str(), &end);
  if (v->empty() || *end != '\0' || errno != 0 || !std::isfinite(x) || x < min || x > max) {
    return absl::InvalidArgumentError(
        absl::StrCat(Spelling(name), ": '", *v, "' is not a number in [", min, ", ", max, "]"));
  }
  return x;
}

absl::StatusOr<ParsedFlags> ParseFlags(const std::vector<FlagSpec>& specs,
                                       const std::vector<std::string>& args) {
  auto find = [&](const std::string& n) -> const FlagSpec* {
    for (const auto& s : specs) {
      if (s.name == n) return &s;
      for (const auto& a : s.aliases) {
        if (a == n) return &s;
      }
    }
    return nullptr;
  };
  ParsedFlags out;
  for (size_t i = 0; i < args.size(); ++i) {
    const std::string& a = args[i];
    if (a.size() < 2 || a[0] != '-' || a == "--") {
      out.positional_.push_back(a);
      continue;
    }
    std::string body = a.substr(a[1] == '-' ? 2 : 1);
    std::string typed = a;
    std::optional<std::string> value;
    if (auto eq = body.find('='); eq != std::string::npos) {
      value = body.substr(eq + 1);
      body = body.substr(0, eq);
      typed = a.substr(0, a.find('='));
    }
    const FlagSpec* spec = find(body);
    if (spec == nullptr) {
      std::vector<std::string> known;
      for (const auto& s : specs) known.push_back("--" + s.name);
      // `typed`, not `a`: never echo a value (an --api-key=... mistyped as --apikey=... stays unsaid).
      return absl::InvalidArgumentError(absl::StrCat("unknown option '", typed, "' (known: ",
                                                     absl::StrJoin(known, " "), ")"));
    }
    if (spec->takes_value) {
      if (!value) {
        if (i + 1 >= args.size()) {
          return absl::InvalidArgumentError(absl::StrCat("option '", a, "' needs a value"));
        }
        value = args[++i];
      }
    } else if (value) {
      return absl::InvalidArgumentError(absl::StrCat("option '", a, "' takes no value"));
    } else {
      value = "true";
    }
    if (out.values_.count(spec->name)) {
      return absl::InvalidArgumentError(absl::StrCat("option ", typed, " given twice (as ",
                                                     out.spellings_[spec->name], " before)"));
    }
    out.values_[spec->name] = *value;
    out.spellings_[spec->name] = typed;
  }
  return out;
}

bool PrintHelpIfAsked(const std::vector<std::string>& args, const std::string& usage,
                      const std::vector<FlagSpec>& specs) {
  for (size_t i = 0; i < args.size(); ++i) {
    const std::string& a = args[i];
    if (a == "--help" || a == "-h") {
      std::cout << usage << FlagsHelp(specs);
      std::cout.flush();
      return true;
    }
    if (a.size() < 2 || a[0] != '-' || a.find('=') != std::string::npos) continue;
    const std::string body = a.substr(a[1] == '-' ? 2 : 1);
    for (const FlagSpec& s : specs) {
      const bool named = s.name == body || std::find(s.aliases.begin(), s.aliases.end(), body) != s.aliases.end();
      if (named && s.takes_value) ++i;  // the next argument is this flag's value
    }
  }
  return false;
}

std::string FlagsHelp(const std::vector<FlagSpec>& specs) {
  std::string out;
  for (const auto& s : specs) {
    std::string left = absl::StrCat("  --", s.name, s.takes_value ? " VALUE" : "");
    if (left.size() < 26) left.resize(26, ' ');
    absl::StrAppend(&out, left, " ", s.help, "\n");
  }
  return out;
}

}  // namespace tailor
