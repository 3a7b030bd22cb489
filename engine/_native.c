/*
 * engine._native: the proof-of-work scan loop in C.
 *
 * scan(prefix, start, stop, target, kernel) returns the first nonce n in
 * [start, stop) with sha256(prefix + decimal(n)) < target, or None.
 *
 * How one scan runs:
 *
 *   prefix --(full 64-byte blocks, once)--> midstate
 *   nonce range --split by decimal length--> segments of L-digit nonces
 *   per segment: tail of prefix + L digits + padding + bit length are laid
 *                out once in a 1- or 2-block buffer; per nonce only the
 *                digit bytes that changed are rewritten (in-place decimal
 *                increment), the first block's state is cached while its
 *                bytes do not change, and the digest's first word decides
 *                almost every comparison with the target.
 *
 * The buffer keeps each 32-bit message word in host order (byte i of the
 * message lives at index i ^ BYTE_XOR), so no kernel byte-swaps per block.
 *
 * Kernels, fastest first (as measured where all of them run):
 *   "avx512"     16 nonces in the lanes of ZMM registers (x86-64, AVX512F),
 *   "sha-ni"     x86-64 SHA extensions, two nonces interleaved,
 *   "avx2"       8 nonces in YMM lanes (x86-64, AVX2),
 *   "armv8-sha2" ARMv8 SHA-2 instructions,
 *   "portable"   plain C; with GCC or clang four nonces ride in the lanes of
 *                the compiler's generic vectors.
 * The lane kernels share everything but the last three or four digits
 * across lanes and precompute per 1000 or 10000 nonces what those digits
 * do not touch (see "Multi-lane vector kernels").  Interleaving a SHA-NI
 * stream into the AVX-512 one was measured and dropped: the legacy-SSE SHA
 * instructions amid 512-bit code cut the throughput some 50x on the
 * development CPU.
 * The hardware paths are compiled with per-function target attributes, so
 * the module loads on any CPU of its architecture; CPUID (and XGETBV: the
 * OS must save the vector registers) or HWCAP pick them at import.
 */
#ifndef ENGINE_LANES_TEMPLATE
/* ENGINE_NATIVE_NO_PYTHON lets a plain C harness include the kernels alone
 * (cross-architecture checks under an emulator). */
#ifndef ENGINE_NATIVE_NO_PYTHON
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#endif

#include <stdint.h>
#include <string.h>

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#define HAVE_SHANI 1
#include <cpuid.h>
#include <immintrin.h>
#endif

#if defined(__aarch64__) && (defined(__GNUC__) || defined(__clang__))
#define HAVE_ARMV8_SHA2 1
#include <arm_neon.h>
#if defined(__linux__)
#include <sys/auxv.h>
#ifndef HWCAP_SHA2
#define HWCAP_SHA2 (1 << 6)
#endif
#endif
#endif

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
#define BYTE_XOR 0
#else
#define BYTE_XOR 3
#endif


static const uint32_t K256[64] = {
    0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1,
    0x923f82a4, 0xab1c5ed5, 0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3,
    0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174, 0xe49b69c1, 0xefbe4786,
    0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
    0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147,
    0x06ca6351, 0x14292967, 0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13,
    0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85, 0xa2bfe8a1, 0xa81a664b,
    0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
    0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a,
    0x5b9cca4f, 0x682e6ff3, 0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208,
    0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2,
};

static const uint32_t H256[8] = {
    0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a,
    0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19,
};

/* ------------------------------------------------------------------ */
/* Scan context shared by every kernel                                 */
/* ------------------------------------------------------------------ */

typedef struct {
    uint32_t mid[8];     /* state after the prefix's full blocks */
    uint32_t target[8];  /* big-endian target as words */
    uint8_t tail[64];    /* prefix bytes after the last full block */
    size_t tail_len;
    uint64_t prefix_len;
} scan_ctx;

/* One L-digit nonce laid out in its final block(s). */
typedef struct {
    uint32_t w[32];      /* message words, host order */
    size_t digit0;       /* message offset of the first digit */
    int digits;          /* L */
    int blocks;          /* 1 or 2 */
} layout;

#if defined(__GNUC__) || defined(__clang__)
#define ALWAYS_INLINE inline __attribute__((always_inline))
#elif defined(_MSC_VER)
#define ALWAYS_INLINE __forceinline
#else
#define ALWAYS_INLINE inline
#endif

#define MSG_BYTE(lay, off) (((uint8_t *)(lay)->w)[(off) ^ BYTE_XOR])

static int
decimal_length(uint64_t n)
{
    int len = 1;
    while (n >= 10) {
        n /= 10;
        len++;
    }
    return len;
}

/* Largest L-digit number, capped at 2**64 - 1. */
static uint64_t
max_with_digits(int digits)
{
    uint64_t m = 9;
    for (int i = 1; i < digits; i++) {
        if (m > (UINT64_MAX - 9) / 10) {
            return UINT64_MAX;
        }
        m = m * 10 + 9;
    }
    return m;
}

static void
layout_init(layout *lay, const scan_ctx *ctx, uint64_t nonce, int digits)
{
    size_t used = ctx->tail_len + (size_t)digits;
    uint64_t bits = (ctx->prefix_len + (uint64_t)digits) * 8u;

    memset(lay->w, 0, sizeof(lay->w));
    lay->digit0 = ctx->tail_len;
    lay->digits = digits;
    lay->blocks = (used + 9 <= 64) ? 1 : 2;
    for (size_t i = 0; i < ctx->tail_len; i++) {
        MSG_BYTE(lay, i) = ctx->tail[i];
    }
    for (int i = digits - 1; i >= 0; i--) {
        MSG_BYTE(lay, ctx->tail_len + (size_t)i) = (uint8_t)('0' + nonce % 10);
        nonce /= 10;
    }
    MSG_BYTE(lay, used) = 0x80;
    size_t end = (size_t)lay->blocks * 64;
    for (int i = 0; i < 8; i++) {
        MSG_BYTE(lay, end - 1 - (size_t)i) = (uint8_t)(bits >> (8 * i));
    }
}

/*
 * Add `step` (1 or 2) to the decimal number in the layout; the caller
 * guarantees the digit count does not grow.  Returns the message offset of
 * the most significant byte that changed, so callers know whether the first
 * block is still the same.
 */
static inline size_t
layout_add(layout *lay, unsigned step)
{
    size_t off = lay->digit0 + (size_t)lay->digits - 1;
    unsigned d = MSG_BYTE(lay, off) + step;
    while (d > '9') {
        MSG_BYTE(lay, off) = (uint8_t)(d - 10);
        off--;
        d = MSG_BYTE(lay, off) + 1u;
    }
    MSG_BYTE(lay, off) = (uint8_t)d;
    return off;
}

/* digest < target, comparing words from the most significant one. */
static inline int
below_target(const uint32_t *h, const uint32_t *t)
{
    for (int i = 0; i < 8; i++) {
        if (h[i] != t[i]) {
            return h[i] < t[i];
        }
    }
    return 0;
}

/* ------------------------------------------------------------------ */
/* Portable C                                                          */
/* ------------------------------------------------------------------ */

#define ROTR(x, n) (((x) >> (n)) | ((x) << (32 - (n))))
#define BSIG0(x) (ROTR(x, 2) ^ ROTR(x, 13) ^ ROTR(x, 22))
#define BSIG1(x) (ROTR(x, 6) ^ ROTR(x, 11) ^ ROTR(x, 25))
#define SSIG0(x) (ROTR(x, 7) ^ ROTR(x, 18) ^ ((x) >> 3))
#define SSIG1(x) (ROTR(x, 17) ^ ROTR(x, 19) ^ ((x) >> 10))
#define CH(x, y, z) (((x) & ((y) ^ (z))) ^ (z))
#define MAJ(x, y, z) (((x) & (y)) | ((z) & ((x) | (y))))

/* The 64-word message schedule of one block. */
static void
expand_schedule(const uint32_t block[16], uint32_t w[64])
{
    memcpy(w, block, 64);
    for (int t = 16; t < 64; t++) {
        w[t] = SSIG1(w[t - 2]) + w[t - 7] + SSIG0(w[t - 15]) + w[t - 16];
    }
}

/* Rounds first..end-1 of one block over w[0..end-1], no feed-forward. */
static void
partial_rounds(uint32_t st[8], const uint32_t *w, int first, int end)
{
    uint32_t a = st[0], b = st[1], c = st[2], d = st[3];
    uint32_t e = st[4], f = st[5], g = st[6], h = st[7];
    for (int t = first; t < end; t++) {
        uint32_t t1 = h + BSIG1(e) + CH(e, f, g) + K256[t] + w[t];
        uint32_t t2 = BSIG0(a) + MAJ(a, b, c);
        h = g;
        g = f;
        f = e;
        e = d + t1;
        d = c;
        c = b;
        b = a;
        a = t1 + t2;
    }
    st[0] = a;
    st[1] = b;
    st[2] = c;
    st[3] = d;
    st[4] = e;
    st[5] = f;
    st[6] = g;
    st[7] = h;
}

static void
portable_compress(uint32_t state[8], const uint32_t block[16])
{
    uint32_t w[64];
    uint32_t st[8];

    expand_schedule(block, w);
    memcpy(st, state, sizeof st);
    partial_rounds(st, w, 0, 64);
    for (int i = 0; i < 8; i++) {
        state[i] += st[i];
    }
}

typedef void (*compress_fn)(uint32_t state[8], const uint32_t block[16]);

/*
 * Scan the L-digit nonces [first, last] one at a time with `compress`.
 * Inlined into each kernel's wrapper so the compression call is direct.
 */
