/* The Euler loop of model.inference.FastRecurrence: z <- z + eps * tanh(x_t U^T + b + z B^T) for all t,
   in one call. model/inference.py builds it (-O3 -march=native, or prebuilt portable levels) and loads it with
   ctypes; its docstring explains the blocking. Plain C11 with GCC vector types, no other headers. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

typedef float v8 __attribute__((vector_size(32), aligned(32)));

/* tanh as Eigen's ptanh_float: odd 13/6 rational minimax fit on [-7.9, 7.9] (|rel. error| < 1e-6). */
static inline float afrnn_tanh(float x) {
    const float c = 7.90531110763549805f;
    x = x < -c ? -c : (x > c ? c : x);
    const float x2 = x * x;
    float p = -2.76076847742355e-16f;
    p = p * x2 + 2.00018790482477e-13f;
    p = p * x2 - 8.60467152213735e-11f;
    p = p * x2 + 5.12229709037114e-08f;
    p = p * x2 + 1.48572235717979e-05f;
    p = p * x2 + 6.37261928875436e-04f;
    p = p * x2 + 4.89352455891786e-03f;
    float q = 1.19825839466702e-06f;
    q = q * x2 + 1.18534705686654e-04f;
    q = q * x2 + 2.26843463243900e-03f;
    q = q * x2 + 4.89352518554385e-03f;
    return x * p / q;
}

#define VL 8           /* floats per vector, and columns per packed panel of Bᵀ */
#define MR 6           /* most rows per register block */
#define NV 8           /* most panels per register block */

/* One Euler step for rows [0, mr) and panels [p0, p0 + nv) of a row block; mr and nv are
   compile-time constants at every call site, so that the mr × nv accumulators live in registers:
       znew[r][j] = zold[r][j] + eps · tanh(dbuf[r][j] + Σ_k zold[r][k] · Bᵀ[k][j]).
   zold, znew, dbuf: (MR, dp) row-major, 32-byte aligned; bp: Bᵀ packed as (dp/VL, d, VL). */
static inline __attribute__((always_inline)) void step_group(
        const int mr, const int nv, int64_t p0, const float *restrict zold, float *restrict znew,
        const float *restrict dbuf, const float *restrict bp, int64_t d, int64_t dp, float eps) {
    v8 acc[MR][NV];
    for (int r = 0; r < mr; ++r)
        for (int v = 0; v < nv; ++v) acc[r][v] = *(const v8 *)(dbuf + r * dp + (p0 + v) * VL);
    const float *restrict panel = bp + p0 * d * VL;
    for (int64_t k = 0; k < d; ++k) {
        v8 b[NV];
        for (int v = 0; v < nv; ++v) b[v] = *(const v8 *)(panel + (v * d + k) * VL);
        for (int r = 0; r < mr; ++r) {
            const float zk = zold[r * dp + k];
            for (int v = 0; v < nv; ++v) acc[r][v] += zk * b[v];
        }
    }
    for (int r = 0; r < mr; ++r) {
        float tmp[NV * VL] __attribute__((aligned(32)));
        for (int v = 0; v < nv; ++v) *(v8 *)(tmp + v * VL) = acc[r][v];
        const float *restrict zo = zold + r * dp + p0 * VL;
        float *restrict zn = znew + r * dp + p0 * VL;
        for (int j = 0; j < nv * VL; ++j) zn[j] = zo[j] + eps * afrnn_tanh(tmp[j]);
    }
}

/* All steps for one block of mr rows (their states stay in L1 while Bᵀ streams from L2). The drive
   u_t = x_t Uᵀ + b of each row is formed in dbuf at every step (m FMAs per state entry, m ≪ d), so
   the (rows, T, d) drive is never written to memory. */
static inline __attribute__((always_inline)) void run_rows(
        const int mr, const int nv, const float *restrict x, float *restrict z,
        const float *restrict bp, const float *restrict ut, const float *restrict bias,
        float *restrict za, float *restrict zb, float *restrict dbuf,
        int64_t steps, int64_t d, int64_t m, int64_t dp, float eps) {
    const int64_t panels = dp / VL;
    for (int r = 0; r < mr; ++r) memcpy(za + r * dp, z + r * d, (size_t)d * sizeof(float));
    for (int64_t t = 0; t < steps; ++t) {
        for (int r = 0; r < mr; ++r) {
            const float *restrict xt = x + ((int64_t)r * steps + t) * m;
            float *restrict db = dbuf + r * dp;
            memcpy(db, bias, (size_t)d * sizeof(float));
            for (int64_t i = 0; i < m; ++i) {
                const float xi = xt[i];
                const float *restrict u = ut + i * d;
                for (int64_t j = 0; j < d; ++j) db[j] += xi * u[j];
            }
        }
        int64_t p = 0;
        for (; p + nv <= panels; p += nv) step_group(mr, nv, p, za, zb, dbuf, bp, d, dp, eps);
        for (; p < panels; ++p) step_group(mr, 1, p, za, zb, dbuf, bp, d, dp, eps);
        float *swap = za; za = zb; zb = swap;
    }
    for (int r = 0; r < mr; ++r) memcpy(z + r * d, za + r * dp, (size_t)d * sizeof(float));
}

/* z (n, d) is updated in place over t steps: z <- z + eps * tanh(x_t ut + bias + z B^T).
   x (n, steps, m) batch first; bp is B^T packed in panels of VL columns, (dp/VL, d, VL) with zeros
   beyond column d and 32-byte aligned (model.inference.pack_panels); ut (m, d) (= U transposed);
   bias (d); all contiguous float32. Returns 0, or -1 when the scratch buffer cannot be allocated. */
int afrnn_euler_loop(const float *restrict x, float *restrict z, const float *restrict bp,
                     const float *restrict ut, const float *restrict bias,
                     int64_t n, int64_t steps, int64_t d, int64_t m, float eps) {
    const int64_t dp = (d + VL - 1) / VL * VL;
    const size_t row_bytes = (size_t)(MR * dp) * sizeof(float);
    float *restrict work = (float *)aligned_alloc(64, (3 * row_bytes + 63) / 64 * 64);
    if (!work) return -1;
    memset(work, 0, 3 * row_bytes);
    float *za = work, *zb = work + MR * dp, *dbuf = work + 2 * MR * dp;
    for (int64_t r0 = 0; r0 < n; r0 += MR) {
        const float *xr = x + r0 * steps * m;
        float *zr = z + r0 * d;
        /* rows × panels per block: enough independent accumulators to hide the FMA latency, few
           enough (≤ 12, plus the panel loads and one broadcast) to stay within 16 vector registers */
        switch (n - r0 >= MR ? MR : (int)(n - r0)) {
            case 6: run_rows(6, 2, xr, zr, bp, ut, bias, za, zb, dbuf, steps, d, m, dp, eps); break;
            case 5: run_rows(5, 2, xr, zr, bp, ut, bias, za, zb, dbuf, steps, d, m, dp, eps); break;
            case 4: run_rows(4, 2, xr, zr, bp, ut, bias, za, zb, dbuf, steps, d, m, dp, eps); break;
            case 3: run_rows(3, 3, xr, zr, bp, ut, bias, za, zb, dbuf, steps, d, m, dp, eps); break;
            case 2: run_rows(2, 4, xr, zr, bp, ut, bias, za, zb, dbuf, steps, d, m, dp, eps); break;
            default: run_rows(1, 8, xr, zr, bp, ut, bias, za, zb, dbuf, steps, d, m, dp, eps); break;
        }
    }
    free(work);
    return 0;
}
