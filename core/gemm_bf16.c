/*
 * gemm_bf16.c: bf16 products through oneDNN's matmul primitive (gemm_bf16.h).
 *
 * State (owned here, for the life of the process): one CPU engine and
 * stream; the shape cache (primitive + memory objects per shape); one
 * scratchpad buffer shared by every primitive (oneDNN's user scratchpad
 * mode), sized to the largest one any primitive asked for; one bf16 buffer
 * for gemm_bf16_f32a's converted A.
 */
#include <dnnl.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/alloc.h"
#include "core/log.h"
#include "core/parallel.h"
#include "core/gemm_bf16.h"
#include "core/status.h"
#include "core/timer.h"

struct gemm_shape {
    size_t M, N, K;
    enum gemm_bf16_b_layout b_layout;
    int accumulate;                  /* beta == 1: oneDNN's sum post-op */
    int a_transposed;                /* op(A) = A^T: A stored [K,M]     */
    size_t ldc;                      /* C's row stride (N unless given) */
    float alpha;                     /* oneDNN's output scale           */
};

struct gemm_entry {
    struct gemm_shape shape;
    dnnl_primitive_t prim;           /* NULL: oneDNN offered only ref:any */
    dnnl_memory_t src, wei, dst, scratch;   /* handles set per call */
    char impl[64];
};

static struct {
    int initialised;
    dnnl_engine_t engine;
    dnnl_stream_t stream;
    struct gemm_entry entries[GEMM_BF16_MAX_SHAPES];
    size_t n_entries;
    void *scratchpad;                /* 64-byte aligned, scratchpad_bytes */
    size_t scratchpad_bytes;
    bf16 *a_buf;                     /* gemm_bf16_f32a's A, a_cap elements */
    size_t a_cap;
    bf16 *b_buf;                     /* gemm_bf16_mm's B, b_cap elements */
    size_t b_cap;
    struct gemm_bf16_stats stats;
    char probe_impl[64];
} g;

static int dnnl_fail(const char *what, dnnl_status_t st)
{
    return rl_error_set(RL_ERR, "oneDNN: %s failed (status %d)", what, (int)st);
}

static int gemm_init(void)
{
    dnnl_status_t st;

    if (g.initialised)
        return RL_OK;
    st = dnnl_engine_create(&g.engine, dnnl_cpu, 0);
    if (st != dnnl_success)
        return dnnl_fail("engine creation", st);
    st = dnnl_stream_create(&g.stream, g.engine, dnnl_stream_default_flags);
    if (st != dnnl_success) {
        dnnl_engine_destroy(g.engine);
        return dnnl_fail("stream creation", st);
    }
    g.initialised = 1;
    return RL_OK;
}

const char *gemm_bf16_isa(void)
{
    switch (dnnl_get_effective_cpu_isa()) {
    case dnnl_cpu_isa_sse41:            return "sse41";
    case dnnl_cpu_isa_avx:              return "avx";
    case dnnl_cpu_isa_avx2:             return "avx2";
    case dnnl_cpu_isa_avx2_vnni:        return "avx2_vnni";
    case dnnl_cpu_isa_avx512_mic:       return "avx512_mic";
    case dnnl_cpu_isa_avx512_mic_4ops:  return "avx512_mic_4ops";
    case dnnl_cpu_isa_avx512_core:      return "avx512_core";
    case dnnl_cpu_isa_avx512_core_vnni: return "avx512_core_vnni";
    case dnnl_cpu_isa_avx512_core_bf16: return "avx512_core_bf16";
    case dnnl_cpu_isa_avx512_core_amx:  return "avx512_core_amx";
    default:                            return "unknown";
    }
}

/* bf16 instructions in hardware (AVX512-BF16 or AMX), not emulated */
static int isa_has_bf16(void)
{
    dnnl_cpu_isa_t isa = dnnl_get_effective_cpu_isa();

    return isa == dnnl_cpu_isa_avx512_core_bf16 || isa == dnnl_cpu_isa_avx512_core_amx;
}

/* bf16 instructions, but not AMX's: bf16 products slower than fp32's */
static int isa_without_amx(void)
{
    return dnnl_get_effective_cpu_isa() == dnnl_cpu_isa_avx512_core_bf16;
}