static ALWAYS_INLINE int
scan_segment_generic(const scan_ctx *ctx, uint64_t first, uint64_t last,
                     int digits, uint64_t *found, compress_fn compress)
{
    layout lay;
    uint32_t first_block[8], s[8];
    int stale = 1;

    layout_init(&lay, ctx, first, digits);
    for (uint64_t n = first;; n++) {
        if (lay.blocks == 2) {
            if (stale) {
                memcpy(first_block, ctx->mid, sizeof(first_block));
                compress(first_block, lay.w);
                stale = 0;
            }
            memcpy(s, first_block, sizeof(s));
            compress(s, lay.w + 16);
        }
        else {
            memcpy(s, ctx->mid, sizeof(s));
            compress(s, lay.w);
        }
        if (s[0] <= ctx->target[0] && below_target(s, ctx->target)) {
            *found = n;
            return 1;
        }
        if (n == last) {
            return 0;
        }
        if (layout_add(&lay, 1) < 64) {
            stale = 1;
        }
    }
}

#if defined(__GNUC__) || defined(__clang__)
/*
 * Four nonces per compression, one in each lane of a 16-byte vector: plain
 * C with the compiler's generic vector types, so it builds on any target
 * (SSE2 and NEON are in the base x86-64 and AArch64 ISAs).  One scalar
 * SHA-256 stream already fills the integer units; lanes add throughput.
 */
#define PORTABLE_LANES 4
typedef uint32_t lanes_u32 __attribute__((vector_size(16)));

#define VROTR(x, n) (((x) >> (n)) | ((x) << (32 - (n))))

static inline lanes_u32
splat(uint32_t v)
{
    return (lanes_u32){v, v, v, v};
}

static void
lanes_compress(lanes_u32 state[8], const lanes_u32 block[16])
{
    lanes_u32 w[64];
    lanes_u32 a = state[0], b = state[1], c = state[2], d = state[3];
    lanes_u32 e = state[4], f = state[5], g = state[6], h = state[7];

    memcpy(w, block, sizeof(lanes_u32) * 16);
    for (int t = 16; t < 64; t++) {
        lanes_u32 x = w[t - 15], y = w[t - 2];
        w[t] = w[t - 16] + (VROTR(x, 7) ^ VROTR(x, 18) ^ (x >> 3)) + w[t - 7] +
               (VROTR(y, 17) ^ VROTR(y, 19) ^ (y >> 10));
    }
    for (int t = 0; t < 64; t++) {
        lanes_u32 t1 = h + (VROTR(e, 6) ^ VROTR(e, 11) ^ VROTR(e, 25)) +
                       ((e & (f ^ g)) ^ g) + splat(K256[t]) + w[t];
        lanes_u32 t2 = (VROTR(a, 2) ^ VROTR(a, 13) ^ VROTR(a, 22)) +
                       ((a & b) | (c & (a | b)));
        h = g;
        g = f;
        f = e;
        e = d + t1;
        d = c;
        c = b;
        b = a;
        a = t1 + t2;
    }
    state[0] += a;
    state[1] += b;
    state[2] += c;
    state[3] += d;
    state[4] += e;
    state[5] += f;
    state[6] += g;
    state[7] += h;
}

/*
 * Compression of a block that is the same in every lane and for every nonce
 * of a segment (the padding-only second block): its schedule, with the round
 * constants added, is computed once by the caller.
 */
static void
lanes_compress_fixed(lanes_u32 state[8], const uint32_t wk[64])
{
    lanes_u32 a = state[0], b = state[1], c = state[2], d = state[3];
    lanes_u32 e = state[4], f = state[5], g = state[6], h = state[7];

    for (int t = 0; t < 64; t++) {
        lanes_u32 t1 = h + (VROTR(e, 6) ^ VROTR(e, 11) ^ VROTR(e, 25)) +
                       ((e & (f ^ g)) ^ g) + splat(wk[t]);
        lanes_u32 t2 = (VROTR(a, 2) ^ VROTR(a, 13) ^ VROTR(a, 22)) +
                       ((a & b) | (c & (a | b)));
        h = g;
        g = f;
        f = e;
        e = d + t1;
        d = c;
        c = b;
        b = a;
        a = t1 + t2;
    }
    state[0] += a;
    state[1] += b;
    state[2] += c;
    state[3] += d;
    state[4] += e;
    state[5] += f;
    state[6] += g;
    state[7] += h;
}

static void
schedule_with_constants(const uint32_t block[16], uint32_t wk[64])
{
    uint32_t w[64];
    expand_schedule(block, w);
    for (int t = 0; t < 64; t++) {
        wk[t] = w[t] + K256[t];
    }
}

/* Copy the words holding digits from the per-lane layouts into the vectors. */
static inline void
lanes_gather(lanes_u32 *msg, const layout lanes[PORTABLE_LANES], size_t w0, size_t w1)
{
    for (size_t i = w0; i <= w1; i++) {
        msg[i] = (lanes_u32){lanes[0].w[i], lanes[1].w[i], lanes[2].w[i], lanes[3].w[i]};
    }
}

/*
 * Scan [*next, last] in groups of four while a whole group fits.  Returns 1
 * on a hit; otherwise sets *next to the last nonce it covered.
 */
static int
lanes_scan(const scan_ctx *ctx, uint64_t *next, uint64_t last, int digits,
           uint64_t *found)
{
    layout lanes[PORTABLE_LANES];
    lanes_u32 msg[32], mid[8], first_block[8], s[8];
    uint64_t n = *next;
    int stale = 1;

    for (int j = 0; j < PORTABLE_LANES; j++) {
        layout_init(&lanes[j], ctx, n + (uint64_t)j, digits);
    }
    const int two = lanes[0].blocks == 2;
    const size_t w0 = lanes[0].digit0 / 4;
    const size_t w1 = (lanes[0].digit0 + (size_t)digits - 1) / 4;
    for (int i = 0; i < 32; i++) {
        msg[i] = splat(lanes[0].w[i]);
    }
    lanes_gather(msg, lanes, w0, w1);
    for (int i = 0; i < 8; i++) {
        mid[i] = splat(ctx->mid[i]);
    }
    /* Digits all in block 1 of two: block 2 is padding, fixed for the segment. */
    const int fixed_second = two && lanes[0].digit0 + (size_t)digits <= 64;
    uint32_t second_wk[64];
    if (fixed_second) {
        schedule_with_constants(lanes[0].w + 16, second_wk);
    }

    for (;;) {
        if (two) {
            if (stale) {
                memcpy(first_block, mid, sizeof(first_block));
                lanes_compress(first_block, msg);
                stale = 0;
            }
            memcpy(s, first_block, sizeof(s));
            if (fixed_second) {
                lanes_compress_fixed(s, second_wk);
            }
            else {
                lanes_compress(s, msg + 16);
            }
        }
        else {
            memcpy(s, mid, sizeof(s));
            lanes_compress(s, msg);
        }
        for (int j = 0; j < PORTABLE_LANES; j++) {
            if (s[0][j] <= ctx->target[0]) {
                uint32_t h[8];
                for (int i = 0; i < 8; i++) {
                    h[i] = s[i][j];
                }
                if (below_target(h, ctx->target)) {
                    *found = n + (uint64_t)j;
                    return 1;
                }
            }
        }
        /* Keep every lane within [n, last]: stop when a full group no longer fits. */
        if (last - n < 2 * PORTABLE_LANES - 1) {
            *next = n + PORTABLE_LANES - 1; /* last nonce covered */
            return 0;
        }
        n += PORTABLE_LANES;
        for (int j = 0; j < PORTABLE_LANES; j++) {
            if (layout_add(&lanes[j], PORTABLE_LANES) < 64) {
                stale = 1;
            }
        }
        lanes_gather(msg, lanes, w0, w1);
    }
}
#endif

static int
portable_scan_segment(const scan_ctx *ctx, uint64_t first, uint64_t last,
                      int digits, uint64_t *found)
{
#ifdef PORTABLE_LANES
    if (last - first >= PORTABLE_LANES - 1) {
        uint64_t covered = first;
        if (lanes_scan(ctx, &covered, last, digits, found)) {
            return 1;
        }
        if (covered == last) {
            return 0;
        }
        first = covered + 1;
    }
#endif
    return scan_segment_generic(ctx, first, last, digits, found,
                                portable_compress);
}

/* ------------------------------------------------------------------ */
/* x86-64 SHA extensions                                               */
/* ------------------------------------------------------------------ */

#ifdef HAVE_SHANI
#define SHANI_TARGET __attribute__((target("sha,sse4.1,ssse3")))

/* Host-order state words <-> the (ABEF, CDGH) register pair. */
static ALWAYS_INLINE SHANI_TARGET void
shani_load(const uint32_t state[8], __m128i *abef, __m128i *cdgh)
{
    __m128i badc = _mm_shuffle_epi32(_mm_loadu_si128((const __m128i *)state), 0xB1);
    __m128i hgfe = _mm_shuffle_epi32(_mm_loadu_si128((const __m128i *)(state + 4)), 0x1B);
    *abef = _mm_alignr_epi8(badc, hgfe, 8);
    *cdgh = _mm_blend_epi16(hgfe, badc, 0xF0);
}

static ALWAYS_INLINE SHANI_TARGET void
shani_store(__m128i abef, __m128i cdgh, uint32_t state[8])
{
    __m128i feba = _mm_shuffle_epi32(abef, 0x1B);
    __m128i dchg = _mm_shuffle_epi32(cdgh, 0xB1);
    _mm_storeu_si128((__m128i *)state, _mm_blend_epi16(feba, dchg, 0xF0));
    _mm_storeu_si128((__m128i *)(state + 4), _mm_alignr_epi8(dchg, feba, 8));
}

/* Next four schedule words from the previous sixteen. */
#define SHANI_SCHEDULE(m, g)                                                 \
    (m)[(g) & 3] = _mm_sha256msg2_epu32(                                     \
        _mm_add_epi32(_mm_sha256msg1_epu32((m)[(g) & 3], (m)[((g) + 1) & 3]), \
                      _mm_alignr_epi8((m)[((g) + 3) & 3], (m)[((g) + 2) & 3], 4)), \
        (m)[((g) + 3) & 3])

