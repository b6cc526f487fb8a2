# Builds each case of test/surface/hidden.cpp (targets surface_hidden_N, not
# part of the default build) and passes when every one fails to compile
# because the internal name it uses is not visible to importers.
#   cmake -DBUILD_DIR=... -DCASES=N -P check.cmake
set(failed "")
foreach(i RANGE 1 ${CASES})
  execute_process(COMMAND ${CMAKE_COMMAND} --build "${BUILD_DIR}" --target surface_hidden_${i}
    RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
  string(APPEND out "${err}")
  if(rc EQUAL 0)
    list(APPEND failed "case ${i} compiled: an internal name is visible to importers")
  elseif(NOT out MATCHES "must be imported from module 'stichotrope'|no (type|member) named")
    list(APPEND failed "case ${i} failed for another reason:\n${out}")
  else()
    string(REGEX MATCH "error: [^\n]*" first "${out}")
    message(STATUS "case ${i}: ${first}")
  endif()
endforeach()
if(failed)
  message(FATAL_ERROR "${failed}")
endif()
message(STATUS "all ${CASES} internal names are hidden from importers")
