// stichotrope: read, convert, compare and merge results files.
//
//   stichotrope table   FILE                      print the results table
//   stichotrope csv     FILE [--repetitions] [-o OUT]
//                       convert to CSV (the blocks; with --repetitions,
//                       Profiler::repeat's statistics, one row each)
//   stichotrope folded  FILE [--active] [-o OUT]  folded stacks for flame graphs
//   stichotrope compare BASE NEW [--threshold PCT]
//                       per block: hits, mean, p99, active, suspended and their
//                       change; exit status 1 when mean or p99 grew by more than
//                       PCT percent (default 10), so CI can gate on it
//   stichotrope merge   FILE... -o OUT            add up results of several processes
//   stichotrope compare-repeat BASE NEW [--threshold PCT] [--confidence C]
//                       per repetition (Profiler::repeat) in both, by track and
//                       name: faster, slower or indistinguishable at confidence
//                       C (default 0.95; Mann-Whitney U), the shift and its
//                       interval; exit status 1 when one is slower by more
//                       than PCT percent (default 10)
//
// Exit status: 0 success, 1 regression (compare), 2 bad usage or unreadable input.
#include <cstdlib>
#include <filesystem>
#include <iostream>
#include <optional>
#include <string>
#include <string_view>
#include <vector>
import stichotrope;

namespace {

int usage(const char* why) {
  std::cerr << "stichotrope: " << why << "\n"
            << "usage: stichotrope table FILE\n"
               "       stichotrope csv FILE [--repetitions] [-o OUT]\n"
               "       stichotrope folded FILE [--active] [-o OUT]\n"
               "       stichotrope compare BASE NEW [--threshold PCT]\n"
               "       stichotrope merge FILE... -o OUT\n"
               "       stichotrope compare-repeat BASE NEW [--threshold PCT] [--confidence C]\n";
  return 2;
}

struct args {
  std::vector<std::string> files;
  std::optional<std::string> out;
  double threshold = 10.0;
  double confidence = 0.95;
  bool active = false;
  bool repetitions = false;
};

std::optional<args> parse(int argc, char** argv, std::string& error) {
  args a;
  for (int i = 2; i < argc; ++i) {
    const std::string_view arg = argv[i];
    if (arg == "-o" || arg == "--output") {
      if (i + 1 >= argc) return error = "-o needs a file name", std::nullopt;
      a.out = argv[++i];
    } else if (arg == "--threshold") {
      if (i + 1 >= argc) return error = "--threshold needs a percentage", std::nullopt;
      char* end = nullptr;
      a.threshold = std::strtod(argv[++i], &end);
      if (end == argv[i] || *end != '\0' || a.threshold < 0)
        return error = "--threshold needs a percentage >= 0", std::nullopt;
    } else if (arg == "--confidence") {
      if (i + 1 >= argc) return error = "--confidence needs a level", std::nullopt;
      char* end = nullptr;
      a.confidence = std::strtod(argv[++i], &end);
      if (end == argv[i] || *end != '\0' || !(a.confidence > 0.5 && a.confidence < 1))
        return error = "--confidence needs a level between 0.5 and 1 (e.g. 0.95)", std::nullopt;
    } else if (arg == "--active") {
      a.active = true;
    } else if (arg == "--repetitions") {
      a.repetitions = true;
    } else if (arg.starts_with("-")) {
      return error = "unknown option " + std::string(arg), std::nullopt;
    } else {
      a.files.emplace_back(arg);
    }
  }
  return a;
}

std::optional<stichotrope::ProfilerResults> load(const std::string& file) {
  auto r = stichotrope::load_results_json(file);
  if (!r) {
    std::cerr << "stichotrope: " << r.error().message << '\n';
    return std::nullopt;
  }
  return std::move(*r);
}

int emit(const std::optional<std::string>& out, const std::string& text) {
  if (!out) {
    std::cout << text;
    return 0;
  }
  if (auto w = stichotrope::write_file(*out, text); !w) {
    std::cerr << "stichotrope: " << w.error().message << '\n';
    return 2;
  }
  return 0;
}

} // namespace

int main(int argc, char** argv) {
  if (argc < 2) return usage("no command");
  const std::string_view command = argv[1];
  std::string error;
  const auto a = parse(argc, argv, error);
  if (!a) return usage(error.c_str());

  if (command == "table" || command == "csv" || command == "folded") {
    if (a->files.size() != 1) return usage("expected one results file");
    const auto r = load(a->files[0]);
    if (!r) return 2;
    if (command == "table") return emit(a->out, stichotrope::to_table(*r));
    if (command == "csv")
      return emit(a->out, a->repetitions ? stichotrope::to_repetitions_csv(*r) : stichotrope::to_csv(*r));
    return emit(a->out, stichotrope::to_folded(*r, a->active ? stichotrope::fold_weight::active_time
                                                             : stichotrope::fold_weight::self_time));
  }
  if (command == "compare") {
    if (a->files.size() != 2) return usage("compare expects BASE and NEW");
    const auto base = load(a->files[0]);
    const auto now = load(a->files[1]);
    if (!base || !now) return 2;
    const auto c = stichotrope::compare_results(*base, *now, a->threshold);
    if (emit(a->out, stichotrope::to_text(c)) != 0) return 2;
    return c.any_regression() ? 1 : 0;
  }
  if (command == "compare-repeat") {
    if (a->files.size() != 2) return usage("compare-repeat expects BASE and NEW");
    const auto base = load(a->files[0]);
    const auto now = load(a->files[1]);
    if (!base || !now) return 2;
    // The statistics are computed again from the runs: a file's figures
    // need not be trusted, only its samples.
    const auto again = [](const stichotrope::RepetitionResults& r) {
      auto s = stichotrope::summarize_repetitions(r.samples_ns);
      s.batch = r.batch; // what a sample is: a run of that many calls
      s.name = r.name;
      s.track = r.track;
      return s;
    };
    std::string text;
    bool compared = false, regression = false;
    for (const auto& n : now->repetitions) {
      const stichotrope::RepetitionResults* b = nullptr;
      for (const auto& r : base->repetitions)
        if (r.track == n.track && r.name == n.name) b = &r; // the last one of that name
      if (b == nullptr) {
        text += n.name + " (track " + std::to_string(n.track) + "): not in " + a->files[0] + "\n";
        continue;
      }
      const auto c = stichotrope::compare_repetitions(again(*b), again(n), a->confidence);
      compared = true;
      text += stichotrope::to_text(c);
      if (c.regression(a->threshold / 100)) {
        regression = true;
        text += "  REGRESSION: slower by more than " + std::to_string(a->threshold) + " %\n";
      }
    }
    if (!compared) {
      std::cerr << "stichotrope: no repetition of " << a->files[1] << " is in " << a->files[0] << '\n' << text;
      return 2;
    }
    if (emit(a->out, text) != 0) return 2;
    return regression ? 1 : 0;
  }
  if (command == "merge") {
    if (a->files.empty()) return usage("merge expects at least one file");
    std::vector<stichotrope::ProfilerResults> inputs;
    for (const auto& f : a->files) {
      auto r = load(f);
      if (!r) return 2;
      inputs.push_back(std::move(*r));
    }
    return emit(a->out, stichotrope::to_json(stichotrope::merge_results(inputs)));
  }
  return usage(("unknown command " + std::string(command)).c_str());
}