#define SHANI_ROUNDS4(abef, cdgh, wk)                                        \
    do {                                                                     \
        (cdgh) = _mm_sha256rnds2_epu32((cdgh), (abef), (wk));                \
        (abef) = _mm_sha256rnds2_epu32((abef), (cdgh), _mm_shuffle_epi32((wk), 0x0E)); \
    } while (0)

/* 64 rounds on (abef, cdgh) in place, without the final feed-forward. */
static ALWAYS_INLINE SHANI_TARGET void
shani_rounds(__m128i *abef, __m128i *cdgh, const uint32_t *block)
{
    __m128i m[4];
    __m128i s0 = *abef, s1 = *cdgh;
    for (int g = 0; g < 4; g++) {
        m[g] = _mm_loadu_si128((const __m128i *)(block + 4 * g));
    }
#pragma GCC unroll 16
    for (int g = 0; g < 16; g++) {
        if (g >= 4) {
            SHANI_SCHEDULE(m, g);
        }
        __m128i wk = _mm_add_epi32(m[g & 3], _mm_loadu_si128((const __m128i *)(K256 + 4 * g)));
        SHANI_ROUNDS4(s0, s1, wk);
    }
    *abef = s0;
    *cdgh = s1;
}

/* Two independent compressions, interleaved to hide instruction latency. */
static ALWAYS_INLINE SHANI_TARGET void
shani_rounds2(__m128i *abef_a, __m128i *cdgh_a, const uint32_t *block_a,
              __m128i *abef_b, __m128i *cdgh_b, const uint32_t *block_b)
{
    __m128i ma[4], mb[4];
    __m128i a0 = *abef_a, a1 = *cdgh_a, b0 = *abef_b, b1 = *cdgh_b;
    for (int g = 0; g < 4; g++) {
        ma[g] = _mm_loadu_si128((const __m128i *)(block_a + 4 * g));
        mb[g] = _mm_loadu_si128((const __m128i *)(block_b + 4 * g));
    }
#pragma GCC unroll 16
    for (int g = 0; g < 16; g++) {
        if (g >= 4) {
            SHANI_SCHEDULE(ma, g);
            SHANI_SCHEDULE(mb, g);
        }
        __m128i k = _mm_loadu_si128((const __m128i *)(K256 + 4 * g));
        __m128i wka = _mm_add_epi32(ma[g & 3], k);
        __m128i wkb = _mm_add_epi32(mb[g & 3], k);
        a1 = _mm_sha256rnds2_epu32(a1, a0, wka);
        b1 = _mm_sha256rnds2_epu32(b1, b0, wkb);
        a0 = _mm_sha256rnds2_epu32(a0, a1, _mm_shuffle_epi32(wka, 0x0E));
        b0 = _mm_sha256rnds2_epu32(b0, b1, _mm_shuffle_epi32(wkb, 0x0E));
    }
    *abef_a = a0;
    *cdgh_a = a1;
    *abef_b = b0;
    *cdgh_b = b1;
}

static SHANI_TARGET void
shani_compress(uint32_t state[8], const uint32_t block[16])
{
    __m128i abef, cdgh;
    shani_load(state, &abef, &cdgh);
    __m128i abef0 = abef, cdgh0 = cdgh;
    shani_rounds(&abef, &cdgh, block);
    shani_store(_mm_add_epi32(abef, abef0), _mm_add_epi32(cdgh, cdgh0), state);
}

/* A of the digest: ABEF keeps A in its top lane. */
#define SHANI_WORD_A(abef) ((uint32_t)_mm_extract_epi32((abef), 3))

static ALWAYS_INLINE SHANI_TARGET int
shani_below(__m128i abef, __m128i cdgh, const uint32_t *target)
{
    uint32_t h[8];
    if (SHANI_WORD_A(abef) > target[0]) {
        return 0;
    }
    shani_store(abef, cdgh, h);
    return below_target(h, target);
}

/*
 * Per-lane state for one of the two interleaved nonces.  The rounds read the
 * message from `v`, never from bytes just written: a 16-byte load of a
 * freshly stored byte cannot be store-forwarded and stalls the pipeline.
 * So the group holding the last digit comes from a table of its ten values,
 * and the bytes are only touched (and `v` reloaded) when a carry ripples.
 */
typedef struct {
    layout lay;                      /* bytes; the last digit's byte may lag */
    __m128i v[8];                    /* message groups of four words */
    __m128i last_digit_group[10];    /* v[group] for each last-digit value */
    int group;                       /* index in v of the last digit's group */
    unsigned last_digit;             /* current value of the last digit */
    int last_in_first_block;
    __m128i first_abef, first_cdgh;  /* state after block 1 (2-block layouts) */
    int stale;
} shani_lane;

/* Reload the vectors and the last-digit table from the bytes. */
static SHANI_TARGET void
shani_lane_sync(shani_lane *ln)
{
    size_t off = ln->lay.digit0 + (size_t)ln->lay.digits - 1;
    for (int g = 0; g < 8; g++) {
        ln->v[g] = _mm_loadu_si128((const __m128i *)(ln->lay.w + 4 * g));
    }
    ln->group = (int)(off / 16);
    ln->last_digit = MSG_BYTE(&ln->lay, off) - (unsigned)'0';
    ln->last_in_first_block = off < 64;
    uint32_t one = 1u << (8 * (3 - off % 4)); /* a digit step in its word */
    int lane = (int)(off / 4 % 4);
    __m128i unit = _mm_set_epi32(lane == 3 ? (int)one : 0, lane == 2 ? (int)one : 0,
                                 lane == 1 ? (int)one : 0, lane == 0 ? (int)one : 0);
    __m128i x = _mm_sub_epi32(ln->v[ln->group],
                              _mm_mullo_epi32(unit, _mm_set1_epi32((int)ln->last_digit)));
    for (int d = 0; d < 10; d++) {
        ln->last_digit_group[d] = x;
        x = _mm_add_epi32(x, unit);
    }
}

static SHANI_TARGET void
shani_lane_init(shani_lane *ln, const scan_ctx *ctx, uint64_t nonce, int digits)
{
    layout_init(&ln->lay, ctx, nonce, digits);
    shani_lane_sync(ln);
    ln->stale = 1;
}

/* Add `step` to the lane's nonce (digit count unchanged); marks block 1 stale. */
static ALWAYS_INLINE SHANI_TARGET void
shani_lane_add(shani_lane *ln, unsigned step)
{
    unsigned d = ln->last_digit + step;
    if (d <= 9) {
        ln->last_digit = d;
        ln->v[ln->group] = ln->last_digit_group[d];
        ln->stale |= ln->last_in_first_block;
        return;
    }
    size_t off = ln->lay.digit0 + (size_t)ln->lay.digits - 1;
    MSG_BYTE(&ln->lay, off) = (uint8_t)('0' + ln->last_digit);
    if (layout_add(&ln->lay, step) < 64) {
        ln->stale = 1;
    }
    shani_lane_sync(ln);
}

static ALWAYS_INLINE SHANI_TARGET void
shani_refresh_first(shani_lane *ln, __m128i mid_abef, __m128i mid_cdgh)
{
    __m128i abef = mid_abef, cdgh = mid_cdgh;
    shani_rounds(&abef, &cdgh, (const uint32_t *)ln->v);
    ln->first_abef = _mm_add_epi32(abef, mid_abef);
    ln->first_cdgh = _mm_add_epi32(cdgh, mid_cdgh);
    ln->stale = 0;
}

static SHANI_TARGET int
shani_scan_segment(const scan_ctx *ctx, uint64_t first, uint64_t last,
                   int digits, uint64_t *found)
{
    __m128i mid_abef, mid_cdgh;
    shani_lane a, b;
    uint64_t n = first;

    shani_load(ctx->mid, &mid_abef, &mid_cdgh);
    shani_lane_init(&a, ctx, n, digits);
    if (last - n >= 1) {
        shani_lane_init(&b, ctx, n + 1, digits);
    }
    const int two = a.lay.blocks == 2;

    /* Pairs (n, n + 1); lane a always holds the smaller nonce. */
    while (last - n >= 1) {
        __m128i a0, a1, b0, b1, base_a0, base_a1, base_b0, base_b1;
        if (two) {
            if (a.stale && b.stale) {
                __m128i x0 = mid_abef, x1 = mid_cdgh, y0 = mid_abef, y1 = mid_cdgh;
                shani_rounds2(&x0, &x1, (const uint32_t *)a.v,
                              &y0, &y1, (const uint32_t *)b.v);
                a.first_abef = _mm_add_epi32(x0, mid_abef);
                a.first_cdgh = _mm_add_epi32(x1, mid_cdgh);
                b.first_abef = _mm_add_epi32(y0, mid_abef);
                b.first_cdgh = _mm_add_epi32(y1, mid_cdgh);
                a.stale = b.stale = 0;
            }
            else if (a.stale) {
                shani_refresh_first(&a, mid_abef, mid_cdgh);
            }
            else if (b.stale) {
                shani_refresh_first(&b, mid_abef, mid_cdgh);
            }
            base_a0 = a.first_abef;
            base_a1 = a.first_cdgh;
            base_b0 = b.first_abef;
            base_b1 = b.first_cdgh;
        }
        else {
            base_a0 = base_b0 = mid_abef;
            base_a1 = base_b1 = mid_cdgh;
        }
        a0 = base_a0;
        a1 = base_a1;
        b0 = base_b0;
        b1 = base_b1;
        shani_rounds2(&a0, &a1, (const uint32_t *)(a.v + (two ? 4 : 0)),
                      &b0, &b1, (const uint32_t *)(b.v + (two ? 4 : 0)));
        a0 = _mm_add_epi32(a0, base_a0);
        a1 = _mm_add_epi32(a1, base_a1);
        b0 = _mm_add_epi32(b0, base_b0);
        b1 = _mm_add_epi32(b1, base_b1);
        if (shani_below(a0, a1, ctx->target)) {
            *found = n;
            return 1;
        }
        if (shani_below(b0, b1, ctx->target)) {
            *found = n + 1;
            return 1;
        }
        if (last - n < 2) {
            /* n + 1 was the last nonce. */
            return 0;
        }
        n += 2;
        shani_lane_add(&a, 2);
        if (last - n >= 1) {
            shani_lane_add(&b, 2);
        }
    }

    /* One nonce left (n == last), held by lane a. */
    __m128i base0 = mid_abef, base1 = mid_cdgh;
    if (two) {
        if (a.stale) {
            shani_refresh_first(&a, mid_abef, mid_cdgh);
        }
        base0 = a.first_abef;
        base1 = a.first_cdgh;
    }
    __m128i s0 = base0, s1 = base1;
    shani_rounds(&s0, &s1, (const uint32_t *)(a.v + (two ? 4 : 0)));
    if (shani_below(_mm_add_epi32(s0, base0), _mm_add_epi32(s1, base1), ctx->target)) {
        *found = n;
        return 1;
    }
    return 0;
}

