// The examples' command-line options: `--name value` pairs.
#pragma once

#include <cstdlib>
#include <string_view>

namespace example {

/// The integer after `--name` on the command line, or `fallback`.
inline int option(int argc, char** argv, std::string_view name, int fallback) {
  for (int i = 1; i + 1 < argc; ++i)
    if (argv[i] == name) return std::atoi(argv[i + 1]);
  return fallback;
}

/// The text after `--name` on the command line, or `fallback`.
inline const char* option(int argc, char** argv, std::string_view name, const char* fallback) {
  for (int i = 1; i + 1 < argc; ++i)
    if (argv[i] == name) return argv[i + 1];
  return fallback;
}

} // namespace example
