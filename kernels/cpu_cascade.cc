// cpu_ffi: a whole sparse cascade per batch tile, as XLA FFI custom calls for the CPU.
//
// Layout. A tile of BT batch rows is held lane-major, act[lane][row], so one weighted edge
// (output i reads input j) is a BT-wide multiply-add of whole rows with a scalar weight. This
// vectorises any gather table without shuffles, and every stage of the tile runs while its
// activations sit in cache (N * BT * 4 B = 256 KiB at N = 4096). XLA's own lowering instead
// makes one memory pass per stage.
//
// Operands (built by kernels/cpu_ffi.py):
//   x        f32[B, n_in]          activations, row-major
//   weights  f32[W]                the stages' [n_out_s, fan_in_s] weights, flat, concatenated
//   tables   s32[T]                stage tables (same offsets as weights), then skip tables
//   layout   s32[D, 6]             per stage: n_in, n_out, fan_in, offset, skip_r, skip_offset
// Skip edges are the fixed mean over skip_r inputs (skip_r = 0: none), as in SparseCascade.
//
// The backward call recomputes the tile's forward pass, keeps every stage input of the tile
// (D * N * BT floats, L2/L3 resident) and walks the stages in reverse: dx by scattering the
// cotangent along the same edges, dW by a BT-wide dot product per edge, summed per thread.

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

constexpr int64_t BT = 16;  // batch rows per tile: one AVX-512 register of float32
constexpr int kLayoutCols = 6;

// One lane row of a tile. GCC's vector extension lowers it to whatever the -march target has
// (one AVX-512 register, two AVX2 ones, ...); tile rows are 64-byte aligned.
typedef float Row __attribute__((vector_size(BT * sizeof(float)), aligned(64)));
static_assert(BT == 16, "HorizontalSum's shuffles assume 16 lanes");

inline Row& RowAt(float* tile, int64_t lane) { return *reinterpret_cast<Row*>(tile + lane * BT); }
inline const Row& RowAt(const float* tile, int64_t lane) {
  return *reinterpret_cast<const Row*>(tile + lane * BT);
}