static int
shani_supported(void)
{
    unsigned int eax, ebx, ecx, edx;
    if (!__get_cpuid(1, &eax, &ebx, &ecx, &edx)) {
        return 0;
    }
    if (!(ecx & bit_SSSE3) || !(ecx & bit_SSE4_1)) {
        return 0;
    }
    if (__get_cpuid_max(0, NULL) < 7) {
        return 0;
    }
    __cpuid_count(7, 0, eax, ebx, ecx, edx);
    return (ebx & (1u << 29)) != 0; /* CPUID.(EAX=7,ECX=0):EBX.SHA */
}
#endif /* HAVE_SHANI */

/* ------------------------------------------------------------------ */
/* Multi-lane vector kernels (AVX-512, AVX2)                           */
/* ------------------------------------------------------------------ */

#ifdef HAVE_SHANI

/*
 * One lane per nonce.  A segment's nonces are split as high * span + low:
 * the low three or four digits (span 1000 or 10000; fewer for shorter
 * nonces) vary across the lanes of a group, everything else is the same in
 * every lane and for the nonces sharing `high`.  Per value of `high`, in scalar code and once:
 * the message words without the low digits, the rounds over the words
 * before the first low digit (redone only when those words change), and
 * any block that holds no low digit.  Per
 * group, the lanes' low digits come from a table (one vector load per word
 * they touch), and only the rounds from the first such word on run in the
 * vector units.  A lane's digest is judged by its first word alone; a lane
 * that passes is recomputed in scalar code and compared in full.
 *
 * A 17th nonce per group in scalar code (9th for AVX2), interleaved round by
 * round with the vector rounds to use the integer ports they leave idle, was
 * measured and dropped (Sapphire Rapids class Xeon, GCC 12, single-thread
 * medians): AVX-512 97 -> 81 M/s, AVX2 33.4 -> 32.4 M/s.  It adds ~2100
 * instructions per group to ~1340 (~1600 of them ALU uops, 456 rotates that
 * need port 0 or 6); the 512-bit rounds already fill ports 0 and 5, and the
 * scalar uops land on them too.  Appended after the vector rounds instead of
 * interleaved it was worse still (65 M/s).
 */
#define LOW_DIGITS 3
/* Four, unless the last three share a message word and the fourth does not
 * (the lanes would then differ in two words instead of one): a span of 10**4
 * holds a whole number of 16-lane groups (1000 leaves the last one 8 lanes
 * short), and the per-span scalar setup runs a tenth as often. */
#define LOW_DIGITS_ALIGNED 4
#define LOW_SPAN 10000
#define MAX_LANES 16

/* Where a segment's low digits sit and what they contribute, per value. */
typedef struct {
    layout lay;             /* the message; low digit bytes kept zero */
    int low_digits;         /* D = min(L, LOW_DIGITS), or LOW_DIGITS_ALIGNED */
    uint64_t span;          /* 10**D */
    size_t low0;            /* message offset of the first low digit */
    int w0, w1;             /* message words (0..31) holding low digits */
    /* table[i][v]: the low digits of value v (mod span) in word w0 (i = 0) or w1 (i = 1) */
    uint32_t table[2][LOW_SPAN + MAX_LANES];
} lane_plan;

/* What stays fixed while `high` does, ready for the vector rounds. */
typedef enum { PLAN_ONE, PLAN_FIXED_SECOND, PLAN_STRADDLE } plan_mode;

typedef struct {
    plan_mode mode;
    uint32_t chain[8];      /* chaining value into the block where lanes differ */
    uint32_t start[8];      /* that block's state after rounds 0..r0-1 */
    int r0;                 /* first round whose message word differs across lanes */
    uint32_t msg[16];       /* that block's words, low digits zero */
    int v0, v1;             /* indexes in msg of the words holding low digits (-1: none) */
    uint32_t msg2[16];      /* PLAN_STRADDLE: the second block, low digits zero */
    uint32_t wk2[64];       /* PLAN_FIXED_SECOND: schedule + constants of the second block */
    int start_valid;        /* start[] is for the chain and msg[0..r0-1] held: zero it first */
} high_plan;

static uint32_t
digit_bits(size_t off, unsigned digit)
{
    return (uint32_t)('0' + digit) << (8 * (3 - off % 4));
}

/* Write `count` decimal digits of `value` (zero-padded) at message offset `off`. */
static void
layout_put_digits(layout *lay, size_t off, int count, uint64_t value)
{
    for (int i = count - 1; i >= 0; i--) {
        MSG_BYTE(lay, off + (size_t)i) = (uint8_t)('0' + value % 10);
        value /= 10;
    }
}

static void
lane_plan_init(lane_plan *p, const scan_ctx *ctx, uint64_t first, int digits)
{
    layout_init(&p->lay, ctx, first, digits);
    p->low_digits = digits < LOW_DIGITS ? digits : LOW_DIGITS;
    /* Four unless that moves lanes that differed in one word onto two. */
    if (digits >= LOW_DIGITS_ALIGNED && (p->lay.digit0 + (size_t)digits - 1) % 4 != 2) {
        p->low_digits = LOW_DIGITS_ALIGNED;
    }
    p->span = 1;
    for (int i = 0; i < p->low_digits; i++) {
        p->span *= 10;
    }
    p->low0 = p->lay.digit0 + (size_t)(digits - p->low_digits);
    p->w0 = (int)(p->low0 / 4);
    p->w1 = (int)((p->low0 + (size_t)p->low_digits - 1) / 4);
    for (size_t i = 0; i < (size_t)p->low_digits; i++) {
        MSG_BYTE(&p->lay, p->low0 + i) = 0;
    }
    /* From x - 1 to x only the units digit steps up by one, unless x ends in 0. */
    const size_t units = p->low0 + (size_t)p->low_digits - 1;
    const int units_word = (int)(units / 4) != p->w0;
    const uint32_t units_step = digit_bits(units, 1) - digit_bits(units, 0);
    for (uint64_t v = 0; v < p->span + MAX_LANES; v++) {
        uint64_t x = v % p->span;
        if (x % 10 != 0) {
            p->table[0][v] = p->table[0][v - 1];
            p->table[1][v] = p->table[1][v - 1];
            p->table[units_word][v] += units_step;
            continue;
        }
        uint32_t word[2] = {0, 0};
        for (int i = p->low_digits - 1; i >= 0; i--) {
            size_t off = p->low0 + (size_t)i;
            word[(int)(off / 4) != p->w0] |= digit_bits(off, (unsigned)(x % 10));
            x /= 10;
        }
        p->table[0][v] = word[0];
        p->table[1][v] = word[1];
    }
}

/* Fill `hp` for the nonces high * span + [0, span). */
static void
lane_plan_high(lane_plan *p, const scan_ctx *ctx, uint64_t high, high_plan *hp)
{
    int high_digits = p->lay.digits - p->low_digits;
    layout_put_digits(&p->lay, p->lay.digit0, high_digits, high);
    const uint32_t *w = p->lay.w;
    int block = 0;
    uint32_t old_chain[8], old_msg[16];
    const int old_r0 = hp->r0;

    if (hp->start_valid) {
        memcpy(old_chain, hp->chain, sizeof(old_chain));
        memcpy(old_msg, hp->msg, sizeof(old_msg));
    }
    memcpy(hp->chain, ctx->mid, sizeof(hp->chain));
    hp->mode = PLAN_ONE;
    if (p->lay.blocks == 2) {
        if (p->w0 >= 16) {
            /* Low digits all in block 2: block 1 is fixed. */
            portable_compress(hp->chain, w);
            block = 1;
        }
        else if (p->w1 < 16) {
            hp->mode = PLAN_FIXED_SECOND;
            schedule_with_constants(w + 16, hp->wk2);
        }
        else {
            hp->mode = PLAN_STRADDLE;
            memcpy(hp->msg2, w + 16, sizeof(hp->msg2));
        }
    }
    memcpy(hp->msg, w + 16 * block, sizeof(hp->msg));
    hp->v0 = p->w0 - 16 * block;
    hp->v1 = p->w1 - 16 * block;
    if (hp->v1 >= 16) {
        hp->v1 = -1; /* PLAN_STRADDLE: w1 is word 0 of block 2 */
    }
    else if (hp->v1 == hp->v0) {
        hp->v1 = -1;
    }
    hp->r0 = hp->v0;
    /* The words before r0 hold the upper digits, which change once per 10 or
     * more values of `high`: their rounds are redone only then. */
    if (hp->start_valid && old_r0 == hp->r0 && memcmp(old_chain, hp->chain, sizeof(old_chain)) == 0 &&
        memcmp(old_msg, hp->msg, sizeof(uint32_t) * (size_t)hp->r0) == 0) {
        return;
    }
    memcpy(hp->start, hp->chain, sizeof(hp->start));
    partial_rounds(hp->start, hp->msg, 0, hp->r0);
    hp->start_valid = 1;
}