static int shape_eq(const struct gemm_shape *a, const struct gemm_shape *b)
{
    return a->M == b->M && a->N == b->N && a->K == b->K && a->b_layout == b->b_layout &&
           a->accumulate == b->accumulate && a->a_transposed == b->a_transposed &&
           a->ldc == b->ldc && a->alpha == b->alpha;
}

/* A row-major [rows, cols] matrix, or its transpose (read [cols, rows]
 * memory as [rows, cols]), as a oneDNN memory descriptor. */
static dnnl_status_t md_2d(dnnl_memory_desc_t *md, size_t rows, size_t cols,
                           dnnl_data_type_t dt, int transposed)
{
    dnnl_dims_t dims = { (dnnl_dim_t)rows, (dnnl_dim_t)cols };
    dnnl_dims_t strides = { (dnnl_dim_t)cols, 1 };

    if (transposed) {
        strides[0] = 1;
        strides[1] = (dnnl_dim_t)rows;
    }
    return dnnl_memory_desc_init_by_strides(md, 2, dims, dt, strides);
}

static int grow_scratchpad(size_t bytes)
{
    void *p;

    if (bytes <= g.scratchpad_bytes)
        return RL_OK;
    p = xcalloc_aligned(bytes, 1);
    free(g.scratchpad);
    g.scratchpad = p;
    g.scratchpad_bytes = bytes;
    g.stats.scratchpad_bytes = bytes;
    return RL_OK;
}

/* Create the primitive and memory objects of e->shape (e->prim stays NULL
 * when oneDNN offers only its reference kernel). */
static int entry_create(struct gemm_entry *e)
{
    const struct gemm_shape *s = &e->shape;
    dnnl_memory_desc_t src_md, wei_md, dst_md;
    dnnl_matmul_desc_t desc;
    dnnl_primitive_attr_t attr = NULL;
    dnnl_post_ops_t ops = NULL;
    dnnl_primitive_desc_t pd = NULL;
    const dnnl_memory_desc_t *scratch_md;
    const char *impl = NULL;
    dnnl_status_t st;
    int rc = RL_OK;

    /* src [M,K]; weights [K,N]: B_KN as stored, B_NK read transposed; dst [M,N] */
    if ((st = md_2d(&src_md, s->M, s->K, dnnl_bf16, s->a_transposed)) != dnnl_success ||
        (st = md_2d(&wei_md, s->K, s->N, dnnl_bf16, s->b_layout == GEMM_BF16_B_NK)) != dnnl_success ||
        (st = dnnl_memory_desc_init_by_strides(&dst_md, 2, (dnnl_dims_t){ (dnnl_dim_t)s->M,
                                               (dnnl_dim_t)s->N }, dnnl_f32,
                                               (dnnl_dims_t){ (dnnl_dim_t)s->ldc, 1 })) != dnnl_success)
        return dnnl_fail("memory descriptor", st);
    if ((st = dnnl_matmul_desc_init(&desc, &src_md, &wei_md, NULL, &dst_md)) != dnnl_success)
        return dnnl_fail("matmul descriptor", st);
    if ((st = dnnl_primitive_attr_create(&attr)) != dnnl_success)
        return dnnl_fail("attribute creation", st);
    st = dnnl_primitive_attr_set_scratchpad_mode(attr, dnnl_scratchpad_mode_user);
    if (st == dnnl_success && s->alpha != 1.0f)
        st = dnnl_primitive_attr_set_output_scales(attr, 1, 0, &s->alpha);
    if (st == dnnl_success && s->accumulate) {
        st = dnnl_post_ops_create(&ops);
        if (st == dnnl_success)
            st = dnnl_post_ops_append_sum(ops, 1.0f);
        if (st == dnnl_success)
            st = dnnl_primitive_attr_set_post_ops(attr, ops);
    }
    if (st == dnnl_success)
        st = dnnl_primitive_desc_create(&pd, &desc, attr, g.engine, NULL);
    if (st != dnnl_success) {
        rc = dnnl_fail("matmul primitive descriptor", st);
        goto out;
    }
    dnnl_primitive_desc_query(pd, dnnl_query_impl_info_str, 0, (void *)&impl);
    snprintf(e->impl, sizeof(e->impl), "%s", impl ? impl : "unknown");
    if (!strncmp(e->impl, "ref", 3))
        goto out;                                  /* refused: see gemm_bf16_check */
    scratch_md = dnnl_primitive_desc_query_md(pd, dnnl_query_scratchpad_md, 0);
    grow_scratchpad(scratch_md ? dnnl_memory_desc_get_size(scratch_md) : 0);
    if ((st = dnnl_primitive_create(&e->prim, pd)) != dnnl_success ||
        (st = dnnl_memory_create(&e->src, &src_md, g.engine, DNNL_MEMORY_NONE)) != dnnl_success ||
        (st = dnnl_memory_create(&e->wei, &wei_md, g.engine, DNNL_MEMORY_NONE)) != dnnl_success ||
        (st = dnnl_memory_create(&e->dst, &dst_md, g.engine, DNNL_MEMORY_NONE)) != dnnl_success ||
        (scratch_md && (st = dnnl_memory_create(&e->scratch, scratch_md, g.engine,
                                                DNNL_MEMORY_NONE)) != dnnl_success)) {
        rc = dnnl_fail("matmul primitive creation", st);
        goto out;
    }
    g.stats.primitives_created++;
out:
    if (pd)
        dnnl_primitive_desc_destroy(pd);
    if (ops)
        dnnl_post_ops_destroy(ops);
    if (attr)
        dnnl_primitive_attr_destroy(attr);
    return rc;
}

