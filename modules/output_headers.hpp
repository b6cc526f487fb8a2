// The standard headers that the declarations of the output partitions
// (:files, :folded, :prometheus, :reader, :report, :trace) use: paths,
// streams, strings and vectors. Included in each one's global module
// fragment (installed beside the module sources, cmake/install.cmake).
#pragma once
#include <cstdint>
#include <filesystem>
#include <ostream>
#include <string>
#include <string_view>
#include <vector>