/*
 * UNIFORM_WORDS[r]: bit t set when schedule word t is the same in every lane
 * while only message words r and r + 1 hold low digits, i.e. for t < 16
 * t is neither, and for t >= 16 all four words W[t] is made of (t-2, t-7,
 * t-15, t-16) are uniform.  UNIFORM_WORDS1[r]: the same when the low digits
 * all sit in word r (a third of the words past 16 stay uniform instead of
 * none: measured some 4% fewer vector instructions).  Constant tables so that
 * the specialised rounds fold them at compile time.  No bit above 25 is set,
 * so no word past UNIFORM_TERMS_END has a uniform term.
 */
#define UNIFORM_TERMS_END 42 /* 25 + 16 + 1 */
static const uint64_t UNIFORM_WORDS[16] = {
    0x000000000000fffcULL, 0x000000000000fff9ULL, 0x000000000001fff3ULL, 0x000000000003ffe7ULL,
    0x000000000007ffcfULL, 0x00000000000fff9fULL, 0x00000000001fff3fULL, 0x00000000003ffe7fULL,
    0x00000000002afcffULL, 0x000000000000f9ffULL, 0x000000000001f3ffULL, 0x000000000003e7ffULL,
    0x000000000007cfffULL, 0x00000000000a9fffULL, 0x0000000000003fffULL, 0x0000000000157fffULL,
};
static const uint64_t UNIFORM_WORDS1[16] = {
    0x00000000002afffeULL, 0x000000000000fffdULL, 0x000000000001fffbULL, 0x000000000003fff7ULL,
    0x000000000007ffefULL, 0x00000000000fffdfULL, 0x00000000001fffbfULL, 0x00000000003fff7fULL,
    0x00000000007ffeffULL, 0x00000000002afdffULL, 0x000000000055fbffULL, 0x0000000000abf7ffULL,
    0x000000000157efffULL, 0x0000000002afdfffULL, 0x00000000000abfffULL, 0x0000000000157fffULL,
};

#define IS_UNIFORM(mask, t) (((mask) >> (t)) & 1u)

/*
 * Scalar inputs of the one-block rounds for one value of `high`, computed on
 * the message with the low digits zero.  The low digits enter words r0 and
 * r0 + 1 by addition (their bytes are zero there), so round r0, whose state
 * is the same in every lane, is done here and the lanes only add their
 * digits to its new A and E.
 */
typedef struct {
    uint32_t after[8];   /* state after round r0 */
    uint32_t msg[16];
    uint32_t wk[UNIFORM_TERMS_END];   /* uniform words: schedule + K */
    uint32_t part[UNIFORM_TERMS_END]; /* other words t >= 16: the sum of their uniform terms */
    /* K256 again: read from here, the round constants become broadcast memory
     * operands of the adds; folded from the const table, each cost a scalar
     * move plus a broadcast on a vector port (measured). */
    uint32_t k[64];
} one_consts;

/* Runs once per 1000 or 10000 nonces: a few percent of the scan before it was
 * trimmed to what is read.  c->k is the caller's to fill, once. */
static void
one_consts_init(one_consts *c, const high_plan *hp)
{
    uint32_t w[UNIFORM_TERMS_END], s0[UNIFORM_TERMS_END], s1[UNIFORM_TERMS_END];
    const uint64_t uni = hp->v1 < 0 ? UNIFORM_WORDS1[hp->r0] : UNIFORM_WORDS[hp->r0];

    memcpy(c->msg, hp->msg, sizeof(c->msg));
    memcpy(w, hp->msg, sizeof(c->msg));
    for (int t = 0; t < UNIFORM_TERMS_END; t++) {
        if (t >= 16) {
            w[t] = s1[t - 2] + w[t - 7] + s0[t - 15] + w[t - 16];
            c->part[t] = (IS_UNIFORM(uni, t - 2) ? s1[t - 2] : 0) +
                         (IS_UNIFORM(uni, t - 7) ? w[t - 7] : 0) +
                         (IS_UNIFORM(uni, t - 15) ? s0[t - 15] : 0) +
                         (IS_UNIFORM(uni, t - 16) ? w[t - 16] : 0);
        }
        s0[t] = SSIG0(w[t]);
        s1[t] = SSIG1(w[t]);
        c->wk[t] = w[t] + K256[t];
    }
    /* hp->start is the state after rounds 0..r0-1: one more round. */
    memcpy(c->after, hp->start, sizeof(c->after));
    partial_rounds(c->after, hp->msg, hp->r0, hp->r0 + 1);
}

/* The exact test of one candidate: its whole digest against the target. */
static int
nonce_below_target(const scan_ctx *ctx, uint64_t nonce, int digits)
{
    layout lay;
    uint32_t s[8];
    layout_init(&lay, ctx, nonce, digits);
    memcpy(s, ctx->mid, sizeof(s));
    portable_compress(s, lay.w);
    if (lay.blocks == 2) {
        portable_compress(s, lay.w + 16);
    }
    return below_target(s, ctx->target);
}

/* The OS saves the register state in XCR0's `mask` (checked after OSXSAVE). */
static int
os_saves(uint64_t mask)
{
    unsigned int eax, ebx, ecx, edx, lo, hi;
    if (!__get_cpuid(1, &eax, &ebx, &ecx, &edx) || !(ecx & (1u << 27))) {
        return 0; /* no OSXSAVE: XGETBV is not available */
    }
    __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
    return ((((uint64_t)hi << 32) | lo) & mask) == mask;
}

static int
cpuid7_ebx(unsigned int bit)
{
    unsigned int eax, ebx, ecx, edx;
    if (__get_cpuid_max(0, NULL) < 7) {
        return 0;
    }
    __cpuid_count(7, 0, eax, ebx, ecx, edx);
    return (ebx & (1u << bit)) != 0;
}

static int
avx2_supported(void)
{
    unsigned int eax, ebx, ecx, edx;
    if (!__get_cpuid(1, &eax, &ebx, &ecx, &edx) || !(ecx & (1u << 28))) {
        return 0; /* no AVX */
    }
    return cpuid7_ebx(5) && os_saves(0x6); /* AVX2; XMM and YMM state */
}

static int
avx512_supported(void)
{
    /* AVX512F; XMM, YMM, opmask, upper ZMM0-15 and ZMM16-31 state */
    return avx2_supported() && cpuid7_ebx(16) && os_saves(0xE6);
}

/* AVX-512: 16 lanes, native rotates, three-input logic in one instruction. */
#define LANES_N 16
#define LANES_TARGET __attribute__((target("avx512f")))
#define LANES_NAME(x) avx512_##x
typedef __m512i avx512_v;
#define lanes_v avx512_v
#define V_SET1(x) _mm512_set1_epi32((int)(x))
#define V_LOADU(p) _mm512_loadu_si512((const void *)(p))
#define V_ADD(a, b) _mm512_add_epi32((a), (b))
#define V_OR(a, b) _mm512_or_si512((a), (b))
#define V_ROR(x, n) _mm512_ror_epi32((x), (n))
#define V_SHR(x, n) _mm512_srli_epi32((x), (n))
#define V_XOR3(a, b, c) _mm512_ternarylogic_epi32((a), (b), (c), 0x96)
/* g first: vpternlogd overwrites its first source, and g is the input most
 * often dead after CH (the rounds add it into the next h + W + K first). */
#define V_CH(e, f, g) _mm512_ternarylogic_epi32((g), (e), (f), 0xB8)
#define V_MAJ(a, b, c) _mm512_ternarylogic_epi32((a), (b), (c), 0xE8)
#define V_LE_MASK(x, t) ((unsigned)_mm512_cmple_epu32_mask((x), (t)))
#define ENGINE_LANES_TEMPLATE
#include "_native.c" /* the template part at the end of this file */

/* AVX2: 8 lanes; rotates from two shifts, logic from two-input ops. */
#define LANES_N 8
#define LANES_TARGET __attribute__((target("avx2")))
#define LANES_NAME(x) avx2_##x
typedef __m256i avx2_v;
#define lanes_v avx2_v
#define V_SET1(x) _mm256_set1_epi32((int)(x))
#define V_LOADU(p) _mm256_loadu_si256((const __m256i *)(p))
#define V_ADD(a, b) _mm256_add_epi32((a), (b))
#define V_OR(a, b) _mm256_or_si256((a), (b))
#define V_ROR(x, n) _mm256_or_si256(_mm256_srli_epi32((x), (n)), _mm256_slli_epi32((x), 32 - (n)))
#define V_SHR(x, n) _mm256_srli_epi32((x), (n))
#define V_XOR3(a, b, c) _mm256_xor_si256(_mm256_xor_si256((a), (b)), (c))
#define V_CH(e, f, g) _mm256_xor_si256(_mm256_and_si256((e), _mm256_xor_si256((f), (g))), (g))
#define V_MAJ(a, b, c) \
    _mm256_or_si256(_mm256_and_si256((a), (b)), _mm256_and_si256((c), _mm256_or_si256((a), (b))))
#define V_LE_MASK(x, t) \
    ((unsigned)_mm256_movemask_ps(_mm256_castsi256_ps( \
        _mm256_cmpeq_epi32(_mm256_min_epu32((x), (t)), (x)))))
#include "_native.c"
#undef ENGINE_LANES_TEMPLATE
#endif /* HAVE_SHANI */

/* ------------------------------------------------------------------ */
/* ARMv8 SHA-2 instructions                                            */
/* ------------------------------------------------------------------ */

#ifdef HAVE_ARMV8_SHA2
#if defined(__clang__)
#define ARMV8_TARGET __attribute__((target("sha2")))
#else
#define ARMV8_TARGET __attribute__((target("arch=armv8-a+crypto")))
#endif

