// fuzz_probe.cc: the smallest libFuzzer target; the builds link it at configure time to learn
// whether clang++ can build fuzz_http1 (libclang_rt.fuzzer present).
#include <cstddef>
#include <cstdint>

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *, size_t) { return 0; }
