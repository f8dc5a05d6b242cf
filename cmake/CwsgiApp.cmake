# cwsgi_add_app and cwsgi_add_app_test: how a CWSGI app and its in-process test are built with
# CMake. The same file serves this project's sample apps (included by CwsgiHelpers.cmake) and an
# app author's project (included by the installed package, find_package(cwsgi)), so the apps of
# this tree are built exactly the way the guides tell a newcomer to build theirs.
#
# What it needs from its includer: the target cwsgi::headers, and the linker version script that
# keeps cwsgi_app_entry the only export, as the CWSGI_APP_EXPORTS_MAP property of cwsgi::headers
# or, failing that, the CWSGI_APP_EXPORTS_MAP variable. cwsgi_add_app_test also needs
# cwsgi::testhost. CWSGI_APP_OUTPUT_DIR, when set, is where apps go by default.
include_guard(GLOBAL)

# cwsgi_add_app(NAME src... [LIBS lib...] [OUTPUT_DIR dir])   (or SOURCES src... anywhere)
# Builds the app NAME.so: a MODULE library without the "lib" prefix, linked to cwsgi::headers
# (include directories only: an app links nothing of the server) and to LIBS, with hidden
# visibility, -Wl,--no-undefined, and the version script that makes cwsgi_app_entry its only
# exported symbol (ABI-LOAD-1). C sources get C11 and C++ sources C++20 (what cwsgi.hpp needs)
# unless the project set CMAKE_C_STANDARD or CMAKE_CXX_STANDARD itself.
function(cwsgi_add_app name)
    cmake_parse_arguments(PARSE_ARGV 1 A "" "OUTPUT_DIR" "SOURCES;LIBS")
    set(sources ${A_SOURCES} ${A_UNPARSED_ARGUMENTS})
    if(NOT sources)
        message(FATAL_ERROR "cwsgi_add_app(${name}): no source files")
    endif()
    get_target_property(map cwsgi::headers CWSGI_APP_EXPORTS_MAP)
    if(NOT map)
        set(map "${CWSGI_APP_EXPORTS_MAP}")
    endif()
    if(NOT map OR NOT EXISTS "${map}")
        message(FATAL_ERROR "cwsgi_add_app(${name}): the export map app-exports.map was not found ('${map}')")
    endif()

    add_library(${name} MODULE ${sources})
    target_link_libraries(${name} PRIVATE cwsgi::headers ${A_LIBS})
    set_target_properties(${name} PROPERTIES
        PREFIX ""
        C_VISIBILITY_PRESET hidden
        CXX_VISIBILITY_PRESET hidden
        VISIBILITY_INLINES_HIDDEN ON)
    if(NOT DEFINED CMAKE_C_STANDARD)
        set_target_properties(${name} PROPERTIES C_STANDARD 11 C_STANDARD_REQUIRED ON)
    endif()
    if(NOT DEFINED CMAKE_CXX_STANDARD)
        set_target_properties(${name} PROPERTIES CXX_STANDARD 20 CXX_STANDARD_REQUIRED ON)
    endif()
    if(A_OUTPUT_DIR)
        set_target_properties(${name} PROPERTIES LIBRARY_OUTPUT_DIRECTORY "${A_OUTPUT_DIR}")
    elseif(CWSGI_APP_OUTPUT_DIR)
        set_target_properties(${name} PROPERTIES LIBRARY_OUTPUT_DIRECTORY "${CWSGI_APP_OUTPUT_DIR}")
    endif()
    # Apps must not depend on the server: an unresolved symbol fails at link time, not at load.
    # -fvisibility=hidden is not enough for C++ (the standard library's inline statics stay
    # exported), hence the version script.
    target_link_options(${name} PRIVATE -Wl,--no-undefined "-Wl,--version-script=${map}")
    set_property(TARGET ${name} APPEND PROPERTY LINK_DEPENDS "${map}")
endfunction()

# cwsgi_add_app_test(NAME APP src... [ENV VAR=value...] [ARGS arg...])
# Builds the executable NAME from the sources, linked to the in-process test host
# (cwsgi::testhost, include/cwsgi/testhost.h), and registers it as the CTest test NAME, run as
# `NAME <path of APP.so> ARGS...` with the variables of ENV set (how a test gives the app the
# configuration that `cwsgi-serve -e KEY=VALUE` gives it in production). APP is a target made by
# cwsgi_add_app. The project calls enable_testing() (or include(CTest)) for ctest to see it.
function(cwsgi_add_app_test name app)
    cmake_parse_arguments(PARSE_ARGV 2 T "" "" "SOURCES;ENV;ARGS")
    set(sources ${T_SOURCES} ${T_UNPARSED_ARGUMENTS})
    if(NOT sources)
        message(FATAL_ERROR "cwsgi_add_app_test(${name}): no source files")
    endif()
    if(NOT TARGET ${app})
        message(FATAL_ERROR "cwsgi_add_app_test(${name}): '${app}' is not a target (make it with cwsgi_add_app first)")
    endif()
    add_executable(${name} ${sources})
    target_link_libraries(${name} PRIVATE cwsgi::testhost)
    add_dependencies(${name} ${app})
    add_test(NAME ${name} COMMAND ${name} $<TARGET_FILE:${app}> ${T_ARGS})
    if(T_ENV)
        set_tests_properties(${name} PROPERTIES ENVIRONMENT "${T_ENV}")
    endif()
endfunction()