static ARMV8_TARGET void
armv8_compress(uint32_t state[8], const uint32_t block[16])
{
    uint32x4_t abcd = vld1q_u32(state), efgh = vld1q_u32(state + 4);
    uint32x4_t abcd0 = abcd, efgh0 = efgh;
    uint32x4_t m[4];
    for (int g = 0; g < 4; g++) {
        m[g] = vld1q_u32(block + 4 * g);
    }
#pragma GCC unroll 16
    for (int g = 0; g < 16; g++) {
        if (g >= 4) {
            m[g & 3] = vsha256su1q_u32(vsha256su0q_u32(m[g & 3], m[(g + 1) & 3]),
                                       m[(g + 2) & 3], m[(g + 3) & 3]);
        }
        uint32x4_t wk = vaddq_u32(m[g & 3], vld1q_u32(K256 + 4 * g));
        uint32x4_t prev = abcd;
        abcd = vsha256hq_u32(abcd, efgh, wk);
        efgh = vsha256h2q_u32(efgh, prev, wk);
    }
    vst1q_u32(state, vaddq_u32(abcd, abcd0));
    vst1q_u32(state + 4, vaddq_u32(efgh, efgh0));
}

static ARMV8_TARGET int
armv8_scan_segment(const scan_ctx *ctx, uint64_t first, uint64_t last,
                   int digits, uint64_t *found)
{
    return scan_segment_generic(ctx, first, last, digits, found,
                                armv8_compress);
}

static int
armv8_supported(void)
{
#if defined(__linux__)
    return (getauxval(AT_HWCAP) & HWCAP_SHA2) != 0;
#elif defined(__APPLE__)
    return 1; /* every Apple arm64 CPU has the SHA-2 instructions */
#else
    return 0;
#endif
}
#endif /* HAVE_ARMV8_SHA2 */

/* ------------------------------------------------------------------ */
/* Kernel table and the scan driver                                    */
/* ------------------------------------------------------------------ */

typedef int (*segment_fn)(const scan_ctx *, uint64_t, uint64_t, int, uint64_t *);

typedef struct {
    const char *name;
    segment_fn scan_segment;
    compress_fn compress;
    int (*supported)(void);
} kernel_def;

static int
always_supported(void)
{
    return 1;
}

/* Fastest first: kernels() keeps this order. */
static const kernel_def KERNELS[] = {
#ifdef HAVE_SHANI
    {"avx512", avx512_scan_segment, portable_compress, avx512_supported},
    {"sha-ni", shani_scan_segment, shani_compress, shani_supported},
    {"avx2", avx2_scan_segment, portable_compress, avx2_supported},
#else
    {"avx512", NULL, NULL, NULL},
    {"sha-ni", NULL, NULL, NULL},
    {"avx2", NULL, NULL, NULL},
#endif
#ifdef HAVE_ARMV8_SHA2
    {"armv8-sha2", armv8_scan_segment, armv8_compress, armv8_supported},
#else
    {"armv8-sha2", NULL, NULL, NULL},
#endif
    {"portable", portable_scan_segment, portable_compress, always_supported},
};
#define N_KERNELS (sizeof(KERNELS) / sizeof(KERNELS[0]))

static void
load_be_words(const uint8_t *bytes, uint32_t *words, size_t count)
{
    for (size_t i = 0; i < count; i++) {
        words[i] = ((uint32_t)bytes[4 * i] << 24) | ((uint32_t)bytes[4 * i + 1] << 16) |
                   ((uint32_t)bytes[4 * i + 2] << 8) | (uint32_t)bytes[4 * i + 3];
    }
}

/*
 * Scan [start, last] (inclusive) once the context's target is set.  With
 * have_mid, ctx->mid already holds the state after the prefix's full blocks.
 */
static int
run_scan(const kernel_def *k, scan_ctx *ctx, const uint8_t *prefix,
         size_t prefix_len, uint64_t start, uint64_t last, uint64_t *found,
         int have_mid)
{
    size_t full = prefix_len / 64 * 64;
    uint32_t block[16];

    if (!have_mid) {
        memcpy(ctx->mid, H256, sizeof(H256));
        for (size_t off = 0; off < full; off += 64) {
            load_be_words(prefix + off, block, 16);
            k->compress(ctx->mid, block);
        }
    }
    ctx->tail_len = prefix_len - full;
    memcpy(ctx->tail, prefix + full, ctx->tail_len);
    ctx->prefix_len = (uint64_t)prefix_len;

    uint64_t n = start;
    for (;;) {
        int digits = decimal_length(n);
        uint64_t seg_last = max_with_digits(digits);
        if (seg_last > last) {
            seg_last = last;
        }
        if (k->scan_segment(ctx, n, seg_last, digits, found)) {
            return 1;
        }
        if (seg_last == last) {
            return 0;
        }
        n = seg_last + 1;
    }
}

/* ------------------------------------------------------------------ */
/* Python interface                                                    */
/* ------------------------------------------------------------------ */

#ifndef ENGINE_NATIVE_NO_PYTHON

static int kernel_usable[N_KERNELS]; /* filled by CPU detection at import */

static PyObject *two_to_64; /* 2**64, the exclusive upper bound of stop */

/*
 * The midstate of the last bytes prefix scanned.  A worker scans one prefix
 * in many short slices; hashing a multi-megabyte prefix again per slice
 * would cost more than the slice itself.  The cache holds a reference to
 * the (immutable) bytes object, so identity means equal content; it is
 * read and written only with the GIL held.
 */
static PyObject *mid_prefix;
static uint32_t mid_state[8];
/* Prefixes shorter than this are rehashed: cheaper than keeping them alive. */
#define MID_CACHE_MIN_LEN 4096

/*
 * Convert a nonce bound: 0 <= value <= 2**64.  Sets *at_limit when the
 * value is exactly 2**64 (not representable in 64 bits).
 */
static int
nonce_bound(PyObject *obj, const char *what, uint64_t *value, int *at_limit)
{
    if (!PyLong_Check(obj) || PyBool_Check(obj)) {
        PyErr_Format(PyExc_TypeError, "%s must be an int, not %.100s",
                     what, Py_TYPE(obj)->tp_name);
        return -1;
    }
    *at_limit = 0;
    PyObject *zero = PyLong_FromLong(0);
    if (zero == NULL) {
        return -1;
    }
    int negative = PyObject_RichCompareBool(obj, zero, Py_LT);
    Py_DECREF(zero);
    if (negative < 0) {
        return -1;
    }
    if (negative) {
        PyErr_Format(PyExc_ValueError, "%s must be >= 0, got %R", what, obj);
        return -1;
    }
    unsigned long long v = PyLong_AsUnsignedLongLong(obj);
    if (v == (unsigned long long)-1 && PyErr_Occurred()) {
        if (!PyErr_ExceptionMatches(PyExc_OverflowError)) {
            return -1;
        }
        PyErr_Clear();
        int eq = PyObject_RichCompareBool(obj, two_to_64, Py_EQ);
        if (eq < 0) {
            return -1;
        }
        if (!eq) {
            PyErr_Format(PyExc_ValueError, "%s must be <= 2**64, got %R", what, obj);
            return -1;
        }
        *at_limit = 1;
        *value = 0;
        return 0;
    }
    *value = (uint64_t)v;
    return 0;
}

static const kernel_def *
find_kernel(const char *name)
{
    for (size_t i = 0; i < N_KERNELS; i++) {
        if (strcmp(KERNELS[i].name, name) == 0) {
            if (!kernel_usable[i]) {
                PyErr_Format(PyExc_ValueError,
                             "kernel '%s' is not supported on this CPU or build "
                             "(see kernels())", name);
                return NULL;
            }
            return &KERNELS[i];
        }
    }
    PyErr_Format(PyExc_ValueError,
                 "unknown kernel '%.100s' (known: 'avx512', 'sha-ni', 'avx2', "
                 "'armv8-sha2', 'portable')",
                 name);
    return NULL;
}

PyDoc_STRVAR(scan_doc,
"scan(prefix, start, stop, target, kernel) -> int | None\n"
"\n"
"First nonce n in [start, stop) with sha256(prefix + str(n).encode()) < target,\n"
"or None.  target is 32 big-endian bytes, or None when every digest\n"
"qualifies.  0 <= start <= stop <= 2**64.  Releases the GIL while scanning.");

static PyObject *
native_scan(PyObject *module, PyObject *args, PyObject *kwargs)
{
    static char *keywords[] = {"prefix", "start", "stop", "target", "kernel", NULL};
    Py_buffer prefix;
    PyObject *start_obj, *stop_obj, *target_obj;
    const char *kernel_name;
    uint64_t start, stop, found = 0;
    int start_at_limit, stop_at_limit, hit;
    scan_ctx ctx;

    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "y*OOOs:scan", keywords,
                                     &prefix, &start_obj, &stop_obj,
                                     &target_obj, &kernel_name)) {
        return NULL;
    }
    const kernel_def *k = find_kernel(kernel_name);
    if (k == NULL) {
        goto error;
    }
    if (nonce_bound(start_obj, "start", &start, &start_at_limit) < 0 ||
        nonce_bound(stop_obj, "stop", &stop, &stop_at_limit) < 0) {
        goto error;
    }
    if (start_at_limit && !stop_at_limit) {
        PyErr_Format(PyExc_ValueError, "start (%R) must be <= stop (%R)", start_obj, stop_obj);
        goto error;
    }
    if (!stop_at_limit && start > stop) {
        PyErr_Format(PyExc_ValueError, "start (%R) must be <= stop (%R)", start_obj, stop_obj);
        goto error;
    }
    int everything = 0;
    if (target_obj == Py_None) {
        everything = 1;
    }
    else if (!PyBytes_Check(target_obj)) {
        PyErr_Format(PyExc_TypeError, "target must be bytes or None, not %.100s",
                     Py_TYPE(target_obj)->tp_name);
        goto error;
    }
    else if (PyBytes_GET_SIZE(target_obj) != 32) {
        PyErr_Format(PyExc_ValueError, "target must be exactly 32 bytes, got %zd",
                     PyBytes_GET_SIZE(target_obj));
        goto error;
    }

    int empty = start_at_limit || (!stop_at_limit && start == stop);
    if (empty) {
        PyBuffer_Release(&prefix);
        Py_RETURN_NONE;
    }
    if (everything) {
        PyBuffer_Release(&prefix);
        return PyLong_FromUnsignedLongLong(start);
    }
    load_be_words((const uint8_t *)PyBytes_AS_STRING(target_obj), ctx.target, 8);
    uint64_t last = stop_at_limit ? UINT64_MAX : stop - 1;
    /* Only exact bytes are immutable; a bytearray may change between calls. */
    int cacheable = prefix.obj != NULL && PyBytes_CheckExact(prefix.obj) &&
                    prefix.len >= MID_CACHE_MIN_LEN;
    int have_mid = cacheable && prefix.obj == mid_prefix;
    if (have_mid) {
        memcpy(ctx.mid, mid_state, sizeof(mid_state));
    }

    Py_BEGIN_ALLOW_THREADS
    hit = run_scan(k, &ctx, (const uint8_t *)prefix.buf, (size_t)prefix.len,
                   start, last, &found, have_mid);
    Py_END_ALLOW_THREADS

    if (cacheable && !have_mid) {
        PyObject *old = mid_prefix;
        Py_INCREF(prefix.obj);
        mid_prefix = prefix.obj;
        memcpy(mid_state, ctx.mid, sizeof(mid_state));
        Py_XDECREF(old);
    }
    PyBuffer_Release(&prefix);
    if (!hit) {
        Py_RETURN_NONE;
    }
    return PyLong_FromUnsignedLongLong(found);

