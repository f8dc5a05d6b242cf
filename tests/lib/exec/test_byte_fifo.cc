// test_byte_fifo.cc: the bounded byte FIFO between handle() and the event loop
// (lib/exec/byte_fifo.hh): bounded, ordered, limits below the capacity, storage reclaimed.
#include "cmocka.hh"

#include <cstring>
#include <string>

#include "exec/byte_fifo.hh"

using namespace cwsgi::exec;

namespace {

void test_byte_fifo__is_bounded_and_ordered(void **) // rule: RESP-BODY-2
{
    ByteFifo f(8);
    assert_int_equal(f.push("abcdef", 6, 8), 6);
    assert_int_equal(f.push("ghij", 4, 8), 2); // only what fits
    assert_int_equal(f.push("x", 1, 8), 0);
    char out[16] = {0};
    assert_int_equal(f.pop(out, 3), 3);
    assert_memory_equal(out, "abc", 3);
    // A lower limit than the capacity holds back a writer without losing anything.
    assert_int_equal(f.push("KL", 2, 5), 0);
    assert_int_equal(f.push("KLM", 3, 8), 3); // reuses the consumed front
    assert_int_equal(f.size(), 8u);
    assert_int_equal(f.pop(out, sizeof out), 8);
    assert_memory_equal(out, "defghKLM", 8);
    assert_true(f.empty());
}

void test_byte_fifo__limit_above_capacity_is_the_capacity(void **)
{
    ByteFifo f(4);
    assert_int_equal(f.space(100), 4);
    assert_int_equal(f.push("abcdef", 6, 100), 4);
    assert_int_equal(f.space(100), 0);
    char c = 0;
    assert_int_equal(f.pop(&c, 0), 0); // a zero-byte pop takes nothing
    assert_int_equal(f.size(), 4);
}

void test_byte_fifo__consume_and_data_stream_through(void **)
{
    // A long stream through a small FIFO comes out whole and in order, and the storage never
    // passes the capacity (data() stays one contiguous run).
    ByteFifo f(7);
    std::string in, out;
    for (int i = 0; i < 1000; ++i) in += static_cast<char>('a' + i % 26);
    size_t fed = 0;
    while (out.size() < in.size()) {
        fed += f.push(in.data() + fed, std::min<size_t>(3, in.size() - fed), 7);
        assert_true(f.size() <= f.capacity());
        size_t take = std::min<size_t>(2, f.size());
        out.append(f.data(), take);
        f.consume(take);
    }
    assert_true(out == in);
    assert_true(f.empty());
    f.push("z", 1, 7);
    f.clear();
    assert_true(f.empty());
    assert_int_equal(f.space(7), 7);
}

} // namespace

int main()
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_byte_fifo__is_bounded_and_ordered),
        cmocka_unit_test(test_byte_fifo__limit_above_capacity_is_the_capacity),
        cmocka_unit_test(test_byte_fifo__consume_and_data_stream_through),
    };
    return cmocka_run_group_tests_name("exec_byte_fifo", tests, nullptr, nullptr);
}