static int refuse_isa(void)
{
    return rl_error_set(RL_ERR_NA,
                        "bf16 GEMMs need a CPU with AVX512-BF16 or AMX; oneDNN reports isa %s "
                        "(bf16 there is emulated or unavailable, slower than fp32): use precision fp32",
                        gemm_bf16_isa());
}

static int refuse_impl(const char *impl)
{
    return rl_error_set(RL_ERR_NA,
                        "bf16 GEMMs: oneDNN offers only its reference kernel (%s) on this CPU "
                        "(isa %s): use precision fp32", impl, gemm_bf16_isa());
}

/* RANDLORA_BF16_NO_AMX=1: run bf16 on AVX512-BF16 without AMX anyway */
static int no_amx_allowed(void)
{
    const char *v = getenv("RANDLORA_BF16_NO_AMX");

    return v && !strcmp(v, "1");
}

/* RL_OK where bf16 products may run (the rule in gemm_bf16.h), else the
 * refusal */
static int isa_allowed(void)
{
    if (!isa_has_bf16())
        return refuse_isa();
    if (isa_without_amx() && !no_amx_allowed())
        return rl_error_set(RL_ERR_NA,
                            "bf16 GEMMs: this CPU has AVX512-BF16 but no AMX (oneDNN isa %s), where "
                            "bf16 measured slower than fp32 (products 0.56-0.76x, the step "
                            "0.42-0.86x; docs/BENCHMARKS.md): use precision fp32, or set "
                            "RANDLORA_BF16_NO_AMX=1 to run bf16 anyway", gemm_bf16_isa());
    return RL_OK;
}

/* The cached entry of shape s into *out, created on first use. */
static int entry_get(const struct gemm_shape *s, struct gemm_entry **out)
{
    struct gemm_entry *e;
    int rc;

    if ((rc = isa_allowed()) != RL_OK)
        return rc;
    if ((rc = gemm_init()) != RL_OK)
        return rc;
    for (size_t i = 0; i < g.n_entries; i++)
        if (shape_eq(&g.entries[i].shape, s)) {
            *out = &g.entries[i];
            return RL_OK;
        }
    if (g.n_entries == GEMM_BF16_MAX_SHAPES)
        return rl_error_set(RL_ERR_NA, "bf16 GEMMs: more than %d distinct shapes",
                            GEMM_BF16_MAX_SHAPES);
    e = &g.entries[g.n_entries];
    memset(e, 0, sizeof(*e));
    e->shape = *s;
    if ((rc = entry_create(e)) != RL_OK)
        return rc;
    g.n_entries++;
    *out = e;
    return RL_OK;
}