error:
    PyBuffer_Release(&prefix);
    return NULL;
}

PyDoc_STRVAR(kernels_doc,
"kernels() -> tuple[str, ...]\n"
"\n"
"Native kernels usable on this CPU, fastest first.");

static PyObject *
native_kernels(PyObject *module, PyObject *unused)
{
    PyObject *names = PyList_New(0);
    if (names == NULL) {
        return NULL;
    }
    for (size_t i = 0; i < N_KERNELS; i++) {
        if (!kernel_usable[i]) {
            continue;
        }
        PyObject *name = PyUnicode_FromString(KERNELS[i].name);
        if (name == NULL || PyList_Append(names, name) < 0) {
            Py_XDECREF(name);
            Py_DECREF(names);
            return NULL;
        }
        Py_DECREF(name);
    }
    PyObject *result = PyList_AsTuple(names);
    Py_DECREF(names);
    return result;
}

static PyMethodDef native_methods[] = {
    {"scan", (PyCFunction)(void (*)(void))native_scan, METH_VARARGS | METH_KEYWORDS, scan_doc},
    {"kernels", native_kernels, METH_NOARGS, kernels_doc},
    {NULL, NULL, 0, NULL},
};

PyDoc_STRVAR(module_doc,
"Native SHA-256 proof-of-work scan kernels (AVX-512, SHA-NI, AVX2, ARMv8 SHA-2, portable C).");

