# Installs the built library into a scratch prefix, builds test/consumer
# against it with find_package, and runs the consumer.
file(REMOVE_RECURSE "${WORK_DIR}")
set(prefix "${WORK_DIR}/prefix")
function(run)
  execute_process(COMMAND ${ARGN} RESULT_VARIABLE rc)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "failed (${rc}): ${ARGN}")
  endif()
endfunction()
run(${CMAKE_COMMAND} --install "${BUILD_DIR}" --prefix "${prefix}")
# The interface partitions are installed; :core's internal partition, which
# only the library's own sources import, is not (docs/architecture.md): the
# consumers below build without it.
file(GLOB_RECURSE installed_core "${prefix}/*/core.cppm")
file(GLOB_RECURSE installed_internal "${prefix}/*/core_internal.cppm")
if(NOT installed_core OR installed_internal)
  message(FATAL_ERROR "installed: core.cppm '${installed_core}', core_internal.cppm '${installed_internal}' "
                      "(expected the first and not the second)")
endif()
run(${CMAKE_COMMAND} -S "${SOURCE_DIR}" -B "${WORK_DIR}/build" -G Ninja
    "-DCMAKE_MAKE_PROGRAM=${MAKE_PROGRAM}"
    "-DCMAKE_CXX_COMPILER=${CXX_COMPILER}"
    "-DCMAKE_CXX_COMPILER_CLANG_SCAN_DEPS=${SCAN_DEPS}"
    "-DCMAKE_PREFIX_PATH=${prefix}"
    "-DREQUIRE_ASIO=${REQUIRE_ASIO}"
    "-DREQUIRE_BOOST_ASIO=${REQUIRE_BOOST_ASIO}"
    "-DREQUIRE_PROMETHEUS=${REQUIRE_PROMETHEUS}"
    "-DREQUIRE_OTEL=${REQUIRE_OTEL}")
run(${CMAKE_COMMAND} --build "${WORK_DIR}/build")
run("${WORK_DIR}/build/consumer")
if(REQUIRE_ASIO)
  run("${WORK_DIR}/build/consumer_asio")
endif()
if(REQUIRE_BOOST_ASIO)
  run("${WORK_DIR}/build/consumer_boost_asio")
endif()
if(REQUIRE_PROMETHEUS)
  run("${WORK_DIR}/build/consumer_http")
endif()
if(REQUIRE_OTEL)
  run("${WORK_DIR}/build/consumer_otel")
endif()
