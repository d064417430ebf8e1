// Why ringproxy frames backend replies itself instead of using hiredis's reader on the
// hot path: the proxy only needs to know where a reply ends in order to forward its bytes.
// hiredis copies the input into its own buffer and builds a redisReply tree per reply
// (one malloc per element); ReplyScanner only walks the bytes in place.
//
//   build/bench/reply_framing_bench --benchmark_min_time=0.5
#include <benchmark/benchmark.h>
#include <hiredis/hiredis.h>

#include <string>

#include "routing/resp/reply_scanner.h"

namespace {

std::string get_reply() { return "$64\r\n" + std::string(64, 'v') + "\r\n"; }
std::string ok_reply() { return "+OK\r\n"; }
std::string mget_reply() {
  std::string r = "*10\r\n";
  for (int i = 0; i < 10; ++i) r += "$64\r\n" + std::string(64, 'v') + "\r\n";
  return r;
}

// 16 pipelined replies per read, as at -P 16.
std::string batch(const std::string& one) {
  std::string all;
  for (int i = 0; i < 16; ++i) all += one;
  return all;
}

void scan_with_scanner(benchmark::State& state, const std::string& input) {
  ringproxy::resp::ReplyScanner scanner;
  for (auto _ : state) {
    size_t pos = 0;
    while (pos < input.size()) {
      scanner.reset();
      if (scanner.scan(input.data() + pos, input.size() - pos) != ringproxy::resp::ParseStatus::complete) break;
      pos += scanner.reply_bytes();
    }
    benchmark::DoNotOptimize(pos);
  }
  state.SetItemsProcessed(state.iterations() * 16);
}

void scan_with_hiredis(benchmark::State& state, const std::string& input) {
  redisReader* reader = redisReaderCreate();
  for (auto _ : state) {
    redisReaderFeed(reader, input.data(), input.size());
    void* reply = nullptr;
    int replies = 0;
    while (redisReaderGetReply(reader, &reply) == REDIS_OK && reply != nullptr) {
      freeReplyObject(reply);
      ++replies;
    }
    benchmark::DoNotOptimize(replies);
  }
  redisReaderFree(reader);
  state.SetItemsProcessed(state.iterations() * 16);
}

void BM_Scanner_Get(benchmark::State& s) { scan_with_scanner(s, batch(get_reply())); }
void BM_Hiredis_Get(benchmark::State& s) { scan_with_hiredis(s, batch(get_reply())); }
void BM_Scanner_Ok(benchmark::State& s) { scan_with_scanner(s, batch(ok_reply())); }
void BM_Hiredis_Ok(benchmark::State& s) { scan_with_hiredis(s, batch(ok_reply())); }
void BM_Scanner_Mget10(benchmark::State& s) { scan_with_scanner(s, batch(mget_reply())); }
void BM_Hiredis_Mget10(benchmark::State& s) { scan_with_hiredis(s, batch(mget_reply())); }

BENCHMARK(BM_Scanner_Get);
BENCHMARK(BM_Hiredis_Get);
BENCHMARK(BM_Scanner_Ok);
BENCHMARK(BM_Hiredis_Ok);
BENCHMARK(BM_Scanner_Mget10);
BENCHMARK(BM_Hiredis_Mget10);

}  // namespace
