// cpu_ffi: a whole sparse cascade per batch tile, as XLA FFI custom calls for the CPU.
//
// Layout. A tile of B batch rows is held lane-major, act[lane][row], so one weighted edge
// (output i reads input j) is a B-wide multiply-add of whole rows with a scalar weight. This
// vectorises any gather table without shuffles, and every stage of the tile runs while its
// activations sit in cache. XLA's own lowering instead makes one memory pass per stage.
// The forward pass uses 8-row tiles: two ping-pong buffers of N * 8 * 4 B (128 KiB each at
// N = 4096) per thread stay in L2 even when two threads share a core's L2 (16-row tiles ran
// 0.47 ms per stage against 0.15). The backward pass uses 16-row tiles, which halve its
// horizontal sums (one per edge and tile, for dW): 28.6 ms against 43.2 ms at 8 rows (N = 4096,
// B = 1024, depth 12, 2 threads; benchmarks/README.md).
//
// Operands (built by kernels/cpu_ffi.py):
//   x        f32[B, n_in]          activations, row-major
//   weights  f32[W]                the stages' [n_out_s, fan_in_s] weights, flat, concatenated
//   tables   s32[T]                stage tables (same offsets as weights), then skip tables
//   layout   s32[D, 6]             per stage: n_in, n_out, fan_in, offset, skip_r, skip_offset
// Skip edges are the fixed mean over skip_r inputs (skip_r = 0: none), as in SparseCascade.
//
// The backward call recomputes the tile's forward pass, keeps every stage input of the tile
// (D * N * 16 floats, L2/L3 resident) and walks the stages in reverse: dx by scattering the
// cotangent along the same edges, dW by a 16-wide dot product per edge, summed per thread.

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

#include "xla/ffi/api/ffi.h"

namespace ffi = xla::ffi;

