# The test set from its one source, tests/tests.list (and conformance/runs.list, read by
# conformance/CMakeLists.txt with cwsgi_read_list). meson.build reads the same files; the format
# is in their header comments, and test_build_parity (scripts/build-parity) checks that each
# build registers exactly the lines whose needs it meets.

# cwsgi_read_list(FILE VAR): the data lines of FILE ("#" comments and blank lines dropped), each
# as its blank-separated fields joined by "|", in the list VAR (one element per line).
# FILE becomes a configure dependency, so an edited list re-runs CMake.
function(cwsgi_read_list file var)
    set_property(DIRECTORY APPEND PROPERTY CMAKE_CONFIGURE_DEPENDS ${file})
    file(STRINGS ${file} _lines)
    set(_out "")
    foreach(_line IN LISTS _lines)
        string(REGEX REPLACE "#.*" "" _line "${_line}")
        string(STRIP "${_line}" _line)
        if(_line STREQUAL "")
            continue()
        endif()
        string(REGEX REPLACE "[ \t]+" ";" _fields "${_line}")
        string(REPLACE ";" "|" _fields "${_fields}")
        list(APPEND _out "${_fields}")
    endforeach()
    set(${var} "${_out}" PARENT_SCOPE)
endfunction()

# cwsgi_needs_met(NEEDS VAR): VAR is TRUE when every need of NEEDS ("a,b" or "-") is in
# CWSGI_TEST_FEATURES.
function(cwsgi_needs_met needs var)
    set(_ok TRUE)
    if(NOT needs STREQUAL "-")
        string(REPLACE "," ";" _needs "${needs}")
        foreach(_n IN LISTS _needs)
            if(NOT _n IN_LIST CWSGI_TEST_FEATURES)
                set(_ok FALSE)
            endif()
        endforeach()
    endif()
    set(${var} ${_ok} PARENT_SCOPE)
endfunction()

# What this build has, in the vocabulary of the lists' needs column.
set(CWSGI_TEST_FEATURES "")
if(CWSGI_HAVE_MICROHTTPD)
    list(APPEND CWSGI_TEST_FEATURES microhttpd)
endif()
if(CWSGI_HAVE_H2O)
    list(APPEND CWSGI_TEST_FEATURES h2o)
endif()
if(CWSGI_BUILD_APPS AND EXISTS ${CMAKE_SOURCE_DIR}/apps/CMakeLists.txt)
    list(APPEND CWSGI_TEST_FEATURES apps)
endif()
if(CWSGI_BUILD_CONFORMANCE AND EXISTS ${CMAKE_SOURCE_DIR}/conformance/CMakeLists.txt)
    list(APPEND CWSGI_TEST_FEATURES conformance)
endif()
if(CWSGI_BUILD_BENCH AND EXISTS ${CMAKE_SOURCE_DIR}/bench/CMakeLists.txt)
    list(APPEND CWSGI_TEST_FEATURES bench)
endif()
if(NOT CWSGI_SANITIZE)
    list(APPEND CWSGI_TEST_FEATURES nosan)
endif()

# tests/tests.list, as global properties: CWSGI_TEST_<name>_NEEDS and _TIMEOUT for each line.
cwsgi_read_list(${CMAKE_SOURCE_DIR}/tests/tests.list _cwsgi_tests)
set(CWSGI_LISTED_TESTS "")
foreach(_t IN LISTS _cwsgi_tests)
    string(REPLACE "|" ";" _f "${_t}")
    list(LENGTH _f _n)
    if(NOT _n EQUAL 4)
        message(FATAL_ERROR "tests/tests.list: '${_t}' has ${_n} fields, not 4 (name dir needs timeout)")
    endif()
    list(GET _f 0 _name)
    list(GET _f 2 _needs)
    list(GET _f 3 _timeout)
    list(APPEND CWSGI_LISTED_TESTS ${_name})
    set_property(GLOBAL PROPERTY CWSGI_TEST_${_name}_NEEDS "${_needs}")
    set_property(GLOBAL PROPERTY CWSGI_TEST_${_name}_TIMEOUT "${_timeout}")
