// Pure C++ kernels behind ovq._native (no pybind11 here).
//
// Every kernel walks operands described by a `Walk`: a flat base pointer per operand,
// the element offset of each kept ("channel") index k, and a small nd box of reduced
// (or, for element-wise kernels, iterated) dims with element strides that may be
// negative. The Python side (ovq/kernels/_layout.py) builds these descriptions so that
// strided views never need a copy. Semantics are defined by ovq/kernels/reference.py.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

namespace ovq {

enum class DType : int { F32 = 0, F16 = 1, BF16 = 2 };
enum class IType : int { I8 = 0, U8 = 1, I16 = 2, U16 = 3, I32 = 4 };

constexpr int kMaxDims = 32;

struct Operand {
    const void* data = nullptr;      // flat base (lowest address the operand touches)
    const int64_t* koff = nullptr;   // K element offsets
    const int64_t* rstrides = nullptr;  // nd element strides of the box
};

struct Box {
    int64_t k = 0;                   // number of kept indices
    int nd = 1;                      // dims of the box
    const int64_t* shape = nullptr;  // nd sizes
};

// ---- runtime configuration (runtime.cpp)
int num_threads();
void set_num_threads(int n);  // n <= 0: hardware concurrency (or OVQ_NUM_THREADS)
bool cpu_has_avx2();          // AVX2 + FMA + F16C available on this CPU
bool simd_enabled();          // the AVX2 path is in use (available and not forced off)
void set_simd(bool enabled);  // false forces the portable generic path
// Run fn(task) for task in [0, ntasks) on up to num_threads() threads.
void parallel_tasks(int64_t ntasks, int64_t work_per_task, void (*fn)(void*, int64_t), void* ctx);

template <class F>
void parallel_for(int64_t ntasks, int64_t work_per_task, F&& f) {
    parallel_tasks(
        ntasks, work_per_task,
        [](void* c, int64_t t) { (*static_cast<F*>(c))(t); }, &f);
}

// ---- reducers (reduce.cpp). Outputs have K entries; return true if all data finite.
bool minmax(DType dt, const Operand& x, const Box& box, float* mn, float* mx);
bool moments(DType dt, const Operand& x, const Box& box, float* mn, float* mx, double* sum,
             double* sumsq);
bool quantile(DType dt, const Operand& x, const Box& box, const double* q, int nq,
              bool absolute, double* out /* nq x K */);
bool histogram(DType dt, const Operand& x, const Box& box, const double* lo, const double* hi,
               int64_t bins, bool absolute, int64_t* out /* K x (bins + 2) */);
bool quant_error(DType dt, const Operand& x, const Operand& y, const Box& box, double* sse,
                 double* ssx);

// ---- quantization (quant.cpp)
struct FQConsts {  // per kept index (or one entry broadcast when per_k is false)
    const float *cl, *ch, *isc, *ish, *osc, *osh;
    bool per_k;
};
// flavor 0 = snippets, 1 = node. out is float32.
void fake_quantize(DType dt, const Operand& x, const Operand& out, const Box& box,
                   const FQConsts& c, int flavor);
// Node-flavor level index + offset stored as `it`; returns false if x is not finite.
bool quantize(DType dt, const Operand& x, IType it, const Operand& out, const Box& box,
              const FQConsts& c, int levels, int offset);
void dequantize(IType it, const Operand& q, const Operand& out, const Box& box,
                const float* scale, const float* zp, bool per_k);

// ---- INT8 pair saturation (saturation.cpp)
// a: rows x k u8 codes, w: outs x k s8 codes, k even, both C-contiguous. Per weight row o:
// err_sq[o] = Σ over rows of (Σ over pairs (2j, 2j+1) of exact - int16-saturated pair sum)²,
// saturated[o] = number of pairs whose exact sum leaves int16.
void pair_saturation(const uint8_t* a, int64_t rows, const int8_t* w, int64_t outs, int64_t k,
                     double* err_sq, int64_t* saturated);

// Weight compression of a C-contiguous (rows x cols) weight in groups of `group` columns:
// levels into q (rows x cols bytes, or rows x cols/2 nibble pairs when packed), scales
// and (asym) zero points into (rows x cols/group). False if the weight is not finite.
bool compress_groups(DType dt, const void* data, int64_t rows, int64_t cols, int bits, bool sym, int64_t group,
                     bool packed, uint8_t* q, float* scale, uint8_t* zp);
// Per-row mean squared error of per-row INT8_ASYM quantization; false if not finite.
bool int8_asym_error(DType dt, const void* data, int64_t rows, int64_t cols, double* out);

// ---- data-aware weight compression (wsearch.cpp); all arrays C-contiguous float32.
// AWQ grid search of one group: w (rows x g), x (g x n), s and floor (g), alphas (na).
// out[a] = mean over rows and samples of |sum_k (w_k - deq(w_k c_k) / c_k) x_kn| with
// c = max(s^alpha, floor) and each row of w * c quantized per row to `bits`.
void awq_errors(const float* w, int64_t rows, int64_t g, const float* x, int64_t n, const float* s,
                const float* floor, const float* alphas, int64_t na, int bits, bool sym, double* out);
// Scale estimation: w (rows x cols), x (cols x n), scale and zp (rows x groups; zp null
// for sym). out (rows x groups) = mean over samples of (sum_{k in group} (w_k - deq_k) x_kn)^2.
void group_output_error(const float* w, int64_t rows, int64_t cols, const float* x, int64_t n, const float* scale,
                        const float* zp, int64_t groups, int bits, bool sym, double* out);

}  // namespace ovq
