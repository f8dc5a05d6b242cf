#!/bin/sh
# run-tests.sh: runs the cffi host's pytest suite (python/) against the apps and loader
# fixtures of the build tree $CWSGI_BUILD_DIR, as ctest and meson test call it
# (test_python_cffi). Exits 77, the skip code of both, with the reason when /usr/bin/python3
# lacks cffi or pytest, or when CWSGI_PY_SKIP names a reason. In a sanitizer build the apps
# need the ASan and UBSan runtimes loaded before them: the build passes their paths in
# CWSGI_PY_PRELOAD, and the suite runs with them in LD_PRELOAD (leak checks off: the python
# interpreter itself keeps memory until exit by design).
set -eu
here=$(cd "$(dirname "$0")" && pwd)
if [ -n "${CWSGI_PY_SKIP:-}" ]; then
    echo "SKIP: test_python_cffi: $CWSGI_PY_SKIP"
    exit 77
fi
for module in cffi pytest; do
    if ! /usr/bin/python3 -c "import $module" 2>/dev/null; then
        echo "SKIP: test_python_cffi: /usr/bin/python3 has no $module module" \
             "(scripts/install-deps installs python3-cffi and python3-pytest)"
        exit 77
    fi
done
if [ -n "${CWSGI_PY_PRELOAD:-}" ]; then
    for lib in $CWSGI_PY_PRELOAD; do
        if [ ! -f "$lib" ]; then
            echo "SKIP: test_python_cffi: sanitizer build, and the runtime $lib is not a file"
            exit 77
        fi
    done
    export LD_PRELOAD="$CWSGI_PY_PRELOAD" ASAN_OPTIONS="detect_leaks=0${ASAN_OPTIONS:+:$ASAN_OPTIONS}"
fi
export PYTHONDONTWRITEBYTECODE=1
exec /usr/bin/python3 -m pytest -q -p no:cacheprovider "$here"
