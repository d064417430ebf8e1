// CHECK for the libFuzzer targets: a broken invariant aborts, so libFuzzer saves the input
// (`build-fuzz/fuzz-artifacts/<target>/`) and the message names the condition and the file.
#pragma once

#include <cstdio>
#include <cstdlib>

namespace ringproxy::fuzz {

[[noreturn]] inline void invariant_broken(const char* file, const char* what) {
  std::fprintf(stderr, "%s: invariant broken: %s\n", file, what);
  std::abort();
}

}  // namespace ringproxy::fuzz

#define CHECK(cond)                                                           \
  do {                                                                        \
    if (!(cond)) ::ringproxy::fuzz::invariant_broken(__FILE__, #cond);        \
  } while (0)
