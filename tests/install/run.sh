#!/usr/bin/env bash
# run.sh BUILD_DIR: installs the build into a scratch prefix, extracts the C and C++ apps from
# README.md, and builds them out of tree twice, with CMake (find_package(cwsgi)) and with
# pkg-config, then drives them through the installed test host and checks cwsgi-serve --check.
# This is what a new user does with the README and nothing else.
set -euo pipefail
build=$1
src=$(cd "$(dirname "$0")/../.." && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
prefix=$work/prefix

cmake --install "$build" --prefix "$prefix" >/dev/null
mkdir -p "$work/project"
# The first ```c block and the first ```cpp block of README.md.
awk '/^```c$/ {on = 1; next} on && /^```/ {exit} on' "$src/README.md" > "$work/project/hi.c"
awk '/^```cpp$/ {on = 1; next} on && /^```/ {exit} on' "$src/README.md" > "$work/project/api.cc"
cp "$src/tests/install/test_readme_apps.c" "$work/project/"
cp "$src/tests/install/CMakeLists.txt.in" "$work/project/CMakeLists.txt"

echo "--- CMake: find_package(cwsgi)"
cmake -S "$work/project" -B "$work/cmake-build" -DCMAKE_PREFIX_PATH="$prefix" \
    -DCMAKE_C_FLAGS="-Wall -Wextra -Werror" -DCMAKE_CXX_FLAGS="-Wall -Wextra -Werror" >/dev/null
cmake --build "$work/cmake-build" >/dev/null
"$work/cmake-build/test_readme_apps" "$work/cmake-build/hi.so" "$work/cmake-build/api.so"

echo "--- pkg-config: cwsgi, cwsgi-testhost"
export PKG_CONFIG_PATH="$prefix/lib/pkgconfig:$prefix/lib/x86_64-linux-gnu/pkgconfig"
libdir=$(pkg-config --variable=libdir cwsgi-testhost)
cd "$work/project"
cc -std=c99 -Wall -Wextra -Werror -shared -fPIC -fvisibility=hidden -o hi.so hi.c $(pkg-config --cflags cwsgi)
c++ -std=c++20 -Wall -Wextra -Werror -shared -fPIC -fvisibility=hidden -o api.so api.cc $(pkg-config --cflags cwsgi)
cc -Wall -Wextra -Werror -o test_readme_apps test_readme_apps.c $(pkg-config --cflags --libs cwsgi-testhost) \
    -Wl,-rpath,"$libdir"
./test_readme_apps ./hi.so ./api.so

echo "--- cwsgi-serve --check"
"$prefix/bin/cwsgi-serve" --check ./hi.so | grep -q "result:         ok"
"$prefix/bin/cwsgi-serve" --check ./api.so | grep -q "thread-safety:  safe"
nm -D --defined-only ./hi.so | grep -c " T " | grep -qx 1 # ABI-LOAD-1: only the entry is exported
echo "install test: ok"