static int gemm_run(float *C, const bf16 *A, const bf16 *B, const struct gemm_shape *s)
{
    struct gemm_entry *e = NULL;
    dnnl_exec_arg_t args[4];
    int nargs = 3;
    dnnl_status_t st;
    int rc = entry_get(s, &e);

    if (rc != RL_OK)
        return rc;
    if (!e->prim)
        return refuse_impl(e->impl);
    dnnl_memory_set_data_handle(e->src, (void *)A);
    dnnl_memory_set_data_handle(e->wei, (void *)B);
    dnnl_memory_set_data_handle(e->dst, C);
    args[0] = (dnnl_exec_arg_t){ DNNL_ARG_SRC, e->src };
    args[1] = (dnnl_exec_arg_t){ DNNL_ARG_WEIGHTS, e->wei };
    args[2] = (dnnl_exec_arg_t){ DNNL_ARG_DST, e->dst };
    if (e->scratch) {
        dnnl_memory_set_data_handle(e->scratch, g.scratchpad);
        args[nargs++] = (dnnl_exec_arg_t){ DNNL_ARG_SCRATCHPAD, e->scratch };
    }
    st = dnnl_primitive_execute(e->prim, g.stream, nargs, args);
    if (st == dnnl_success)
        st = dnnl_stream_wait(g.stream);
    if (st != dnnl_success)
        return dnnl_fail("matmul execution", st);
    g.stats.calls++;
    g.stats.flops += 2.0 * (double)s->M * (double)s->N * (double)s->K;
    return RL_OK;
}

static int shape_make(struct gemm_shape *s, size_t M, size_t N, size_t K,
                      enum gemm_bf16_b_layout b_layout, float beta)
{
    const size_t max_dim = (size_t)1 << 31;

    if (M == 0 || N == 0 || K == 0 || M > max_dim || N > max_dim || K > max_dim)
        return rl_error_set(RL_ERR_ARG, "bf16 GEMM: dimensions M=%zu N=%zu K=%zu "
                            "(each must be 1..2^31)", M, N, K);
    if (beta != 0.0f && beta != 1.0f)
        return rl_error_set(RL_ERR_ARG, "bf16 GEMM: beta %g (must be 0 or 1)", (double)beta);
    if (b_layout != GEMM_BF16_B_NK && b_layout != GEMM_BF16_B_KN)
        return rl_error_set(RL_ERR_ARG, "bf16 GEMM: unknown B layout %d", (int)b_layout);
    *s = (struct gemm_shape){ .M = M, .N = N, .K = K, .b_layout = b_layout,
                              .accumulate = beta == 1.0f, .ldc = N, .alpha = 1.0f };
    return RL_OK;
}

int gemm_bf16(float *C, const bf16 *A, const bf16 *B, size_t M, size_t N, size_t K,
              enum gemm_bf16_b_layout b_layout, float beta)
{
    struct gemm_shape s;
    double t0 = timer_now();
    int rc = shape_make(&s, M, N, K, b_layout, beta);

    if (rc == RL_OK)
        rc = gemm_run(C, A, B, &s);
    g.stats.seconds += timer_now() - t0;
    return rc;
}

int gemm_bf16_f32a(float *C, const float *A, const bf16 *B, size_t M, size_t N, size_t K,
                   enum gemm_bf16_b_layout b_layout, float beta)
{
    struct gemm_shape s;
    double t0 = timer_now();
    int rc = shape_make(&s, M, N, K, b_layout, beta);

    if (rc != RL_OK)
        return rc;
    if (M * K > g.a_cap) {
        free(g.a_buf);
        g.a_buf = xcalloc_aligned(M * K, sizeof(bf16));
        g.a_cap = M * K;
    }
    bf16_from_f32_array(g.a_buf, A, M * K);
    rc = gemm_run(C, g.a_buf, B, &s);
    g.stats.seconds += timer_now() - t0;
    return rc;
}

/* *buf (grown to at least n elements, never shrunk) */
static bf16 *buf_reserve(bf16 **buf, size_t *cap, size_t n)
{
    if (n > *cap) {
        free(*buf);
        *buf = xcalloc_aligned(n, sizeof(bf16));
        *cap = n;
    }
    return *buf;
}

/* the rows x cols fp32 matrix at src (row stride ld) rounded into the
 * compact bf16 dst */
static void round_rows(bf16 *dst, const float *src, size_t rows, size_t cols, size_t ld)
{
    if (ld == cols) {
        bf16_from_f32_array(dst, src, rows * cols);
        return;
    }
    PARALLEL_FOR(rows * cols)
    for (size_t r = 0; r < rows; r++)
        for (size_t c = 0; c < cols; c++)
            dst[r * cols + c] = bf16_from_f32(src[r * ld + c]);
}

