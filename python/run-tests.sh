#!/bin/sh
# run-tests.sh: runs the cffi host's pytest suite (python/) against the apps and loader
# fixtures of the build tree $CWSGI_BUILD_DIR, as ctest and meson test call it
# (test_python_cffi). Exits 77, the skip code of both, with the reason when /usr/bin/python3
# lacks cffi or pytest, or when CWSGI_PY_SKIP names a reason (a sanitizer build: its .so files
# need the ASan runtime loaded first, which a plain python3 does not have).
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
export PYTHONDONTWRITEBYTECODE=1
exec /usr/bin/python3 -m pytest -q -p no:cacheprovider "$here"
