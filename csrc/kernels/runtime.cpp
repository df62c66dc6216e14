// Thread count, CPU feature dispatch and the simple fork-join used by every kernel.
#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <cstring>
#include <thread>
#include <vector>

#include "ovq/kernels.hpp"

namespace ovq {
namespace {

int default_threads() {
    if (const char* env = std::getenv("OVQ_NUM_THREADS")) {
        const int n = std::atoi(env);
        if (n > 0) return n;
    }
    const unsigned hc = std::thread::hardware_concurrency();
    return hc ? static_cast<int>(hc) : 1;
}

bool detect_avx2() {
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") &&
           __builtin_cpu_supports("f16c");
#else
    return false;
#endif
}

bool default_simd() {
    if (const char* env = std::getenv("OVQ_NATIVE_ISA")) {
        if (std::strcmp(env, "generic") == 0) return false;
    }
    return detect_avx2();
}

std::atomic<int> g_threads{default_threads()};
std::atomic<bool> g_simd{default_simd()};

}  // namespace

int num_threads() { return g_threads.load(std::memory_order_relaxed); }
void set_num_threads(int n) { g_threads.store(n > 0 ? n : default_threads()); }
bool cpu_has_avx2() { return detect_avx2(); }
bool simd_enabled() { return g_simd.load(std::memory_order_relaxed); }
void set_simd(bool enabled) { g_simd.store(enabled && detect_avx2()); }

void parallel_tasks(int64_t ntasks, int64_t work_per_task, void (*fn)(void*, int64_t),
                    void* ctx) {
    if (ntasks <= 0) return;
    int64_t nt = num_threads();
    // Below ~64k elements of total work a thread start costs more than it saves.
    const int64_t total = ntasks * (work_per_task > 0 ? work_per_task : 1);
    const int64_t by_work = total / (1 << 16) + 1;
    if (nt > by_work) nt = by_work;
    if (nt > ntasks) nt = ntasks;
    if (nt <= 1) {
        for (int64_t t = 0; t < ntasks; ++t) fn(ctx, t);
        return;
    }
    // Threads take runs of consecutive tasks (about 8 runs per thread): neighbouring
    // tasks usually touch neighbouring memory, so each thread streams through longer
    // stretches (hardware prefetch) and the shared counter is hit less often.
    const int64_t chunk = std::max<int64_t>(1, ntasks / (8 * nt));
    std::atomic<int64_t> next{0};
    auto worker = [&]() {
        for (;;) {
            const int64_t t0 = next.fetch_add(chunk, std::memory_order_relaxed);
            if (t0 >= ntasks) return;
            const int64_t t1 = std::min(ntasks, t0 + chunk);
            for (int64_t t = t0; t < t1; ++t) fn(ctx, t);
        }
    };
    std::vector<std::thread> pool;
    pool.reserve(static_cast<size_t>(nt - 1));
    for (int64_t i = 1; i < nt; ++i) pool.emplace_back(worker);
    worker();
    for (auto& th : pool) th.join();
}

}  // namespace ovq