inline float HorizontalSum(Row v) {
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

// x[b0:b0+rows, :n] -> tile[n][BT], zero-filling rows >= `rows` (the batch's last tile).
// Blocks of BT x BT: whole cache lines are read from x and written to the tile.
void LoadTile(const float* __restrict x, int64_t n, int64_t b0, int64_t rows,
              float* __restrict tile) {
  float block[BT][BT];
  for (int64_t j0 = 0; j0 < n; j0 += BT) {
    const int64_t cols = std::min(BT, n - j0);
    for (int64_t r = 0; r < BT; ++r) {
      for (int64_t c = 0; c < BT; ++c) {
        block[r][c] = (r < rows && c < cols) ? x[(b0 + r) * n + j0 + c] : 0.0f;
      }
    }
    for (int64_t c = 0; c < cols; ++c) {
      for (int64_t r = 0; r < BT; ++r) tile[(j0 + c) * BT + r] = block[r][c];
    }
  }
}

void StoreTile(const float* __restrict tile, int64_t n, int64_t b0, int64_t rows,
               float* __restrict y) {
  float block[BT][BT];
  for (int64_t j0 = 0; j0 < n; j0 += BT) {
    const int64_t cols = std::min(BT, n - j0);
    for (int64_t c = 0; c < cols; ++c) {
      for (int64_t r = 0; r < BT; ++r) block[r][c] = tile[(j0 + c) * BT + r];
    }
    for (int64_t r = 0; r < rows; ++r) {
      for (int64_t c = 0; c < cols; ++c) y[(b0 + r) * n + j0 + c] = block[r][c];
    }
  }
}

// out[i] = sum_k w[i,k] in[table[i,k]] + mean_r in[skip[i,r]], rows of BT lanes.
void StageForward(const Stage& st, const float* __restrict weights,
                  const int32_t* __restrict tables, const float* __restrict in,
                  float* __restrict out) {
  const float* w = weights + st.offset;
  const int32_t* t = tables + st.offset;
  const int32_t* sk = tables + st.skip_offset;
  const float inv_r = st.skip_r > 0 ? 1.0f / static_cast<float>(st.skip_r) : 0.0f;
  for (int64_t i = 0; i < st.n_out; ++i) {
    Row acc = {};
    for (int64_t k = 0; k < st.fan_in; ++k) {
      acc += w[i * st.fan_in + k] * RowAt(in, t[i * st.fan_in + k]);
    }
    if (st.skip_r > 0) {
      Row sum = {};
      for (int64_t r = 0; r < st.skip_r; ++r) sum += RowAt(in, sk[i * st.skip_r + r]);
      acc += inv_r * sum;
    }
    RowAt(out, i) = acc;
  }
}

// Runs fn(first_tile, end_tile, worker) on up to `threads` workers over contiguous tile ranges.
template <typename Fn>
void ParallelTiles(int64_t num_tiles, int64_t threads, Fn fn) {
  threads = std::max<int64_t>(1, std::min(threads, num_tiles));
  if (threads == 1) {
    fn(0, num_tiles, 0);
    return;
  }
  std::vector<std::thread> pool;
  for (int64_t w = 0; w < threads; ++w) {
    const int64_t first = num_tiles * w / threads, end = num_tiles * (w + 1) / threads;
    pool.emplace_back([=, &fn] { fn(first, end, w); });
  }
  for (auto& th : pool) th.join();
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

ffi::Error ForwardImpl(ffi::Buffer<ffi::F32> x, ffi::Buffer<ffi::F32> weights,
                       ffi::Buffer<ffi::S32> tables, ffi::Buffer<ffi::S32> layout,
                       ffi::ResultBuffer<ffi::F32> y) {
  std::vector<Stage> stages;
  if (auto err = ParseLayout(layout, weights.element_count(), tables.element_count(), &stages);
      err.failure()) {
    return err;
  }
  if (x.dimensions().size() != 2) return ffi::Error::InvalidArgument("cpu_cascade: x must be 2-D");
  const int64_t batch = x.dimensions()[0];
  const int64_t n_in = stages.front().n_in, n_out = stages.back().n_out;
  if (auto err = CheckActivations("x", x.dimensions(), batch, n_in); err.failure()) return err;
  if (auto err = CheckActivations("y", y->dimensions(), batch, n_out); err.failure()) return err;
  const float* xp = x.typed_data();
  const float* wp = weights.typed_data();
  const int32_t* tp = tables.typed_data();
  float* yp = y->typed_data();
  const int64_t width = MaxWidth(stages);
  const int64_t num_tiles = (batch + BT - 1) / BT;
  ParallelTiles(num_tiles, NumThreads(), [&](int64_t first, int64_t end, int64_t) {
    Aligned ping(width * BT), pong(width * BT);
    for (int64_t tile = first; tile < end; ++tile) {
      const int64_t b0 = tile * BT, rows = std::min(BT, batch - b0);
      float *in = ping.data, *out = pong.data;
      LoadTile(xp, n_in, b0, rows, in);
      for (const Stage& st : stages) {
        StageForward(st, wp, tp, in, out);
        std::swap(in, out);
      }
      StoreTile(in, n_out, b0, rows, yp);
    }
  });
  return ffi::Error::Success();
}

ffi::Error BackwardImpl(ffi::Buffer<ffi::F32> x, ffi::Buffer<ffi::F32> weights,
                        ffi::Buffer<ffi::S32> tables, ffi::Buffer<ffi::S32> layout,
                        ffi::Buffer<ffi::F32> g, ffi::ResultBuffer<ffi::F32> dx,
                        ffi::ResultBuffer<ffi::F32> dw) {
  std::vector<Stage> stages;
  if (auto err = ParseLayout(layout, weights.element_count(), tables.element_count(), &stages);
      err.failure()) {
    return err;
  }
  if (x.dimensions().size() != 2) return ffi::Error::InvalidArgument("cpu_cascade: x must be 2-D");
  const int64_t batch = x.dimensions()[0];
  const int64_t n_in = stages.front().n_in, n_out = stages.back().n_out;
  if (auto err = CheckActivations("x", x.dimensions(), batch, n_in); err.failure()) return err;
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
  std::vector<int64_t> act_offset(depth + 1, 0);  // tile-local input of each stage
  for (int64_t s = 0; s < depth; ++s) act_offset[s + 1] = act_offset[s] + stages[s].n_in * BT;
  const int64_t num_tiles = (batch + BT - 1) / BT;
  const int64_t threads = std::max<int64_t>(1, std::min(NumThreads(), num_tiles));
  std::vector<std::vector<float>> partial(threads, std::vector<float>(num_weights, 0.0f));
  ParallelTiles(num_tiles, threads, [&](int64_t first, int64_t end, int64_t worker) {
    Aligned acts(act_offset[depth]), grad(width * BT), grad_prev(width * BT);
    float* dw_local = partial[worker].data();
    for (int64_t tile = first; tile < end; ++tile) {
      const int64_t b0 = tile * BT, rows = std::min(BT, batch - b0);
      LoadTile(xp, n_in, b0, rows, acts.data);
      for (int64_t s = 0; s + 1 < depth; ++s) {
        StageForward(stages[s], wp, tp, acts.data + act_offset[s], acts.data + act_offset[s + 1]);
      }
      float *gcur = grad.data, *gprev = grad_prev.data;
      LoadTile(gp, n_out, b0, rows, gcur);
      for (int64_t s = depth - 1; s >= 0; --s) {
        const Stage& st = stages[s];
        const float* in = acts.data + act_offset[s];
        const float* w = wp + st.offset;
        const int32_t* t = tp + st.offset;
        const int32_t* sk = tp + st.skip_offset;
        const float inv_r = st.skip_r > 0 ? 1.0f / static_cast<float>(st.skip_r) : 0.0f;
        std::memset(gprev, 0, sizeof(float) * st.n_in * BT);
        for (int64_t i = 0; i < st.n_out; ++i) {
          const Row gi = RowAt(gcur, i);
          for (int64_t k = 0; k < st.fan_in; ++k) {
            const int64_t e = i * st.fan_in + k;
            const int64_t j = t[e];
            dw_local[st.offset + e] += HorizontalSum(gi * RowAt(in, j));
            RowAt(gprev, j) += w[e] * gi;
          }
          for (int64_t r = 0; r < st.skip_r; ++r) RowAt(gprev, sk[i * st.skip_r + r]) += inv_r * gi;
        }
        std::swap(gcur, gprev);
      }
      StoreTile(gcur, n_in, b0, rows, dxp);
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
