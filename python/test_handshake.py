"""The handshake through the cffi host (spec/abi.md): the header is what the host reads, the
table is complete, and every broken fixture of tests/fixtures is refused before init."""
import re

import pytest

import cwsgi_host
from cwsgi_host import ffi
from conftest import app_path, built, fixture_path


def test_the_cdef_is_the_header():
    """The host has no copy of the declarations: every struct member of cwsgi.h is in the
    cdef cffi parsed, in the header's order."""
    with open(cwsgi_host.HEADER) as f:
        header = cwsgi_host._strip_comments(f.read())
    for struct in ("cwsgi_server_api", "cwsgi_app_desc", "cwsgi_request_info",
                   "cwsgi_server_info", "cwsgi_header", "cwsgi_str", "cwsgi_ext_request_trailers"):
        body = re.search(r"struct %s \{(.*?)\}" % struct, header, re.S).group(1)
        names = []
        for member in body.split(";")[:-1]:
            fn = re.search(r"\(\*(\w+)\)", member)
            names.append(fn.group(1) if fn else re.findall(r"\w+", member)[-1])
        assert [n for n, _ in ffi.typeof("struct " + struct).fields] == names, struct


def test_constants_come_from_the_header():
    assert cwsgi_host.CODES["E_INVAL"] == -1 and cwsgi_host.CODES["E_STATUS"] == -18
    assert len(cwsgi_host.CODES) == 20
    assert cwsgi_host.DEFINES["CWSGI_CAP_THREADS"] == 0x100
    assert (cwsgi_host.ABI_MAJOR, cwsgi_host.ABI_MINOR) == (1, 2)
    assert cwsgi_host.ERRBUF_SIZE == 512


def test_every_table_entry_is_a_python_callback():
    host = cwsgi_host.Host(app_path("hello"))
    fields = [n for n, t in ffi.typeof("cwsgi_server_api").fields if t.type.kind == "function"]
    assert fields == host.table_names
    for name in fields:
        assert getattr(host.api, name) != ffi.NULL, name
    assert host.api.struct_size == ffi.sizeof("cwsgi_server_api")  # rule: ABI-VER-4
    assert (host.api.abi_major, host.api.abi_minor) == (1, 2)
    host.close()


def test_a_good_fixture_and_the_1_0_build_load():
    for name in ("good", "v10"):
        host = cwsgi_host.Host(fixture_path(name))
        assert host.entry_calls == 1  # rule: ABI-LOAD-3
        r = host.request("GET", "/")
        assert 200 <= r.status < 600 and r.outcome == cwsgi_host.OK
        host.close()


@pytest.mark.parametrize("name,why", [
    ("no_entry", "not a CWSGI app"),                       # ABI-LOAD-1
    ("wrong_major", "built for CWSGI ABI 2.x"),            # ABI-VER-1
    ("newer_minor", "needs CWSGI ABI 1.99"),               # ABI-VER-2
    ("no_handle", "no handle"),                            # ABI-LOAD-4
    ("needs_http2", "lacks capabilities 0x10"),            # ABI-LOAD-5
    ("bad_threads", "thread_safety 7"),                    # ABI-LOAD-6
    ("entry_refuses", "returned CWSGI_E_"),                # ABI-LOAD-3
    ("nonzero_tail", "does not know"),                     # ABI-STRUCT-4
    ("flags_minor0", "declare abi_minor 1"),               # ABI-STRUCT-5
    ("unknown_flags", "unknown descriptor flags"),         # ABI-STRUCT-5
    ("init_fails", "init failed"),                         # ABI-LOAD-7
    ("worker_start_fails", "worker_start failed"),         # LIFE-WORKER-2
])
def test_broken_fixtures_are_refused(name, why, tmp_path, monkeypatch):
    mark = tmp_path / "init-mark"
    monkeypatch.setenv("CWSGI_FIXTURE_INIT_MARK", str(mark))
    path = fixture_path(name)
    with pytest.raises(cwsgi_host.LoadError) as info:
        cwsgi_host.Host(path)
    message = str(info.value)
    assert message.startswith(path + ": ") and why in message, message
    assert "\n" not in message
    if name not in ("init_fails", "worker_start_fails"):
        assert not mark.exists(), "init ran for a refused app (ABI-LOAD-7)"


def test_version_refusals_name_both_versions_and_the_remedy():
    with pytest.raises(cwsgi_host.LoadError, match=r"1\.99; this server implements 1\.2: "
                                                   r"upgrade the server"):
        cwsgi_host.Host(fixture_path("newer_minor"))
    with pytest.raises(cwsgi_host.LoadError, match=r"2\.x; this server implements ABI 1\.2: "
                                                   r"rebuild the app"):
        cwsgi_host.Host(fixture_path("wrong_major"))  # rule: ABI-VER-5


def test_an_older_server_refuses_a_1_1_app_and_loads_a_1_0_one():
    """The host can act as a 1.0 server (a shorter table): ABI-VER-2 from the server side."""
    with pytest.raises(cwsgi_host.LoadError, match=r"needs CWSGI ABI 1\.1; this server "
                                                   r"implements 1\.0"):
        cwsgi_host.Host(app_path("hello"), server_minor=0)
    host = cwsgi_host.Host(fixture_path("v10"), server_minor=0)
    assert host.api.struct_size == ffi.offsetof("cwsgi_server_api", "wait_fd")
    assert host.request("GET", "/").outcome == cwsgi_host.OK
    host.close()


def test_files_that_are_not_apps_get_their_own_messages(tmp_path):
    with pytest.raises(cwsgi_host.LoadError, match="no such file"):
        cwsgi_host.Host(str(tmp_path / "missing.so"))
    with pytest.raises(cwsgi_host.LoadError, match="not a regular file"):
        cwsgi_host.Host(str(tmp_path))
    with pytest.raises(cwsgi_host.LoadError, match="cannot load: "):
        cwsgi_host.Host(built("tests", "fixtures", "not_an_elf.so"))  # rule: ABI-LOAD-2