static struct PyModuleDef native_module = {
    PyModuleDef_HEAD_INIT, "engine._native", module_doc, -1, native_methods,
    NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC
PyInit__native(void)
{
    for (size_t i = 0; i < N_KERNELS; i++) {
        kernel_usable[i] = KERNELS[i].supported != NULL && KERNELS[i].supported();
    }
    if (two_to_64 == NULL) {
        two_to_64 = PyLong_FromString("18446744073709551616", NULL, 10);
        if (two_to_64 == NULL) {
            return NULL;
        }
    }
    return PyModule_Create(&native_module);
}
#endif /* ENGINE_NATIVE_NO_PYTHON */

#else /* ENGINE_LANES_TEMPLATE */
/*
 * The body of one multi-lane kernel, included once per instruction set with
 * LANES_N, LANES_TARGET, LANES_NAME, lanes_v and the V_* operations defined
 * (see "Multi-lane vector kernels" above).
 */
/* Keeps the compiler from re-associating a sum through this value (an add
 * tree is otherwise flattened and h + W + K re-split around CH). */
#if defined(__GNUC__) || defined(__clang__)
#define LANES_OPAQUE(x) __asm__("" : "+v"(x))
#else
#define LANES_OPAQUE(x) ((void)0)
#endif
#define V_BSIG0(x) V_XOR3(V_ROR((x), 2), V_ROR((x), 13), V_ROR((x), 22))
#define V_BSIG1(x) V_XOR3(V_ROR((x), 6), V_ROR((x), 11), V_ROR((x), 25))
#define V_SSIG0(x) V_XOR3(V_ROR((x), 7), V_ROR((x), 18), V_SHR((x), 3))
#define V_SSIG1(x) V_XOR3(V_ROR((x), 17), V_ROR((x), 19), V_SHR((x), 10))

/*
 * Rounds r0..63 of one block from `st` (the state after rounds 0..r0-1), the
 * schedule computed on the fly; out = chain + result.  With `only_a`, just
 * out[0] (the digest's first word) is produced.  The state rotates through
 * s[] by index, so the fully unrolled rounds need no moves and may start at
 * any r0.
 */
static ALWAYS_INLINE LANES_TARGET void
LANES_NAME(block)(lanes_v out[8], const lanes_v st[8], const lanes_v chain[8],
                  lanes_v w[16], int r0, int only_a)
{
    lanes_v s[8];
    for (int i = 0; i < 8; i++) {
        s[(i - r0) & 7] = st[i];
    }
#pragma GCC unroll 64
    for (int t = 0; t < 64; t++) {
        if (t >= 16) {
            w[t & 15] = V_ADD(V_ADD(V_SSIG1(w[(t - 2) & 15]), w[(t - 7) & 15]),
                              V_ADD(V_SSIG0(w[(t - 15) & 15]), w[t & 15]));
        }
        if (t < r0) {
            continue;
        }
        lanes_v a = s[(0 - t) & 7], b = s[(1 - t) & 7], c = s[(2 - t) & 7];
        lanes_v d = s[(3 - t) & 7], e = s[(4 - t) & 7], f = s[(5 - t) & 7];
        lanes_v g = s[(6 - t) & 7], h = s[(7 - t) & 7];
        lanes_v t1 = V_ADD(V_ADD(h, V_BSIG1(e)),
                           V_ADD(V_CH(e, f, g), V_ADD(w[t & 15], V_SET1(K256[t]))));
        s[(3 - t) & 7] = V_ADD(d, t1);
        s[(7 - t) & 7] = V_ADD(t1, V_ADD(V_BSIG0(a), V_MAJ(a, b, c)));
    }
    if (only_a) {
        out[0] = V_ADD(chain[0], s[0]);
        return;
    }
    for (int i = 0; i < 8; i++) {
        out[i] = V_ADD(chain[i], s[i]);
    }
}

/* A block whose message is the same in every lane: `wk` = schedule + K. */
static ALWAYS_INLINE LANES_TARGET lanes_v
LANES_NAME(fixed_block_a)(const lanes_v chain[8], const uint32_t wk[64])
{
    lanes_v s[8];
    for (int i = 0; i < 8; i++) {
        s[i] = chain[i];
    }
#pragma GCC unroll 64
    for (int t = 0; t < 64; t++) {
        lanes_v a = s[(0 - t) & 7], b = s[(1 - t) & 7], c = s[(2 - t) & 7];
        lanes_v d = s[(3 - t) & 7], e = s[(4 - t) & 7], f = s[(5 - t) & 7];
        lanes_v g = s[(6 - t) & 7], h = s[(7 - t) & 7];
        lanes_v t1 = V_ADD(V_ADD(h, V_BSIG1(e)), V_ADD(V_CH(e, f, g), V_SET1(wk[t])));
        s[(3 - t) & 7] = V_ADD(d, t1);
        s[(7 - t) & 7] = V_ADD(t1, V_ADD(V_BSIG0(a), V_MAJ(a, b, c)));
    }
    return V_ADD(chain[0], s[0]);
}

/*
 * W[t] + K[t] of the one-block rounds (t > R), W[t] also left in w[t & 15]
 * when it varies: a uniform word is one broadcast, and of a varying one
 * only the terms that vary are vector work (the rest is c->part[t]).
 * `uni` and `t` are constants once the rounds are unrolled, so all of the
 * choice folds away.
 */
static ALWAYS_INLINE LANES_TARGET lanes_v
LANES_NAME(one_wk)(const one_consts *c, lanes_v w[16], const uint64_t uni, const int t)
{
    if (IS_UNIFORM(uni, t)) {
        return V_SET1(c->wk[t]);
    }
    if (t >= 16) {
        lanes_v x = V_SET1(0);
        int have = 0;
#define LANES_ACC(term)                                                      \
    do {                                                                     \
        x = have ? V_ADD(x, (term)) : (term);                                \
        have = 1;                                                            \
    } while (0)
        if (!IS_UNIFORM(uni, t - 2)) {
            LANES_ACC(V_SSIG1(w[(t - 2) & 15]));
        }
        if (!IS_UNIFORM(uni, t - 7)) {
            LANES_ACC(w[(t - 7) & 15]);
        }
        if (!IS_UNIFORM(uni, t - 15)) {
            LANES_ACC(V_SSIG0(w[(t - 15) & 15]));
        }
        if (!IS_UNIFORM(uni, t - 16)) {
            LANES_ACC(w[(t - 16) & 15]);
        }
        if (t < UNIFORM_TERMS_END && (IS_UNIFORM(uni, t - 2) | IS_UNIFORM(uni, t - 7) |
                                      IS_UNIFORM(uni, t - 15) | IS_UNIFORM(uni, t - 16))) {
            LANES_ACC(V_SET1(c->part[t]));
        }
#undef LANES_ACC
        w[t & 15] = x;
    }
    return V_ADD(w[t & 15], V_SET1(c->k[t]));
}

/*
 * The one-block case (nearly every layout) with R = r0 a compile-time
 * constant: the rounds before R vanish from the code (rather than being
 * skipped at run time: ~25% faster on AVX-512), round R is the scalar one
 * of one_consts, and the schedule folds its uniform words and terms.
 * lo0 and lo1 are the lanes' low digits in words R and R + 1; with SINGLE
 * (also a constant) they all sit in word R and lo1 is not read.  Returns
 * the digest's first word.
 */
static ALWAYS_INLINE LANES_TARGET lanes_v
LANES_NAME(one_block_a)(const one_consts *c, lanes_v chain0, lanes_v lo0, lanes_v lo1, const int R,
                        const int SINGLE)
{
    const uint64_t uni = SINGLE ? UNIFORM_WORDS1[R] : UNIFORM_WORDS[R];
    lanes_v w[16], s[8];

    w[R & 15] = V_ADD(V_SET1(c->msg[R & 15]), lo0);
    if (R + 1 < 16 && !SINGLE) {
        w[(R + 1) & 15] = V_ADD(V_SET1(c->msg[(R + 1) & 15]), lo1);
    }
    for (int i = 0; i < 8; i++) {
        s[(i - (R + 1)) & 7] = V_SET1(c->after[i]);
    }
    s[(0 - (R + 1)) & 7] = V_ADD(s[(0 - (R + 1)) & 7], lo0);
    s[(4 - (R + 1)) & 7] = V_ADD(s[(4 - (R + 1)) & 7], lo0);
    /* h + W + K of the next round is added one round early, while g (the next
     * round's h) is still live for CH anyway: CH may then overwrite g's
     * register instead of a copy of it (vpternlogd writes its first source),
     * and the add leaves the chain from e to the next e. */
    lanes_v hk = V_ADD(s[(7 - (R + 1)) & 7], LANES_NAME(one_wk)(c, w, uni, R + 1));
#pragma GCC unroll 64
    for (int t = R + 1; t < 64; t++) {
        lanes_v a = s[(0 - t) & 7], b = s[(1 - t) & 7], cc = s[(2 - t) & 7];
        lanes_v d = s[(3 - t) & 7], e = s[(4 - t) & 7], f = s[(5 - t) & 7];
        lanes_v g = s[(6 - t) & 7];
        lanes_v hk_next = hk;
        if (t + 1 < 64) {
            hk_next = V_ADD(g, LANES_NAME(one_wk)(c, w, uni, t + 1));
            LANES_OPAQUE(hk_next);
        }
        lanes_v t1 = V_ADD(hk, V_ADD(V_BSIG1(e), V_CH(e, f, g)));
        s[(3 - t) & 7] = V_ADD(d, t1);
        s[(7 - t) & 7] = V_ADD(t1, V_ADD(V_BSIG0(a), V_MAJ(a, b, cc)));
        hk = hk_next;
    }
    return V_ADD(chain0, s[0]);
}

#define LANES_ONE_BLOCK(R)                                                   \
    static LANES_TARGET __attribute__((noinline)) lanes_v                    \
    LANES_NAME(one_##R)(const one_consts *c, lanes_v chain0, lanes_v lo0, lanes_v lo1) \
    {                                                                        \
        return LANES_NAME(one_block_a)(c, chain0, lo0, lo1, R, 0);           \
    }                                                                        \
    static LANES_TARGET __attribute__((noinline)) lanes_v                    \
    LANES_NAME(one1_##R)(const one_consts *c, lanes_v chain0, lanes_v lo0, lanes_v lo1) \
    {                                                                        \
        return LANES_NAME(one_block_a)(c, chain0, lo0, lo1, R, 1);           \
    }
LANES_ONE_BLOCK(0)
LANES_ONE_BLOCK(1)
LANES_ONE_BLOCK(2)
LANES_ONE_BLOCK(3)
LANES_ONE_BLOCK(4)
LANES_ONE_BLOCK(5)
LANES_ONE_BLOCK(6)
LANES_ONE_BLOCK(7)
LANES_ONE_BLOCK(8)
LANES_ONE_BLOCK(9)
LANES_ONE_BLOCK(10)
LANES_ONE_BLOCK(11)
LANES_ONE_BLOCK(12)
LANES_ONE_BLOCK(13)
LANES_ONE_BLOCK(14)
LANES_ONE_BLOCK(15)
#undef LANES_ONE_BLOCK

static lanes_v (*const LANES_NAME(one_by_r0)[16])(const one_consts *, lanes_v, lanes_v, lanes_v) = {
    LANES_NAME(one_0), LANES_NAME(one_1), LANES_NAME(one_2), LANES_NAME(one_3),
    LANES_NAME(one_4), LANES_NAME(one_5), LANES_NAME(one_6), LANES_NAME(one_7),
    LANES_NAME(one_8), LANES_NAME(one_9), LANES_NAME(one_10), LANES_NAME(one_11),
    LANES_NAME(one_12), LANES_NAME(one_13), LANES_NAME(one_14), LANES_NAME(one_15),
};

/* The same when the low digits all sit in one word. */
static lanes_v (*const LANES_NAME(one1_by_r0)[16])(const one_consts *, lanes_v, lanes_v, lanes_v) = {
    LANES_NAME(one1_0), LANES_NAME(one1_1), LANES_NAME(one1_2), LANES_NAME(one1_3),
    LANES_NAME(one1_4), LANES_NAME(one1_5), LANES_NAME(one1_6), LANES_NAME(one1_7),
    LANES_NAME(one1_8), LANES_NAME(one1_9), LANES_NAME(one1_10), LANES_NAME(one1_11),
    LANES_NAME(one1_12), LANES_NAME(one1_13), LANES_NAME(one1_14), LANES_NAME(one1_15),
};

static LANES_TARGET int
LANES_NAME(scan_segment)(const scan_ctx *ctx, uint64_t first, uint64_t last,
                         int digits, uint64_t *found)
{
    lane_plan plan;
    high_plan hp;
    one_consts oc;
    lanes_v chain[8], start[8], base[16], w[16], out[8], a;
    const lanes_v target_a = V_SET1(ctx->target[0]);

    lane_plan_init(&plan, ctx, first, digits);
    hp.start_valid = 0;
    memcpy(oc.k, K256, sizeof(oc.k));
    const uint64_t span = plan.span;
    uint64_t n = first;
    for (;;) {
        const uint64_t high = n / span;
        const uint64_t high_base = high * span;
        /* Inclusive, as offsets from high_base; never overflows. */
        uint64_t lo = n - high_base;
        const uint64_t lo_end = last - high_base < span ? last - high_base : span - 1;

        lane_plan_high(&plan, ctx, high, &hp);
        for (int i = 0; i < 8; i++) {
            chain[i] = V_SET1(hp.chain[i]);
            start[i] = V_SET1(hp.start[i]);
        }
        for (int i = 0; i < 16; i++) {
            base[i] = V_SET1(hp.msg[i]);
        }
        const lanes_v v0_base = base[hp.v0];
        const lanes_v v1_base = hp.v1 >= 0 ? base[hp.v1] : base[hp.v0];
        lanes_v (*const one)(const one_consts *, lanes_v, lanes_v, lanes_v) =
            hp.v1 < 0 ? LANES_NAME(one1_by_r0)[hp.r0] : LANES_NAME(one_by_r0)[hp.r0];
        const lanes_v zero = V_SET1(0);
        if (hp.mode == PLAN_ONE) {
            one_consts_init(&oc, &hp);
        }
        lanes_v second_base = V_SET1(0);
        if (hp.mode == PLAN_STRADDLE) {
            second_base = V_SET1(hp.msg2[0]);
        }

        for (;;) {
            if (hp.mode == PLAN_ONE) {
                lanes_v lo0 = V_LOADU(plan.table[0] + lo);
                lanes_v lo1 = hp.v1 >= 0 ? V_LOADU(plan.table[1] + lo) : zero;
                a = one(&oc, chain[0], lo0, lo1);
            }
            else {
                /* Two blocks, the first with low digits: rounds from r0 at run time. */
                lanes_v mid[8];
                memcpy(w, base, sizeof(w));
                w[hp.v0] = V_OR(v0_base, V_LOADU(plan.table[0] + lo));
                if (hp.v1 >= 0) {
                    w[hp.v1] = V_OR(v1_base, V_LOADU(plan.table[1] + lo));
                }
                LANES_NAME(block)(mid, start, chain, w, hp.r0, 0);
                if (hp.mode == PLAN_FIXED_SECOND) {
                    a = LANES_NAME(fixed_block_a)(mid, hp.wk2);
                }
                else {
                    for (int i = 0; i < 16; i++) {
                        w[i] = V_SET1(hp.msg2[i]);
                    }
                    w[0] = V_OR(second_base, V_LOADU(plan.table[1] + lo));
                    LANES_NAME(block)(out, mid, mid, w, 0, 1);
                    a = out[0];
                }
            }
            unsigned hits = V_LE_MASK(a, target_a);
            uint64_t left = lo_end - lo; /* lanes beyond lo_end are not ours */
            if (left < LANES_N - 1) {
                hits &= (1u << (left + 1)) - 1u;
            }
            while (hits) {
                int j = __builtin_ctz(hits);
                uint64_t nonce = high_base + lo + (uint64_t)j;
                if (nonce_below_target(ctx, nonce, digits)) {
                    *found = nonce;
                    return 1;
                }
                hits &= hits - 1;
            }
            if (left < LANES_N) {
                break;
            }
            lo += LANES_N;
        }
        if (last - high_base == lo_end) {
            return 0;
        }
        n = high_base + lo_end + 1;
    }
}

#undef LANES_OPAQUE
#undef V_BSIG0
#undef V_BSIG1
#undef V_SSIG0
#undef V_SSIG1
#undef LANES_N
#undef LANES_TARGET
#undef LANES_NAME
#undef lanes_v
#undef V_SET1
#undef V_LOADU
#undef V_ADD
#undef V_OR
#undef V_ROR
#undef V_SHR
#undef V_XOR3
#undef V_CH
#undef V_MAJ
#undef V_LE_MASK
#endif /* ENGINE_LANES_TEMPLATE */
