# Install rules: the headers, the test host library, cwsgi-serve, a pkg-config file for apps
# (cwsgi.pc: headers only, apps link nothing of the server; its exports_map variable names the
# export map) and one for the test host, the export map (share/cwsgi/app-exports.map), and a
# CMake package (find_package(cwsgi) gives cwsgi::headers, cwsgi::testhost, cwsgi_add_app and
# cwsgi_add_app_test). cwsgi-conformance installs itself (conformance/CMakeLists.txt).
# README.md ("Installing") lists the result; tests/install/run.sh checks it.
include(CMakePackageConfigHelpers)
set(CWSGI_INSTALL_EXPORTS_MAP ${CMAKE_INSTALL_DATADIR}/cwsgi/app-exports.map)

install(FILES include/cwsgi.h include/cwsgi.hpp DESTINATION ${CMAKE_INSTALL_INCLUDEDIR})
install(FILES include/cwsgi/testhost.h DESTINATION ${CMAKE_INSTALL_INCLUDEDIR}/cwsgi)
install(TARGETS cwsgi_headers cwsgi_testhost EXPORT cwsgiTargets
    LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR}
    ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR}
    RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR})
install(TARGETS cwsgi-serve RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR})
install(EXPORT cwsgiTargets NAMESPACE cwsgi:: DESTINATION ${CMAKE_INSTALL_LIBDIR}/cmake/cwsgi)

configure_package_config_file(cmake/cwsgiConfig.cmake.in
    ${CMAKE_CURRENT_BINARY_DIR}/cwsgiConfig.cmake
    INSTALL_DESTINATION ${CMAKE_INSTALL_LIBDIR}/cmake/cwsgi
    PATH_VARS CWSGI_INSTALL_EXPORTS_MAP)
write_basic_package_version_file(${CMAKE_CURRENT_BINARY_DIR}/cwsgiConfigVersion.cmake
    VERSION ${PROJECT_VERSION} COMPATIBILITY SameMajorVersion)
install(FILES ${CMAKE_CURRENT_BINARY_DIR}/cwsgiConfig.cmake ${CMAKE_CURRENT_BINARY_DIR}/cwsgiConfigVersion.cmake
              cmake/CwsgiApp.cmake
    DESTINATION ${CMAKE_INSTALL_LIBDIR}/cmake/cwsgi)

# Relocatable .pc files: the prefix is found relative to the .pc file itself, so an install
# with --prefix (or DESTDIR) needs no rebuild.
file(RELATIVE_PATH CWSGI_PC_TO_PREFIX "/p/${CMAKE_INSTALL_LIBDIR}/pkgconfig" "/p")
string(REGEX REPLACE "/$" "" CWSGI_PC_TO_PREFIX "${CWSGI_PC_TO_PREFIX}")
configure_file(cmake/cwsgi.pc.in ${CMAKE_CURRENT_BINARY_DIR}/cwsgi.pc @ONLY)
configure_file(cmake/cwsgi-testhost.pc.in ${CMAKE_CURRENT_BINARY_DIR}/cwsgi-testhost.pc @ONLY)
install(FILES ${CMAKE_CURRENT_BINARY_DIR}/cwsgi.pc ${CMAKE_CURRENT_BINARY_DIR}/cwsgi-testhost.pc
    DESTINATION ${CMAKE_INSTALL_LIBDIR}/pkgconfig)
install(FILES cmake/app-exports.map DESTINATION ${CMAKE_INSTALL_DATADIR}/cwsgi)
