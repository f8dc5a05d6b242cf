"""Fixtures of the cffi host's suite: the paths of the built apps and loader fixtures.

CWSGI_BUILD_DIR (set by ctest and meson test) is the build tree; without it, ../build. A test
whose .so is not built is skipped, naming the file."""
import os
import sys

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import cwsgi_host  # noqa: E402

BUILD = os.environ.get("CWSGI_BUILD_DIR",
                       os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "build"))


def built(*parts):
    path = os.path.join(BUILD, *parts)
    if not os.path.exists(path):
        pytest.skip("%s is not built" % path)
    return path


def app_path(name):
    return built("apps", name + ".so")


def fixture_path(name):
    return built("tests", "fixtures", "fixture_" + name + ".so")


@pytest.fixture
def open_app():
    """open_app(name, **options) -> a loaded cwsgi_host.Host, closed after the test."""
    hosts = []

    def opener(name, **options):
        host = cwsgi_host.Host(app_path(name), **options)
        hosts.append(host)
        return host

    yield opener
    for host in hosts:
        host.close()
        assert host.errors == [], "a host callback raised: %r" % host.errors
