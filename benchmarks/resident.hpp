// The resident set of this process, in KiB (from /proc/self/statm; 0 if unreadable).
#pragma once
#include <cstdio>

inline long resident_kib() {
  long pages = 0, resident = 0;
  if (std::FILE* f = std::fopen("/proc/self/statm", "r")) {
    if (std::fscanf(f, "%ld %ld", &pages, &resident) != 2) resident = 0;
    std::fclose(f);
  }
  return resident * 4;
}
