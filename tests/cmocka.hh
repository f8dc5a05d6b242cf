// cmocka.hh: includes CMocka from C++ test files (it needs these C headers first).
#pragma once
// CMocka defines fail() and skip() as macros, which clash with std::ios::fail(); pull in the
// standard headers tests use before it.
#include <algorithm>
#include <fstream>
#include <iostream>
#include <sstream>
#include <string>
#include <vector>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
extern "C" {
#include <cmocka.h>
}
