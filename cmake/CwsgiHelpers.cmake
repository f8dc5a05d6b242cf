# Helpers shared by every CMakeLists.txt of the project.

# cwsgi_add_app and cwsgi_add_app_test, the same functions the installed package gives app
# authors (cmake/CwsgiApp.cmake). In this tree, apps go to ${CMAKE_BINARY_DIR}/apps unless they
# say OUTPUT_DIR, and the export map is read from the source tree.
set(CWSGI_APP_EXPORTS_MAP ${CMAKE_CURRENT_LIST_DIR}/app-exports.map)
set(CWSGI_APP_OUTPUT_DIR ${CMAKE_BINARY_DIR}/apps)
include(${CMAKE_CURRENT_LIST_DIR}/CwsgiApp.cmake)

# cwsgi_add_test(NAME SOURCES src... [LIBS lib...] [ENV VAR=value...] [DEPENDS target...])
# One CMocka binary per test file, run by CTest in its own process, registered with
# cwsgi_register_test (cmake/CwsgiTests.cmake): NAME must be a line of tests/tests.list, which
# gives its timeout.
function(cwsgi_add_test name)
    cmake_parse_arguments(T "" "" "SOURCES;LIBS;ENV;DEPENDS" ${ARGN})
    add_executable(${name} ${T_SOURCES})
    target_link_libraries(${name} PRIVATE ${T_LIBS} PkgConfig::CMOCKA)
    target_include_directories(${name} PRIVATE ${CMAKE_SOURCE_DIR}/lib ${CMAKE_SOURCE_DIR}/tests)
    if(T_DEPENDS)
        add_dependencies(${name} ${T_DEPENDS})
    endif()
    cwsgi_register_test(${name} COMMAND ${name}
        ENV CWSGI_BUILD_DIR=${CMAKE_BINARY_DIR} CWSGI_SOURCE_DIR=${CMAKE_SOURCE_DIR} ${T_ENV})
endfunction()
