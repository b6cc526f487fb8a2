# Stops at configure time, with what to do, when this toolchain cannot build
# C++20 modules (needs Ninja >= 1.11 and Clang >= 17; CMake >= 3.28 is the
# project's cmake_minimum_required).
if(NOT CMAKE_GENERATOR MATCHES "Ninja")
  message(FATAL_ERROR "stichotrope's C++20 modules need the Ninja generator (found '${CMAKE_GENERATOR}'). "
                      "Run ./setup.sh, then use a preset: cmake --workflow --preset test")
endif()
if(CMAKE_MAKE_PROGRAM)
  execute_process(COMMAND "${CMAKE_MAKE_PROGRAM}" --version OUTPUT_VARIABLE _ninja_version
                  OUTPUT_STRIP_TRAILING_WHITESPACE ERROR_QUIET)
  if(_ninja_version AND _ninja_version VERSION_LESS 1.11)
    message(FATAL_ERROR "stichotrope needs Ninja >= 1.11 for C++20 modules (found ${_ninja_version}). Run ./setup.sh")
  endif()
endif()
if(NOT CMAKE_CXX_COMPILER_ID STREQUAL "Clang" OR CMAKE_CXX_COMPILER_VERSION VERSION_LESS 17)
  message(FATAL_ERROR "stichotrope needs Clang >= 17 to build C++20 modules (found ${CMAKE_CXX_COMPILER_ID} "
                      "${CMAKE_CXX_COMPILER_VERSION}). Run ./setup.sh and configure with a preset, "
                      "which selects clang++-19: cmake --workflow --preset test")
endif()
if(NOT CMAKE_CXX_COMPILER_CLANG_SCAN_DEPS)
  message(FATAL_ERROR "clang-scan-deps was not found; C++20 modules need it. Run ./setup.sh (clang-tools-19).")
endif()
