#!/usr/bin/env bash
# run.sh BUILD_DIR (a CMake build) or run.sh --meson BUILD_DIR: installs the build into a
# scratch prefix (cmake --install --prefix; meson install --destdir) and does what an app
# author does with README.md and nothing else:
#   - the installed files are exactly README.md's list ("Installing");
#   - README.md's two apps (its ```c file=hi.c and ```cpp file=api.cc blocks) are built out of
#     tree three ways: with CMake (find_package(cwsgi) and cwsgi_add_app, CMakeLists.txt.in),
#     with meson (the dependency 'cwsgi' and its exports_map, meson.build.in) and with
#     pkg-config by hand; each build's test drives them through the installed test host;
#   - every app built passes cwsgi-serve --check, typed with its bare name in its folder, and
#     exports only cwsgi_app_entry (ABI-LOAD-1).
set -euo pipefail
kind=cmake
if [ "${1:-}" = --meson ]; then
    kind=meson
    shift
fi
build=$1
src=$(cd "$(dirname "$0")/../.." && pwd)
here=$src/tests/install
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
prefix=$work/prefix

if [ $kind = cmake ]; then
    cmake --install "$build" --prefix "$prefix" >/dev/null
else
    # meson installs under DESTDIR/<the prefix it was set up with>; its .pc files and CMake
    # package are relocatable (pkgconfig.relocatable, cwsgiTargets-meson.cmake.in).
    DESTDIR="$work/dest" meson install -C "$build" --no-rebuild --quiet >/dev/null
    setup_prefix=$(meson introspect --buildoptions "$build" |
        /usr/bin/python3 -c 'import json, sys; print([o["value"] for o in json.load(sys.stdin) if o["name"] == "prefix"][0])')
    mkdir -p "$(dirname "$prefix")"
    mv "$work/dest$setup_prefix" "$prefix"
fi

echo "--- the installed files are README.md's list"
# The ```text installed-files block of README.md: one path (or shell pattern) per line,
# relative to the prefix; "#" starts a comment.
awk '/^```text installed-files$/ {on = 1; next} on && /^```/ {exit} on' "$src/README.md" |
    sed 's/#.*//; s/[[:space:]]*$//' | grep -v '^$' > "$work/listed"
[ -s "$work/listed" ] || { echo "README.md has no \`\`\`text installed-files block" >&2; exit 1; }
# A multiarch libdir (lib/x86_64-linux-gnu, meson's default on Debian) is the list's lib/.
(cd "$prefix" && find . \( -type f -o -type l \) | sed 's|^\./||; s|^lib/[a-z0-9_]*-linux-gnu[a-z0-9_]*/|lib/|' | sort) > "$work/installed"
status=0
while read -r file; do
    matched=0
    while read -r pattern; do
        # shellcheck disable=SC2053 # the README's lines are patterns on purpose
        if [[ $file == $pattern ]]; then matched=1; break; fi
    done < "$work/listed"
    [ $matched = 1 ] || { echo "installed but not in README.md's list: $file" >&2; status=1; }
done < "$work/installed"
while read -r pattern; do
    found=0
    while read -r file; do
        # shellcheck disable=SC2053
        if [[ $file == $pattern ]]; then found=1; break; fi
    done < "$work/installed"
    [ $found = 1 ] || { echo "in README.md's list but not installed: $pattern" >&2; status=1; }
done < "$work/listed"
[ $status = 0 ]

export PKG_CONFIG_PATH="$prefix/lib/pkgconfig:$prefix/lib/x86_64-linux-gnu/pkgconfig"
map=$(pkg-config --variable=exports_map cwsgi)
[ -f "$map" ] || { echo "pkg-config --variable=exports_map cwsgi: '$map' is not a file" >&2; exit 1; }

mkdir -p "$work/project"
awk '/^```c file=hi.c$/ {on = 1; next} on && /^```/ {exit} on' "$src/README.md" > "$work/project/hi.c"
awk '/^```cpp file=api.cc$/ {on = 1; next} on && /^```/ {exit} on' "$src/README.md" > "$work/project/api.cc"
[ -s "$work/project/hi.c" ] && [ -s "$work/project/api.cc" ] || { echo "README.md's apps not found" >&2; exit 1; }
cp "$here/test_readme_apps.c" "$work/project/"
cp "$here/CMakeLists.txt.in" "$work/project/CMakeLists.txt"
cp "$here/meson.build.in" "$work/project/meson.build"

# check_app DIR NAME: --check by bare name in DIR, and only the entry exported.
check_app() {
    local out
    out=$(cd "$1" && "$prefix/bin/cwsgi-serve" --check "$2") ||
        { echo "cwsgi-serve --check $2 (in $1) failed: $out" >&2; exit 1; }
    grep -q "result:         ok" <<<"$out" || { echo "cwsgi-serve --check $2: $out" >&2; exit 1; }
    local exported
    exported=$(nm -D --defined-only "$1/$2" | awk '{print $NF}')
    [ "$exported" = cwsgi_app_entry ] || { echo "$1/$2 exports: $exported" >&2; exit 1; }
}

echo "--- CMake: find_package(cwsgi), cwsgi_add_app, cwsgi_add_app_test"
cmake -S "$work/project" -B "$work/cmake-build" -DCMAKE_PREFIX_PATH="$prefix" \
    -DCMAKE_C_FLAGS="-Wall -Wextra -Werror" -DCMAKE_CXX_FLAGS="-Wall -Wextra -Werror" >/dev/null
cmake --build "$work/cmake-build" >/dev/null
# The output is kept, not piped: grep -q would stop reading early, and pipefail would then see
# ctest die of SIGPIPE.
ctest_out=$(ctest --test-dir "$work/cmake-build" --output-on-failure --timeout 60) ||
    { echo "$ctest_out" >&2; exit 1; }
grep -q "100% tests passed, 0 tests failed out of 1" <<<"$ctest_out"
check_app "$work/cmake-build" hi.so
check_app "$work/cmake-build" api.so

echo "--- meson: dependency('cwsgi') and its exports_map"
meson setup "$work/meson-build" "$work/project" -Dwerror=true -Dwarning_level=2 >/dev/null
meson compile -C "$work/meson-build" >/dev/null
meson test -C "$work/meson-build" --print-errorlogs >/dev/null
check_app "$work/meson-build" hi.so
check_app "$work/meson-build" api.so

echo "--- pkg-config: cwsgi, cwsgi-testhost"
libdir=$(pkg-config --variable=libdir cwsgi-testhost)
cd "$work/project"
cc -std=c11 -Wall -Wextra -Werror -shared -fPIC -fvisibility=hidden -Wl,--no-undefined \
    -Wl,--version-script="$map" -o hi.so hi.c $(pkg-config --cflags cwsgi)
c++ -std=c++20 -Wall -Wextra -Werror -shared -fPIC -fvisibility=hidden -fvisibility-inlines-hidden \
    -Wl,--no-undefined -Wl,--version-script="$map" -o api.so api.cc $(pkg-config --cflags cwsgi)
cc -Wall -Wextra -Werror -o test_readme_apps test_readme_apps.c $(pkg-config --cflags --libs cwsgi-testhost) \
    -Wl,-rpath,"$libdir"
./test_readme_apps ./hi.so ./api.so
check_app "$work/project" hi.so
check_app "$work/project" api.so
echo "install test: ok"