endforeach()

# cwsgi_register_test(NAME COMMAND cmd... [ENV VAR=value...] [RUN_SERIAL])
# add_test for a line of tests/tests.list (or, with TIMEOUT t NEEDS n, of conformance/runs.list):
# the timeout comes from the list, exit code 77 means skipped (as in meson), ENV is the test's
# environment. A name that is not in the list, or whose needs this build does not meet, stops the
# configuration: the other build would not register it.
function(cwsgi_register_test name)
    cmake_parse_arguments(PARSE_ARGV 1 R "RUN_SERIAL" "TIMEOUT;NEEDS" "COMMAND;ENV")
    if(NOT DEFINED R_TIMEOUT)
        if(NOT name IN_LIST CWSGI_LISTED_TESTS)
            message(FATAL_ERROR "test ${name} is not in tests/tests.list: add its line there, so "
                                "that both builds register it (tests/README.md)")
        endif()
        get_property(R_TIMEOUT GLOBAL PROPERTY CWSGI_TEST_${name}_TIMEOUT)
        get_property(R_NEEDS GLOBAL PROPERTY CWSGI_TEST_${name}_NEEDS)
    endif()
    cwsgi_needs_met("${R_NEEDS}" _ok)
    if(NOT _ok)
        message(FATAL_ERROR "test ${name} needs '${R_NEEDS}' (its list says so), which this build "
                            "lacks (it has: ${CWSGI_TEST_FEATURES}): register it under that condition")
    endif()
    add_test(NAME ${name} COMMAND ${R_COMMAND})
    set_tests_properties(${name} PROPERTIES TIMEOUT ${R_TIMEOUT} SKIP_RETURN_CODE 77)
    if(R_ENV)
        set_tests_properties(${name} PROPERTIES ENVIRONMENT "${R_ENV}")
    endif()
    if(R_RUN_SERIAL)
        set_tests_properties(${name} PROPERTIES RUN_SERIAL ON)
    endif()
endfunction()

# cwsgi_tests_check(): called at the end of the top-level CMakeLists.txt. Warns about each line
# of tests/tests.list whose needs this build meets but that no folder registered, and about each
# test registered without the list (a bare add_test); test_build_parity fails on both.
function(_cwsgi_tests_of dir var)
    get_property(_t DIRECTORY ${dir} PROPERTY TESTS)
    get_property(_subs DIRECTORY ${dir} PROPERTY SUBDIRECTORIES)
    foreach(_s IN LISTS _subs)
        _cwsgi_tests_of(${_s} _more)
        list(APPEND _t ${_more})
    endforeach()
    set(${var} "${_t}" PARENT_SCOPE)
endfunction()
function(cwsgi_tests_check)
    _cwsgi_tests_of(${CMAKE_SOURCE_DIR} _registered)
    if(NOT CWSGI_BUILD_TESTS OR NOT BUILD_TESTING)
        return()
    endif()
    foreach(_name IN LISTS CWSGI_LISTED_TESTS)
        get_property(_needs GLOBAL PROPERTY CWSGI_TEST_${_name}_NEEDS)
        cwsgi_needs_met("${_needs}" _ok)
        if(_ok AND NOT _name IN_LIST _registered)
            message(WARNING "tests/tests.list has ${_name} (needs: ${_needs}), which no CMakeLists.txt "
                            "registered: test_build_parity will fail")
        endif()
    endforeach()
    foreach(_name IN LISTS _registered)
        if(NOT _name IN_LIST CWSGI_LISTED_TESTS AND NOT _name MATCHES "^conformance_")
            message(WARNING "test ${_name} is registered with add_test but is not in tests/tests.list: "
                            "test_build_parity will fail")
        endif()
    endforeach()
endfunction()
