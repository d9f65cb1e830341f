// A -ols=2 program against the same shape compiled -ols=1, on an idle machine and with one core
// taken by another busy process, for several thread-pool spin budgets.
//   build/contention_bench --ols1 DIR --ols2 DIR [--spec NAME] [--seconds S] [--spin-us 0,20,50,200]
//                          [--json FILE]
// DIR are two packages of one model whose specialization NAME (e.g. b1_s1_c256; default: the
// first one both hold) differs only in -ols. For each spin budget, each package is opened with
// that budget and timed in turns (ols1, ols2, ols1, ...) for S seconds idle, then S seconds while
// a child process spins on one core (started here, killed when the phase ends, and bounded by
// an alarm in case this process dies first). Reported per phase: the median seconds per step of
// each package, their ratio ols2/ols1, and how many of the ols2 pool's jobs ran on the calling
// thread alone (the fallback under contention). The target: contended ratio <= 1.3,
// idle ratio as before (ols2 faster than ols1 where the op splits pay).
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <string>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "engine/runtime.h"
#include "nlohmann/json.hpp"

namespace tailor::bench {
namespace {

using Clock = std::chrono::steady_clock;

double Median(std::vector<double> v) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

// A child process that spins until killed, or for at most `max_seconds` (its own alarm).
pid_t StartHog(int max_seconds) {
  const pid_t pid = fork();
  if (pid == 0) {
    alarm(static_cast<unsigned>(max_seconds));
    volatile uint64_t x = 0;
    while (true) x = x * 6364136223846793005ull + 1;
  }
  return pid;
}

void StopHog(pid_t pid) {
  if (pid <= 0) return;
  kill(pid, SIGKILL);
  waitpid(pid, nullptr, 0);
}

int FindSpec(const Runtime& rt, const std::string& name) {
  for (size_t i = 0; i < rt.specializations().size(); ++i) {
    if (rt.specializations()[i].Name() == name) return static_cast<int>(i);
  }
  return -1;
}

struct Phase {
  double ols1_s = 0, ols2_s = 0;
  int64_t jobs = 0, solo_jobs = 0, unhelped = 0, slow = 0;
  int steps = 0;
};

// Times both runtimes in turns for `seconds`; step medians and the ols2 pool's job counts.
absl::StatusOr<Phase> TimePhase(Runtime& a, const StepPlan& pa, Runtime& b, const StepPlan& pb, double seconds) {
  std::vector<double> ta, tb;
  const ThreadPoolStats before = b.thread_stats();
  const auto end = Clock::now() + std::chrono::duration<double>(seconds);
  while (Clock::now() < end || ta.size() < 5) {
    for (int k = 0; k < 2; ++k) {
      Runtime& rt = k == 0 ? a : b;
      const auto t0 = Clock::now();
      auto out = rt.Execute(k == 0 ? pa : pb);
      if (!out.ok()) return out.status();
      (k == 0 ? ta : tb).push_back(std::chrono::duration<double>(Clock::now() - t0).count());
    }
  }
  const ThreadPoolStats after = b.thread_stats();
  Phase p;
  p.ols1_s = Median(ta);
  p.ols2_s = Median(tb);
  p.jobs = after.jobs - before.jobs;
  p.solo_jobs = after.solo_jobs - before.solo_jobs;
  p.unhelped = after.unhelped_jobs - before.unhelped_jobs;
  p.slow = after.slow_waits - before.slow_waits;
  p.steps = static_cast<int>(ta.size());
  return p;
}

int Main(int argc, char** argv) {
  std::string dir1, dir2, spec_name, json_path;
  double seconds = 3;
  std::vector<int> spins = {0, 20, 50, 200};
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string a = argv[i], v = argv[i + 1];
    if (a == "--ols1") dir1 = v;
    else if (a == "--ols2") dir2 = v;
    else if (a == "--spec") spec_name = v;
    else if (a == "--seconds") seconds = std::max(0.2, std::atof(v.c_str()));
    else if (a == "--json") json_path = v;
    else if (a == "--spin-us") {
      spins.clear();
      for (absl::string_view s : absl::StrSplit(v, ',')) {
        int us;
        if (absl::SimpleAtoi(s, &us) && us >= 0) spins.push_back(us);
      }
    }
  }
  if (dir1.empty() || dir2.empty() || spins.empty()) {
    std::fprintf(stderr,
                 "usage: contention_bench --ols1 DIR --ols2 DIR [--spec NAME] [--seconds S] [--spin-us 0,20,50,200] "
                 "[--json FILE]\n");
    return 2;
  }
  nlohmann::json out = nlohmann::json::array();
  std::printf("%-8s %-6s %10s %10s %8s %14s %14s %14s\n", "spin_us", "load", "ols1 ms", "ols2 ms", "ols2/1", "solo jobs",
              "unhelped", "slow waits");
  for (int spin : spins) {
    RuntimeOptions o1, o2;
    o1.threads.spin_us = o2.threads.spin_us = spin;
    auto r1 = Runtime::Open(dir1, o1);
    auto r2 = Runtime::Open(dir2, o2);
    if (!r1.ok() || !r2.ok()) {
      std::fprintf(stderr, "contention_bench: %s\n", std::string((r1.ok() ? r2 : r1).status().message()).c_str());
      return 2;
    }
    if (spec_name.empty()) spec_name = (*r2)->specializations()[0].Name();
    const int s1 = FindSpec(**r1, spec_name), s2 = FindSpec(**r2, spec_name);
    if (s1 < 0 || s2 < 0) {
      std::fprintf(stderr, "contention_bench: specialization %s is not in both packages\n", spec_name.c_str());
      return 2;
    }
    const SpecShape& shape = (*r1)->specializations()[s1].shape;
    auto st1 = MakeSyntheticStep(**r1, s1, shape.ctx_len / 2);
    auto st2 = MakeSyntheticStep(**r2, s2, shape.ctx_len / 2);
    if (!st1.ok() || !st2.ok()) {
      std::fprintf(stderr, "contention_bench: %s\n", std::string((st1.ok() ? st2 : st1).status().message()).c_str());
      return 2;
    }
    for (int loaded = 0; loaded < 2; ++loaded) {
      const pid_t hog = loaded ? StartHog(static_cast<int>(seconds) + 5) : 0;
      auto phase = TimePhase(**r1, (*st1)->plan, **r2, (*st2)->plan, seconds);
      StopHog(hog);
      if (!phase.ok()) {
        std::fprintf(stderr, "contention_bench: %s\n", std::string(phase.status().message()).c_str());
        return 1;
      }
      const double ratio = phase->ols2_s / phase->ols1_s;
      const auto share = [&](int64_t n) {
        return absl::StrFormat("%.1f%%", phase->jobs > 0 ? 100.0 * static_cast<double>(n) / phase->jobs : 0.0);
      };
      std::printf("%-8d %-6s %10.3f %10.3f %8.2f %14s %14s %14s\n", spin, loaded ? "busy" : "idle",
                  phase->ols1_s * 1e3, phase->ols2_s * 1e3, ratio, share(phase->solo_jobs).c_str(),
                  share(phase->unhelped).c_str(), share(phase->slow).c_str());
      std::fflush(stdout);
      out.push_back({{"spec", spec_name}, {"spin_us", spin}, {"load", loaded ? "busy" : "idle"},
                     {"ols1_seconds", phase->ols1_s}, {"ols2_seconds", phase->ols2_s}, {"ratio", ratio},
                     {"steps", phase->steps}, {"pool_jobs", phase->jobs}, {"solo_jobs", phase->solo_jobs},
                     {"unhelped_jobs", phase->unhelped}, {"slow_waits", phase->slow}});
    }
  }
  if (!json_path.empty()) std::ofstream(json_path) << out.dump(2) << "\n";
  return 0;
}

}  // namespace
}  // namespace tailor::bench

int main(int argc, char** argv) { return tailor::bench::Main(argc, argv); }