int gemm_bf16_mm(int ta, int tb, size_t M, size_t N, size_t K, float alpha,
                 const float *A, size_t lda, const float *B, size_t ldb, float beta,
                 float *C, size_t ldc)
{
    struct gemm_shape s;
    double t0 = timer_now();
    const size_t a_rows = ta ? K : M, a_cols = ta ? M : K;
    const size_t b_rows = tb ? N : K, b_cols = tb ? K : N;
    int rc = shape_make(&s, M, N, K, tb ? GEMM_BF16_B_NK : GEMM_BF16_B_KN, beta);

    if (rc != RL_OK)
        return rc;
    if (lda < a_cols || ldb < b_cols || ldc < N || !isfinite(alpha) || alpha == 0.0f)
        return rl_error_set(RL_ERR_ARG, "bf16 GEMM: lda %zu, ldb %zu, ldc %zu, alpha %g "
                            "(the strides must cover the rows, alpha finite and nonzero)",
                            lda, ldb, ldc, (double)alpha);
    s.a_transposed = ta != 0;
    s.ldc = ldc;
    s.alpha = alpha;
    round_rows(buf_reserve(&g.a_buf, &g.a_cap, M * K), A, a_rows, a_cols, lda);
    round_rows(buf_reserve(&g.b_buf, &g.b_cap, K * N), B, b_rows, b_cols, ldb);
    rc = gemm_run(C, g.a_buf, g.b_buf, &s);
    g.stats.seconds += timer_now() - t0;
    return rc;
}

const char *gemm_bf16_impl(void)
{
    /* the probe: a step-like shape, C[64,64] = A[64,64] W^T */
    const struct gemm_shape probe = { .M = 64, .N = 64, .K = 64, .b_layout = GEMM_BF16_B_NK,
                                      .ldc = 64, .alpha = 1.0f };
    struct gemm_entry *e = NULL;

    if (g.probe_impl[0])
        return g.probe_impl;
    if (entry_get(&probe, &e) != RL_OK)
        return "unavailable";                      /* not cached: the CPU may not change */
    snprintf(g.probe_impl, sizeof(g.probe_impl), "%s", e->impl);
    return g.probe_impl;
}

int gemm_bf16_check(void)
{
    const char *impl;
    int rc;

    if ((rc = isa_allowed()) != RL_OK)
        return rc;
    impl = gemm_bf16_impl();
    if (!strcmp(impl, "unavailable"))
        return rl_error_set(RL_ERR_NA, "bf16 GEMMs: oneDNN could not create a bf16 matmul "
                            "(isa %s): use precision fp32", gemm_bf16_isa());
    if (!strncmp(impl, "ref", 3))
        return refuse_impl(impl);
    return RL_OK;
}

char *gemm_bf16_describe(char *buf, size_t len)
{
    const dnnl_version_t *v = dnnl_version();

    if (gemm_bf16_check() != RL_OK)
        snprintf(buf, len, "oneDNN %d.%d.%d isa=%s bf16=refused (%s)", v->major, v->minor,
                 v->patch, gemm_bf16_isa(),
                 isa_without_amx() ? "no AMX: slower than fp32; RANDLORA_BF16_NO_AMX=1 allows it"
                                   : "no AVX512-BF16 or AMX kernel");
    else
        snprintf(buf, len, "oneDNN %d.%d.%d isa=%s matmul=%s%s", v->major, v->minor, v->patch,
                 gemm_bf16_isa(), gemm_bf16_impl(),
                 isa_without_amx() ? " (no AMX: slower than fp32)" : "");
    return buf;
}

double gemm_bf16_rate_over_fp32(void)
{
    switch (dnnl_get_effective_cpu_isa()) {
    case dnnl_cpu_isa_avx512_core_amx:  return 3.0;
    case dnnl_cpu_isa_avx512_core_bf16: return 0.65;
    default:                            return 1.0;
    }
}

void gemm_bf16_warn_if_slow(void)
{
    static int warned;

    if (warned || !isa_without_amx() || gemm_bf16_check() != RL_OK)
        return;
    warned = 1;
    log_warn("bf16 on isa %s (AVX512-BF16, no AMX; RANDLORA_BF16_NO_AMX=1): bf16 measured "
             "slower than fp32 there (products 0.56-0.76x, the step 0.42-0.86x; "
             "docs/BENCHMARKS.md); fp32 is faster", gemm_bf16_isa());
}

struct gemm_bf16_stats gemm_bf16_stats(void)
{
    return g.stats;
}
