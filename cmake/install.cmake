# All install logic: the library, its module sources, the exported targets
# (namespace stichotrope::) and the package config and version files.
include(CMakePackageConfigHelpers)

set(STICHOTROPE_CONFIG_DIR ${CMAKE_INSTALL_LIBDIR}/cmake/stichotrope)

install(TARGETS stichotrope EXPORT stichotrope-targets
  ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR}
  LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR}
  FILE_SET CXX_MODULES DESTINATION ${CMAKE_INSTALL_INCLUDEDIR}/stichotrope/modules)
# The one header the module sources include (by its path beside them).
install(FILES ${PROJECT_SOURCE_DIR}/modules/output_headers.hpp DESTINATION ${CMAKE_INSTALL_INCLUDEDIR}/stichotrope/modules)
if(STICHOTROPE_HAS_ASIO)
  install(FILES ${PROJECT_SOURCE_DIR}/include/stichotrope/asio.hpp DESTINATION ${CMAKE_INSTALL_INCLUDEDIR}/stichotrope)
endif()
if(STICHOTROPE_HAS_BOOST_ASIO)
  install(FILES ${PROJECT_SOURCE_DIR}/include/stichotrope/boost_asio.hpp
    DESTINATION ${CMAKE_INSTALL_INCLUDEDIR}/stichotrope)
endif()
if(STICHOTROPE_HAS_ASIO OR STICHOTROPE_HAS_BOOST_ASIO)
  install(FILES ${PROJECT_SOURCE_DIR}/include/stichotrope/detail/asio_common.hpp
    ${PROJECT_SOURCE_DIR}/include/stichotrope/detail/asio_flows.hpp
    DESTINATION ${CMAKE_INSTALL_INCLUDEDIR}/stichotrope/detail)
endif()
if(STICHOTROPE_HAS_HTTP)
  install(TARGETS stichotrope_http EXPORT stichotrope-targets
    OBJECTS DESTINATION ${CMAKE_INSTALL_LIBDIR}/stichotrope-objects)
endif()
if(STICHOTROPE_HAS_OTEL)
  install(TARGETS stichotrope_otel EXPORT stichotrope-targets
    OBJECTS DESTINATION ${CMAKE_INSTALL_LIBDIR}/stichotrope-objects)
endif()
install(TARGETS stichotrope_cli RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR})
install(EXPORT stichotrope-targets
  NAMESPACE stichotrope::
  DESTINATION ${STICHOTROPE_CONFIG_DIR}
  CXX_MODULES_DIRECTORY cxx-modules)

configure_package_config_file(${CMAKE_CURRENT_LIST_DIR}/stichotrope-config.cmake.in
  ${CMAKE_CURRENT_BINARY_DIR}/stichotrope-config.cmake
  INSTALL_DESTINATION ${STICHOTROPE_CONFIG_DIR})
write_basic_package_version_file(${CMAKE_CURRENT_BINARY_DIR}/stichotrope-config-version.cmake
  COMPATIBILITY SameMinorVersion)
install(FILES
  ${CMAKE_CURRENT_BINARY_DIR}/stichotrope-config.cmake
  ${CMAKE_CURRENT_BINARY_DIR}/stichotrope-config-version.cmake
  DESTINATION ${STICHOTROPE_CONFIG_DIR})
