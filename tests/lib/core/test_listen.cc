// test_listen.cc: --bind parsing and listening sockets (loopback and unix sockets only).
#include "cmocka.hh"

#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstring>
#include <string>
#include <vector>

#include "core/listen.hh"

using namespace cwsgi::core;

namespace {

void test_listen__parse(void **)
{
    BindSpec b;
    std::string err;
    assert_true(parse_bind("127.0.0.1:8080", b, err));
    assert_true(b.kind == BindSpec::Kind::tcp && b.host == "127.0.0.1" && b.port == 8080);
    assert_true(parse_bind("[::1]:9000", b, err));
    assert_true(b.host == "::1" && b.port == 9000);
    assert_true(parse_bind("localhost", b, err));
    assert_int_equal(b.port, 8000);
    assert_true(parse_bind(":7000", b, err));
    assert_string_equal(b.host.c_str(), "0.0.0.0");
    assert_true(parse_bind("unix:/tmp/x.sock", b, err));
    assert_true(b.kind == BindSpec::Kind::unix_path && b.path == "/tmp/x.sock");
    assert_true(parse_bind("fd://3", b, err));
    assert_true(b.kind == BindSpec::Kind::fd && b.fd == 3);
    for (const char *bad : {"127.0.0.1:99999", "127.0.0.1:abc", "[::1", "unix:", "fd://x", "[::1]x"}) {
        assert_false(parse_bind(bad, b, err));
        assert_false(err.empty());
    }
}

void test_listen__tcp_and_unix(void **)
{
    std::string sock = "/tmp/cwsgi-test-" + std::to_string(getpid()) + ".sock";
    std::vector<Listener> ls;
    std::string err;
    assert_true(open_listeners({"127.0.0.1:0", "unix:" + sock}, ls, err));
    assert_int_equal(ls.size(), 2);
    assert_true(listener_port(ls[0]) > 0);
    assert_true(ls[1].is_unix);
    struct stat st {};
    assert_int_equal(stat(sock.c_str(), &st), 0);
    close_listeners(ls);
    assert_int_not_equal(stat(sock.c_str(), &st), 0); // unlinked on close
}

void test_listen__fd(void **)
{
    std::vector<Listener> first;
    std::string err;
    assert_true(open_listeners({"127.0.0.1:0"}, first, err));
    int fd = dup(first[0].fd);
    std::vector<Listener> adopted;
    assert_true(open_listeners({"fd://" + std::to_string(fd)}, adopted, err));
    assert_int_equal(listener_port(adopted[0]), listener_port(first[0]));
    close_listeners(adopted);
    close_listeners(first);
    // An fd that is not a socket is refused with a reason.
    std::vector<Listener> none;
    int pipefd[2];
    assert_int_equal(pipe(pipefd), 0);
    assert_false(open_listeners({"fd://" + std::to_string(pipefd[0])}, none, err));
    assert_non_null(std::strstr(err.c_str(), "not a stream socket"));
    close(pipefd[0]);
    close(pipefd[1]);
}

void test_listen__busy_port(void **)
{
    std::vector<Listener> a, b;
    std::string err;
    assert_true(open_listeners({"127.0.0.1:0"}, a, err));
    std::string again = "127.0.0.1:" + std::to_string(listener_port(a[0]));
    assert_false(open_listeners({again}, b, err));
    assert_non_null(std::strstr(err.c_str(), "cannot listen on"));
    close_listeners(a);
}

} // namespace

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_listen__parse),
        cmocka_unit_test(test_listen__tcp_and_unix),
        cmocka_unit_test(test_listen__fd),
        cmocka_unit_test(test_listen__busy_port),
    };
    return cmocka_run_group_tests(tests, nullptr, nullptr);
}
