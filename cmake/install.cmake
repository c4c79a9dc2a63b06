# `cmake --install` exports the package: find_package(bertrazor) then link bertrazor::bertrazor.
include(GNUInstallDirs)
include(CMakePackageConfigHelpers)

# bertrazor::omp_defaults is one object file (tools/omp_defaults.cpp) an executable links.
set_target_properties(bertrazor_omp_defaults PROPERTIES EXPORT_NAME omp_defaults)
install(TARGETS bertrazor bertrazor_cli bertrazor_omp_defaults EXPORT bertrazorTargets
  ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR}
  OBJECTS DESTINATION ${CMAKE_INSTALL_LIBDIR}/bertrazor
  RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR})
foreach(layer core kernels models train)
  install(DIRECTORY ${layer}/ DESTINATION ${CMAKE_INSTALL_INCLUDEDIR}/bertrazor/${layer}
    FILES_MATCHING PATTERN "*.h" PATTERN "*.cuh" PATTERN "*.inc")
endforeach()
install(EXPORT bertrazorTargets NAMESPACE bertrazor::
  DESTINATION ${CMAKE_INSTALL_LIBDIR}/cmake/bertrazor)
configure_package_config_file(cmake/bertrazorConfig.cmake.in
  ${CMAKE_CURRENT_BINARY_DIR}/bertrazorConfig.cmake
  INSTALL_DESTINATION ${CMAKE_INSTALL_LIBDIR}/cmake/bertrazor)
write_basic_package_version_file(${CMAKE_CURRENT_BINARY_DIR}/bertrazorConfigVersion.cmake
  COMPATIBILITY SameMinorVersion)
install(FILES ${CMAKE_CURRENT_BINARY_DIR}/bertrazorConfig.cmake
  ${CMAKE_CURRENT_BINARY_DIR}/bertrazorConfigVersion.cmake
  DESTINATION ${CMAKE_INSTALL_LIBDIR}/cmake/bertrazor)