namespace {

constexpr int64_t kForwardRows = 8;
constexpr int64_t kBackwardRows = 16;
constexpr int kLayoutCols = 6;

// One lane row of a B-row tile. GCC's vector extension lowers it to whatever the -march target
// has (AVX-512, AVX2, SSE); tile rows are aligned to their size.
template <int64_t B>
struct Lanes {
  typedef float Row __attribute__((vector_size(B * sizeof(float)), aligned(B * sizeof(float))));
};

template <int64_t B>
inline typename Lanes<B>::Row& RowAt(float* tile, int64_t lane) {
  return *reinterpret_cast<typename Lanes<B>::Row*>(tile + lane * B);
}
template <int64_t B>
inline const typename Lanes<B>::Row& RowAt(const float* tile, int64_t lane) {
  return *reinterpret_cast<const typename Lanes<B>::Row*>(tile + lane * B);
}

inline float HorizontalSum(Lanes<16>::Row v) {
  v += __builtin_shufflevector(v, v, 8, 9, 10, 11, 12, 13, 14, 15, 0, 1, 2, 3, 4, 5, 6, 7);
  v += __builtin_shufflevector(v, v, 4, 5, 6, 7, 0, 1, 2, 3, 4, 5, 6, 7, 0, 1, 2, 3);
  v += __builtin_shufflevector(v, v, 2, 3, 0, 1, 2, 3, 0, 1, 2, 3, 0, 1, 2, 3, 0, 1);
  return v[0] + v[1];
}

struct Stage {
  int64_t n_in, n_out, fan_in, offset, skip_r, skip_offset;
};

// A float buffer aligned to 64 B, so each lane row starts on a cache line.
struct Aligned {
  float* data = nullptr;
  explicit Aligned(size_t count) {
    data = static_cast<float*>(std::aligned_alloc(64, ((count * 4 + 63) / 64) * 64));
  }
  ~Aligned() { std::free(data); }
  Aligned(const Aligned&) = delete;
  Aligned& operator=(const Aligned&) = delete;
};

ffi::Error ParseLayout(const ffi::Buffer<ffi::S32>& layout, int64_t weights_size,
                       int64_t tables_size, std::vector<Stage>* stages) {
  auto dims = layout.dimensions();
  if (dims.size() != 2 || dims[1] != kLayoutCols || dims[0] < 1) {
    return ffi::Error::InvalidArgument("cpu_cascade: layout must be s32[depth >= 1, 6]");
  }
  const int32_t* p = layout.typed_data();
  for (int64_t s = 0; s < dims[0]; ++s) {
    Stage st{p[6 * s], p[6 * s + 1], p[6 * s + 2], p[6 * s + 3], p[6 * s + 4], p[6 * s + 5]};
    bool ok = st.n_in > 0 && st.n_out > 0 && st.fan_in > 0 && st.offset >= 0 &&
              st.offset + st.n_out * st.fan_in <= weights_size && st.skip_r >= 0 &&
              st.skip_offset + st.n_out * st.skip_r <= tables_size;
    if (s > 0) ok = ok && st.n_in == (*stages)[s - 1].n_out;
    if (!ok) {
      return ffi::Error::InvalidArgument("cpu_cascade: layout row " + std::to_string(s) +
                                         " is inconsistent with the weights/tables sizes or "
                                         "with the previous stage's n_out");
    }
    stages->push_back(st);
  }
  return ffi::Error::Success();
}

// In-register transpose of a B x B block: round S swaps bit S of the row index with bit S of
// the column index, pairing rows i and i + S with two-source shuffles.
template <int S>
inline void TransposeRound(Lanes<8>::Row* r) {
  for (int i = 0; i < 8; ++i) {
    if (i & S) continue;
    const Lanes<8>::Row a = r[i], b = r[i + S];
    if constexpr (S == 1) {
      r[i] = __builtin_shufflevector(a, b, 0, 8, 2, 10, 4, 12, 6, 14);
      r[i + S] = __builtin_shufflevector(a, b, 1, 9, 3, 11, 5, 13, 7, 15);
    } else if constexpr (S == 2) {
      r[i] = __builtin_shufflevector(a, b, 0, 1, 8, 9, 4, 5, 12, 13);
      r[i + S] = __builtin_shufflevector(a, b, 2, 3, 10, 11, 6, 7, 14, 15);
    } else {
      r[i] = __builtin_shufflevector(a, b, 0, 1, 2, 3, 8, 9, 10, 11);
      r[i + S] = __builtin_shufflevector(a, b, 4, 5, 6, 7, 12, 13, 14, 15);
    }
  }
}

template <int S>
inline void TransposeRound(Lanes<16>::Row* r) {
  for (int i = 0; i < 16; ++i) {
    if (i & S) continue;
    const Lanes<16>::Row a = r[i], b = r[i + S];
    if constexpr (S == 1) {
      r[i] = __builtin_shufflevector(a, b, 0, 16, 2, 18, 4, 20, 6, 22, 8, 24, 10, 26, 12, 28, 14, 30);
      r[i + S] =
          __builtin_shufflevector(a, b, 1, 17, 3, 19, 5, 21, 7, 23, 9, 25, 11, 27, 13, 29, 15, 31);
    } else if constexpr (S == 2) {
      r[i] = __builtin_shufflevector(a, b, 0, 1, 16, 17, 4, 5, 20, 21, 8, 9, 24, 25, 12, 13, 28, 29);
      r[i + S] =
          __builtin_shufflevector(a, b, 2, 3, 18, 19, 6, 7, 22, 23, 10, 11, 26, 27, 14, 15, 30, 31);
    } else if constexpr (S == 4) {
      r[i] = __builtin_shufflevector(a, b, 0, 1, 2, 3, 16, 17, 18, 19, 8, 9, 10, 11, 24, 25, 26, 27);
      r[i + S] =
          __builtin_shufflevector(a, b, 4, 5, 6, 7, 20, 21, 22, 23, 12, 13, 14, 15, 28, 29, 30, 31);
    } else {
      r[i] = __builtin_shufflevector(a, b, 0, 1, 2, 3, 4, 5, 6, 7, 16, 17, 18, 19, 20, 21, 22, 23);
      r[i + S] =
          __builtin_shufflevector(a, b, 8, 9, 10, 11, 12, 13, 14, 15, 24, 25, 26, 27, 28, 29, 30, 31);
    }
  }
}

template <int64_t B>
inline void TransposeBlock(typename Lanes<B>::Row* r) {
  TransposeRound<1>(r);
  TransposeRound<2>(r);
  TransposeRound<4>(r);
  if constexpr (B == 16) TransposeRound<8>(r);
}

// x[b0:b0+rows, :n] -> tile[n][B], zero-filling rows >= `rows` (the batch's last tile). Full
// B x B blocks go through registers; a last partial block of columns is copied element-wise.
template <int64_t B>
void LoadTile(const float* __restrict x, int64_t n, int64_t b0, int64_t rows,
              float* __restrict tile) {
  typename Lanes<B>::Row block[B];
  const int64_t full = n - n % B;
  for (int64_t j0 = 0; j0 < full; j0 += B) {
    for (int64_t r = 0; r < B; ++r) {
      if (r < rows) {
        std::memcpy(&block[r], x + (b0 + r) * n + j0, sizeof(block[0]));
      } else {
        block[r] = typename Lanes<B>::Row{};
      }
    }
    TransposeBlock<B>(block);
    for (int64_t c = 0; c < B; ++c) RowAt<B>(tile, j0 + c) = block[c];
  }
  for (int64_t j = full; j < n; ++j) {
    typename Lanes<B>::Row column = {};
    for (int64_t r = 0; r < rows; ++r) column[r] = x[(b0 + r) * n + j];
    RowAt<B>(tile, j) = column;
  }
}

template <int64_t B>
void StoreTile(const float* __restrict tile, int64_t n, int64_t b0, int64_t rows,
               float* __restrict y) {
  typename Lanes<B>::Row block[B];
  const int64_t full = n - n % B;
  for (int64_t j0 = 0; j0 < full; j0 += B) {
    for (int64_t c = 0; c < B; ++c) block[c] = RowAt<B>(tile, j0 + c);
    TransposeBlock<B>(block);
    for (int64_t r = 0; r < rows; ++r) std::memcpy(y + (b0 + r) * n + j0, &block[r], sizeof(block[0]));
  }
  for (int64_t j = full; j < n; ++j) {
    const typename Lanes<B>::Row column = RowAt<B>(tile, j);
    for (int64_t r = 0; r < rows; ++r) y[(b0 + r) * n + j] = column[r];
  }
}

// out[i] = sum_k w[i,k] in[table[i,k]] + mean_r in[skip[i,r]], rows of B lanes. F > 0 fixes
// the fan-in at compile time (the common radices), so the edge loop unrolls.
template <int64_t B, int64_t F>
void StageForwardFixed(const Stage& st, const float* __restrict weights,
                       const int32_t* __restrict tables, const float* __restrict in,
                       float* __restrict out) {
  const int64_t fan_in = F > 0 ? F : st.fan_in;
  const float* w = weights + st.offset;
  const int32_t* t = tables + st.offset;
  const int32_t* sk = tables + st.skip_offset;
  const float inv_r = st.skip_r > 0 ? 1.0f / static_cast<float>(st.skip_r) : 0.0f;
  for (int64_t i = 0; i < st.n_out; ++i) {
    typename Lanes<B>::Row acc = {};
    for (int64_t k = 0; k < fan_in; ++k) acc += w[i * fan_in + k] * RowAt<B>(in, t[i * fan_in + k]);
    if (st.skip_r > 0) {
      typename Lanes<B>::Row sum = {};
      for (int64_t r = 0; r < st.skip_r; ++r) sum += RowAt<B>(in, sk[i * st.skip_r + r]);
      acc += inv_r * sum;
    }
    RowAt<B>(out, i) = acc;
  }
}

template <int64_t B>
void StageForward(const Stage& st, const float* weights, const int32_t* tables, const float* in,
                  float* out) {
  switch (st.fan_in) {
    case 2: return StageForwardFixed<B, 2>(st, weights, tables, in, out);
    case 4: return StageForwardFixed<B, 4>(st, weights, tables, in, out);
    case 8: return StageForwardFixed<B, 8>(st, weights, tables, in, out);
    case 16: return StageForwardFixed<B, 16>(st, weights, tables, in, out);
    default: return StageForwardFixed<B, 0>(st, weights, tables, in, out);
  }
}

// Runs fn(first_tile, end_tile, worker) on up to `threads` workers over contiguous tile ranges;
// worker 0 is the calling thread.
template <typename Fn>
void ParallelTiles(int64_t num_tiles, int64_t threads, Fn fn) {
  threads = std::max<int64_t>(1, std::min(threads, num_tiles));
  std::vector<std::thread> helpers;
  for (int64_t w = 1; w < threads; ++w) {
    const int64_t first = num_tiles * w / threads, end = num_tiles * (w + 1) / threads;
    helpers.emplace_back([=, &fn] { fn(first, end, w); });
  }
  fn(0, num_tiles / threads, 0);
  for (auto& helper : helpers) helper.join();
}

int64_t NumThreads() {
  if (const char* env = std::getenv("NF_CPU_THREADS")) {
    const int64_t n = std::atoll(env);
    if (n > 0) return n;
  }
  return std::max(1u, std::thread::hardware_concurrency());
}

int64_t MaxWidth(const std::vector<Stage>& stages) {
  int64_t width = stages.front().n_in;
  for (const Stage& st : stages) width = std::max(width, st.n_out);
  return width;
}

ffi::Error CheckActivations(const char* name, ffi::Span<const int64_t> dims, int64_t batch,
                            int64_t lanes) {
  if (dims.size() != 2 || dims[0] != batch || dims[1] != lanes) {
    return ffi::Error::InvalidArgument(std::string("cpu_cascade: ") + name + " must be f32[" +
                                       std::to_string(batch) + ", " + std::to_string(lanes) +
                                       "]");
  }
  return ffi::Error::Success();
}

// Parses the layout and checks the operands shared by both calls, including every table entry
// (traced per-model tables are data, and an index past its stage's input would read outside
// the tile): sets `stages` and `batch`.
ffi::Error ValidateCall(const ffi::Buffer<ffi::F32>& x, const ffi::Buffer<ffi::F32>& weights,
                        const ffi::Buffer<ffi::S32>& tables, const ffi::Buffer<ffi::S32>& layout,
                        std::vector<Stage>* stages, int64_t* batch) {
  if (auto err = ParseLayout(layout, weights.element_count(), tables.element_count(), stages);
      err.failure()) {
    return err;
  }
  if (x.dimensions().size() != 2) return ffi::Error::InvalidArgument("cpu_cascade: x must be 2-D");
  *batch = x.dimensions()[0];
  const int32_t* tp = tables.typed_data();
  for (size_t s = 0; s < stages->size(); ++s) {
    const Stage& st = (*stages)[s];
    const auto in_range = [&](int64_t offset, int64_t count) {
      for (int64_t e = offset; e < offset + count; ++e) {
        if (tp[e] < 0 || tp[e] >= st.n_in) return false;
      }
      return true;
    };
    if (!in_range(st.offset, st.n_out * st.fan_in) ||
        !in_range(st.skip_offset, st.n_out * st.skip_r)) {
      return ffi::Error::InvalidArgument("cpu_cascade: stage " + std::to_string(s) +
                                         " has a table entry outside [0, " +
                                         std::to_string(st.n_in) + ")");
    }
  }
  return CheckActivations("x", x.dimensions(), *batch, stages->front().n_in);
}

ffi::Error ForwardImpl(ffi::Buffer<ffi::F32> x, ffi::Buffer<ffi::F32> weights,
                       ffi::Buffer<ffi::S32> tables, ffi::Buffer<ffi::S32> layout,
                       ffi::ResultBuffer<ffi::F32> y) {
  std::vector<Stage> stages;
  int64_t batch = 0;
  if (auto err = ValidateCall(x, weights, tables, layout, &stages, &batch); err.failure()) {
    return err;
  }
  const int64_t n_in = stages.front().n_in, n_out = stages.back().n_out;
  if (auto err = CheckActivations("y", y->dimensions(), batch, n_out); err.failure()) return err;
  const float* xp = x.typed_data();
  const float* wp = weights.typed_data();
  const int32_t* tp = tables.typed_data();
  float* yp = y->typed_data();
  const int64_t width = MaxWidth(stages);
  constexpr int64_t B = kForwardRows;
  const int64_t num_tiles = (batch + B - 1) / B;
  ParallelTiles(num_tiles, NumThreads(), [&](int64_t first, int64_t end, int64_t worker) {
    // One allocation for both buffers, the second offset by a few cache lines (different per
    // worker): a precaution against the two buffers' rows sharing cache sets. Measured with it,
    // 5.1-7.7 ms forward at N = 4096, B = 1024, depth 12 (5.7 ms before): within the spread.
    const int64_t pad = 16 * (1 + 2 * worker);
    Aligned buffers(2 * width * B + pad * 2);
    for (int64_t tile = first; tile < end; ++tile) {
      const int64_t b0 = tile * B, rows = std::min(B, batch - b0);
      float *in = buffers.data + pad, *out = buffers.data + width * B + 2 * pad;
      LoadTile<B>(xp, n_in, b0, rows, in);
      for (const Stage& st : stages) {
        StageForward<B>(st, wp, tp, in, out);
        std::swap(in, out);
      }
      StoreTile<B>(in, n_out, b0, rows, yp);
    }
  });
  return ffi::Error::Success();
}

ffi::Error BackwardImpl(ffi::Buffer<ffi::F32> x, ffi::Buffer<ffi::F32> weights,
                        ffi::Buffer<ffi::S32> tables, ffi::Buffer<ffi::S32> layout,
                        ffi::Buffer<ffi::F32> g, ffi::ResultBuffer<ffi::F32> dx,
                        ffi::ResultBuffer<ffi::F32> dw) {
  std::vector<Stage> stages;
  int64_t batch = 0;
  if (auto err = ValidateCall(x, weights, tables, layout, &stages, &batch); err.failure()) {
    return err;
  }
  const int64_t n_in = stages.front().n_in, n_out = stages.back().n_out;
  if (auto err = CheckActivations("g", g.dimensions(), batch, n_out); err.failure()) return err;
  if (auto err = CheckActivations("dx", dx->dimensions(), batch, n_in); err.failure()) return err;
  const int64_t num_weights = weights.element_count();
  if (dw->element_count() != static_cast<size_t>(num_weights)) {
    return ffi::Error::InvalidArgument("cpu_cascade: dw must have as many entries as weights");
  }
  const float* xp = x.typed_data();
  const float* wp = weights.typed_data();
  const int32_t* tp = tables.typed_data();
  const float* gp = g.typed_data();
  float* dxp = dx->typed_data();
  float* dwp = dw->typed_data();
  const int64_t depth = static_cast<int64_t>(stages.size());
  const int64_t width = MaxWidth(stages);
  constexpr int64_t B = kBackwardRows;
  std::vector<int64_t> act_offset(depth + 1, 0);  // tile-local input of each stage
  for (int64_t s = 0; s < depth; ++s) act_offset[s + 1] = act_offset[s] + stages[s].n_in * B;
  const int64_t num_tiles = (batch + B - 1) / B;
  const int64_t threads = std::max<int64_t>(1, std::min(NumThreads(), num_tiles));
  std::vector<std::vector<float>> partial(threads, std::vector<float>(num_weights, 0.0f));
  ParallelTiles(num_tiles, threads, [&](int64_t first, int64_t end, int64_t worker) {
    Aligned acts(act_offset[depth]), grad(width * B), grad_prev(width * B);
    float* dw_local = partial[worker].data();
    for (int64_t tile = first; tile < end; ++tile) {
      const int64_t b0 = tile * B, rows = std::min(B, batch - b0);
      LoadTile<B>(xp, n_in, b0, rows, acts.data);
      for (int64_t s = 0; s + 1 < depth; ++s) {
        StageForward<B>(stages[s], wp, tp, acts.data + act_offset[s], acts.data + act_offset[s + 1]);
      }
      float *gcur = grad.data, *gprev = grad_prev.data;
      LoadTile<B>(gp, n_out, b0, rows, gcur);
      for (int64_t s = depth - 1; s >= 0; --s) {
        const Stage& st = stages[s];
        const float* in = acts.data + act_offset[s];
        const float* w = wp + st.offset;
        const int32_t* t = tp + st.offset;
        const int32_t* sk = tp + st.skip_offset;
        const float inv_r = st.skip_r > 0 ? 1.0f / static_cast<float>(st.skip_r) : 0.0f;
        std::memset(gprev, 0, sizeof(float) * st.n_in * B);
        for (int64_t i = 0; i < st.n_out; ++i) {
          const Lanes<B>::Row gi = RowAt<B>(gcur, i);
          for (int64_t k = 0; k < st.fan_in; ++k) {
            const int64_t e = i * st.fan_in + k;
            const int64_t j = t[e];
            dw_local[st.offset + e] += HorizontalSum(gi * RowAt<B>(in, j));
            RowAt<B>(gprev, j) += w[e] * gi;
          }
          for (int64_t r = 0; r < st.skip_r; ++r) RowAt<B>(gprev, sk[i * st.skip_r + r]) += inv_r * gi;
        }
        std::swap(gcur, gprev);
      }
      StoreTile<B>(gcur, n_in, b0, rows, dxp);
    }
  });
  std::fill(dwp, dwp + num_weights, 0.0f);
  for (const auto& part : partial) {
    for (int64_t e = 0; e < num_weights; ++e) dwp[e] += part[e];
  }
  return ffi::Error::Success();
}

}  // namespace

XLA_FFI_DEFINE_HANDLER_SYMBOL(NfCascadeForward, ForwardImpl,
                              ffi::Ffi::Bind()
                                  .Arg<ffi::Buffer<ffi::F32>>()
                                  .Arg<ffi::Buffer<ffi::F32>>()
                                  .Arg<ffi::Buffer<ffi::S32>>()
                                  .Arg<ffi::Buffer<ffi::S32>>()
                                  .Ret<ffi::Buffer<ffi::F32>>());

XLA_FFI_DEFINE_HANDLER_SYMBOL(NfCascadeBackward, BackwardImpl,
                              ffi::Ffi::Bind()
                                  .Arg<ffi::Buffer<ffi::F32>>()
                                  .Arg<ffi::Buffer<ffi::F32>>()
                                  .Arg<ffi::Buffer<ffi::S32>>()
                                  .Arg<ffi::Buffer<ffi::S32>>()
                                  .Arg<ffi::Buffer<ffi::F32>>()
                                  .Ret<ffi::Buffer<ffi::F32>>()
                                  .Ret<ffi::Buffer<ffi::F32>>());
