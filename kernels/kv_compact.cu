// KV compaction as a pipeline of passes over destination slots.
//
// Moving kept slots to the front in place races when done in parallel: slot j may be the
// source of a lower destination and, in the same launch, be overwritten as destination j.
// So each pass P covers destinations [P*T, (P+1)*T) of every head, gathered into a scratch
// buffer first (reads only) and scattered to the front by the next launch (writes only).
// Launch L gathers pass L into buffer L % 2 and scatters pass L-1 from buffer (L-1) % 2; the
// two halves never touch the same cache slot, because keep lists are ascending (source >=
// destination): pass L reads slots >= L*T, pass L-1 writes slots < L*T. Later passes read only
// slots >= their own start, which no earlier pass wrote. A last tiny launch sets the lengths,
// so no launch both reads and writes a length.
#include <algorithm>
#include "device_common.cuh"
#include "launch.cuh"
#include <climits>

#include "kv_compact.cuh"

namespace kvlab::kernels {
namespace {

constexpr int kThreads = 256;
constexpr int32_t kNoMove = INT32_MIN;  // scratch position of a row the scatter must skip

struct Scratch {
  __nv_bfloat16* k[2];
  __nv_bfloat16* v[2];
  int32_t* position[2];
  float* score[2];
};

size_t align256(size_t b) { return (b + 255) / 256 * 256; }

// The scratch of one plan, carved out of `workspace` (or just sized, when it is null).
size_t carve(const KvCompactArgs& a, int rows, void* workspace, Scratch* s) {
  const size_t rows_total = size_t(a.kv_heads) * rows;
  const size_t kv = align256(rows_total * a.head_dim * sizeof(__nv_bfloat16));
  const size_t meta = align256(rows_total * sizeof(int32_t));
  char* p = static_cast<char*>(workspace);
  size_t off = 0;
  for (int b = 0; b < 2; b++) {
    if (s) {
      s->k[b] = reinterpret_cast<__nv_bfloat16*>(p + off);
      s->v[b] = reinterpret_cast<__nv_bfloat16*>(p + off + kv);
      s->position[b] = reinterpret_cast<int32_t*>(p + off + 2 * kv);
      s->score[b] = reinterpret_cast<float*>(p + off + 2 * kv + meta);
    }
    off += 2 * kv + 2 * meta;
  }
  return off;
}

// W consecutive bf16 as one access: 16 bytes when W is 8.
template <int W>
struct alignas(W * sizeof(__nv_bfloat16)) Chunk {
  __nv_bfloat16 x[W];
};
template <int W>
__device__ __forceinline__ Chunk<W> load_chunk(const __nv_bfloat16* p) {
  if constexpr (W == 8) {
    const uint4 v = *reinterpret_cast<const uint4*>(p);
    return *reinterpret_cast<const Chunk<8>*>(&v);
  } else {
    return *reinterpret_cast<const Chunk<W>*>(p);
  }
}
template <int W>
__device__ __forceinline__ void store_chunk(__nv_bfloat16* p, const Chunk<W>& c) {
  if constexpr (W == 8) {
    *reinterpret_cast<uint4*>(p) = *reinterpret_cast<const uint4*>(&c);
  } else {
    *reinterpret_cast<Chunk<W>*>(p) = c;
  }
}

// Thread e of a role handles head e / (T * cpr), row (e / cpr) % T and, of that row, the W
// dims starting at c*W in each half of the key (c = e % cpr), so a rotated pair stays in one
// thread. blockIdx.y: 0 gathers pass `pass`, 1 scatters pass `pass - 1`.
template <int W>
__global__ void __launch_bounds__(kThreads)
    kv_compact_kernel(KvCompactArgs a, Scratch s, int rows, int pass, int passes) {
  enter_dependent_part();
  const int cpr = a.head_dim / 2 / W;
  const bool gather = blockIdx.y == 0;
  const int p = gather ? pass : pass - 1;
  if (p < 0 || p >= passes) return;
  const int64_t e = int64_t(blockIdx.x) * kThreads + threadIdx.x;
  if (e >= int64_t(a.kv_heads) * rows * cpr) return;
  const int h = int(e / (int64_t(rows) * cpr));
  const int row = int(e / cpr % rows), c = int(e % cpr);
  const int dst = p * rows + row;
  if (dst >= a.capacity) return;
  const int64_t head_slots = int64_t(h) * a.capacity;
  const int64_t srow = int64_t(h) * rows + row;  // scratch row
  __nv_bfloat16* sk = s.k[p % 2] + srow * a.head_dim;
  __nv_bfloat16* sv = s.v[p % 2] + srow * a.head_dim;
  const int count = a.count[h];
  const int32_t* keep = a.keep + int64_t(h) * a.keep_stride;
  // This head's rows: K of `width` channels (the lanes past half of it move only V), V or none.
  const int width = a.width ? a.width[h] : a.head_dim, half = width / 2;
  const bool has_k = c * W < half;
  __nv_bfloat16* k_rows = a.k + (a.k_offset ? a.k_offset[h] : head_slots * a.head_dim);
  __nv_bfloat16* v_rows = a.v_row ? (a.v_row[h] < 0 ? nullptr : a.v + int64_t(a.v_row[h]) * a.capacity * a.head_dim)
                                  : a.v + head_slots * a.head_dim;
  const int vhalf = a.head_dim / 2;

  if (gather) {
    if (dst >= count) return;
    if (count > a.keep_width) {
      if (c == 0) *a.error = 1;
      return;
    }
    const int src = keep[dst];
    const bool ok = src >= dst && src < a.length[h] && (dst == 0 || keep[dst - 1] < src);
    if (!ok && c == 0) *a.error = 1;
    // A key rotated at index i, rotated by `turn`, sits rotated at index i + turn.
    const int turn =
        a.inv_freq && width > 0 ? dst - src + (a.shift && dst >= a.shift[2 * h] ? a.shift[2 * h + 1] : 0) : 0;
    if (!ok || (src == dst && turn == 0)) {
      if (c == 0) s.position[p % 2][srow] = kNoMove;
      return;
    }
    if (v_rows) {
      const __nv_bfloat16* v = v_rows + int64_t(src) * a.head_dim;
      store_chunk<W>(sv + c * W, load_chunk<W>(v + c * W));
      store_chunk<W>(sv + vhalf + c * W, load_chunk<W>(v + vhalf + c * W));
    }
    if (has_k) {
      const __nv_bfloat16* k = k_rows + int64_t(src) * width;
      Chunk<W> k0 = load_chunk<W>(k + c * W), k1 = load_chunk<W>(k + half + c * W);
      if (turn != 0) {
#pragma unroll
        for (int w = 0; w < W; w++) {
          const int j = c * W + w;
          float sn, cs;
          sincosf(float(turn) * a.inv_freq[a.channels ? a.channels[h * a.head_dim + j] : j], &sn, &cs);
          const float x = __bfloat162float(k0.x[w]), y = __bfloat162float(k1.x[w]);
          k0.x[w] = __float2bfloat16_rn(x * cs - y * sn);
          k1.x[w] = __float2bfloat16_rn(y * cs + x * sn);
        }
      }
      store_chunk<W>(sk + c * W, k0);
      store_chunk<W>(sk + half + c * W, k1);
    }
    if (c == 0) {
      s.position[p % 2][srow] = a.position[head_slots + src];
      if (a.score) s.score[p % 2][srow] = a.score[head_slots + src];
    }
    return;
  }

  if (dst >= count) {
    if (c == 0 && a.score) a.score[head_slots + dst] = 0.0f;
    return;
  }
  const int32_t position = s.position[p % 2][srow];
  if (position == kNoMove) return;
  if (has_k) {
    __nv_bfloat16* k = k_rows + int64_t(dst) * width;
    store_chunk<W>(k + c * W, load_chunk<W>(sk + c * W));
    store_chunk<W>(k + half + c * W, load_chunk<W>(sk + half + c * W));
  }
  if (v_rows) {
    __nv_bfloat16* v = v_rows + int64_t(dst) * a.head_dim;
    store_chunk<W>(v + c * W, load_chunk<W>(sv + c * W));
    store_chunk<W>(v + vhalf + c * W, load_chunk<W>(sv + vhalf + c * W));
  }
  if (c == 0) {
    a.position[head_slots + dst] = position;
    if (a.score) a.score[head_slots + dst] = s.score[p % 2][srow];
  }
}

__global__ void set_length_kernel(KvCompactArgs a) {
  enter_dependent_part();
  for (int h = threadIdx.x; h < a.kv_heads; h += blockDim.x) {
    const int count = a.count[h];
    if (count < 0 || count > a.length[h]) *a.error = 1;
    a.length[h] = min(max(count, 0), a.length[h]);
  }
}

template <int W>
cudaError_t launch_passes(const KvCompactArgs& a, const KvCompactPlan& plan, const Scratch& s, cudaStream_t stream) {
  const int64_t threads = int64_t(a.kv_heads) * plan.rows_per_pass * (a.head_dim / 2 / W);
  const dim3 grid(unsigned((threads + kThreads - 1) / kThreads), 2);
  for (int pass = 0; pass <= plan.passes; pass++)
    if (const cudaError_t err =
            launch(kv_compact_kernel<W>, grid, kThreads, 0, stream, a, s, plan.rows_per_pass, pass, plan.passes);
        err != cudaSuccess)
      return err;
  return cudaSuccess;
}

}  // namespace

bool kv_compact_supports(int head_dim) { return head_dim > 0 && head_dim % 2 == 0; }

KvCompactPlan kv_compact_plan(int kv_heads, int head_dim, int capacity, size_t max_workspace_bytes) {
  KvCompactArgs a{};
  a.kv_heads = kv_heads;
  a.head_dim = head_dim;
  const size_t per_row = std::max<size_t>(1, carve(a, 1, nullptr, nullptr));
  KvCompactPlan plan;
  plan.rows_per_pass =
      int(std::min<size_t>(size_t(std::max(capacity, 1)), std::max<size_t>(64, max_workspace_bytes / per_row)));
  plan.passes = (capacity + plan.rows_per_pass - 1) / plan.rows_per_pass;
  plan.workspace_bytes = carve(a, plan.rows_per_pass, nullptr, nullptr);
  return plan;
}

cudaError_t kv_compact(const KvCompactArgs& a, const KvCompactPlan& plan, void* workspace, cudaStream_t stream) {
  if (!kv_compact_supports(a.head_dim) || a.kv_heads <= 0 || !workspace) return cudaErrorInvalidValue;
  Scratch s;
  carve(a, plan.rows_per_pass, workspace, &s);
  const cudaError_t err =
      a.head_dim % 16 == 0 ? launch_passes<8>(a, plan, s, stream) : launch_passes<1>(a, plan, s, stream);
  if (err != cudaSuccess) return err;
  return launch(set_length_kernel, 1, 32, 0, stream, a);
}

}  // namespace kvlab::kernels
