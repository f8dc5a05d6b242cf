# Helpers shared by every CMakeLists.txt of the project.

# cwsgi_add_app(NAME SOURCES src... [LIBS lib...])
# Builds a loadable CWSGI app: a MODULE named NAME.so (no "lib" prefix) in ${CMAKE_BINARY_DIR}/apps,
# with hidden visibility so that only cwsgi_app_entry is exported (ABI-LOAD-1).
function(cwsgi_add_app name)
    cmake_parse_arguments(A "" "OUTPUT_DIR" "SOURCES;LIBS" ${ARGN})
    add_library(${name} MODULE ${A_SOURCES})
    target_link_libraries(${name} PRIVATE cwsgi::headers ${A_LIBS})
    if(NOT A_OUTPUT_DIR)
        set(A_OUTPUT_DIR ${CMAKE_BINARY_DIR}/apps)
    endif()
    set_target_properties(${name} PROPERTIES PREFIX "" LIBRARY_OUTPUT_DIRECTORY ${A_OUTPUT_DIR})
    # Apps must not depend on the server: unresolved symbols fail at link time. The version
    # script keeps the entry the only exported symbol, for C++ apps too.
    target_link_options(${name} PRIVATE -Wl,--no-undefined
        -Wl,--version-script=${CMAKE_SOURCE_DIR}/cmake/app-exports.map)
    set_property(TARGET ${name} APPEND PROPERTY LINK_DEPENDS ${CMAKE_SOURCE_DIR}/cmake/app-exports.map)
endfunction()

# cwsgi_add_test(NAME SOURCES src... [LIBS lib...] [TIMEOUT s] [ENV VAR=value...])
# One CMocka binary per test file, run by CTest in its own process with a timeout.
function(cwsgi_add_test name)
    cmake_parse_arguments(T "" "TIMEOUT" "SOURCES;LIBS;ENV;DEPENDS" ${ARGN})
    add_executable(${name} ${T_SOURCES})
    target_link_libraries(${name} PRIVATE ${T_LIBS} PkgConfig::CMOCKA)
    target_include_directories(${name} PRIVATE ${CMAKE_SOURCE_DIR}/lib ${CMAKE_SOURCE_DIR}/tests)
    if(T_DEPENDS)
        add_dependencies(${name} ${T_DEPENDS})
    endif()
    if(NOT T_TIMEOUT)
        set(T_TIMEOUT 120)
    endif()
    add_test(NAME ${name} COMMAND ${name})
    set_tests_properties(${name} PROPERTIES TIMEOUT ${T_TIMEOUT}
        ENVIRONMENT "CWSGI_BUILD_DIR=${CMAKE_BINARY_DIR};CWSGI_SOURCE_DIR=${CMAKE_SOURCE_DIR};${T_ENV}")
endfunction()
