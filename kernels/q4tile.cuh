/* q4tile.cuh - the tensor-core pieces shared by the int4 tile-layout kernels
 * (qgemv.cu's GEMVs, q4gemm.cu's GEMM): m16n8k16 products in f16 / bf16 with
 * fp32 accumulation, and a lane's A fragment of one k-step made from its
 * 32-bit word of the tile layout (kernels.h, llm_k_q4_tile): eight nibbles
 * stored as q + 8 become four registers of two exact 16-bit values q. */
#ifndef LLM_KERNELS_Q4TILE_CUH
#define LLM_KERNELS_Q4TILE_CUH

#include "common.cuh"

template <typename T> struct tc;
template <> struct tc<__half> {
    static constexpr uint32_t magic = 0x64006400u;
    static __device__ __forceinline__ uint32_t sub(uint32_t a)
    {
        __half2 h = *reinterpret_cast<__half2 *>(&a);
        h = __hsub2(h, __floats2half2_rn(1032.f, 1032.f));
        return *reinterpret_cast<uint32_t *>(&h);
    }
    static __device__ __forceinline__ uint32_t pack(float a, float b)
    {
        __half2 h = __floats2half2_rn(a, b);
        return *reinterpret_cast<uint32_t *>(&h);
    }
    static __device__ __forceinline__ void mma(float *d, const uint32_t *a, uint32_t b0,
                                               uint32_t b1)
    {
        asm volatile("mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0,%1,%2,%3}, "
                     "{%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};\n"
                     : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
                     : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
    }
};
template <> struct tc<bf16> {
    static constexpr uint32_t magic = 0x43004300u;
    static __device__ __forceinline__ uint32_t sub(uint32_t a)
    {
        __nv_bfloat162 h = *reinterpret_cast<__nv_bfloat162 *>(&a);
        h = __hsub2(h, __floats2bfloat162_rn(136.f, 136.f));
        return *reinterpret_cast<uint32_t *>(&h);
    }
    static __device__ __forceinline__ uint32_t pack(float a, float b)
    {
        __nv_bfloat162 h = __floats2bfloat162_rn(a, b);
        return *reinterpret_cast<uint32_t *>(&h);
    }
    static __device__ __forceinline__ void mma(float *d, const uint32_t *a, uint32_t b0,
                                               uint32_t b1)
    {
        asm volatile("mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, "
                     "{%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};\n"
                     : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
                     : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
    }
};

template <typename T> struct t2dq;
template <> struct t2dq<bf16> {
    /* word of a lane's A fragment (tile layout, nibbles q + 8) -> its four bf16x2 registers:
     * a4z with no zero point, 128 + u - 136 = q */
    static __device__ __forceinline__ void a4(uint32_t w, uint32_t *a)
    {
        a4z(w, a, make_uint2(0x43084308u, 0x43084308u));
    }
    /* the constants of a4z for zero points zlo (row g: a[0], a[2]) and zhi (row g + 8) */
    static __device__ __forceinline__ uint2 zc(int zlo, int zhi)
    {
        const uint32_t l = __bfloat16_as_ushort(__float2bfloat16_rn(136.f + (float)zlo));
        const uint32_t h = __bfloat16_as_ushort(__float2bfloat16_rn(136.f + (float)zhi));
        return make_uint2(l | l << 16, h | h << 16);
    }
    /* two exact values (a4's registers) times s in fp32, rounded to bf16 once */
    static __device__ __forceinline__ uint32_t scale2(uint32_t q, float s)
    {
        return tc<bf16>::pack(__uint_as_float(q << 16) * s, __uint_as_float(q & 0xffff0000u) * s);
    }
    /* two exact values (a4's registers) times sp, a bf16 scale twice: the exact product
     * (at most 5 x 8 significant bits) rounded once, so the bits of scale2 whenever its
     * scale is a bf16 value - one instruction for scale2's five */
    static __device__ __forceinline__ uint32_t mul2(uint32_t q, uint32_t sp)
    {
        uint32_t r;
        asm("fma.rn.bf16x2 %0, %1, %2, %3;\n" : "=r"(r) : "r"(q), "r"(sp), "r"(0x80008000u));
        return r;
    }
    /* a4 with zero points: 128 + u - (136 + z) = q - z, exact for |z| <= 16 */
    static __device__ __forceinline__ void a4z(uint32_t w, uint32_t *a, uint2 c)
    {
        const uint32_t magic = 0x43004300u;
        uint32_t r[4];
#pragma unroll
        for (int j = 0; j < 4; j++)
            asm("lop3.b32 %0, %1, 0x000f000f, %2, 0xea;\n"
                : "=r"(r[j])
                : "r"(w >> (4 * j)), "r"(magic));
#pragma unroll
        for (int j = 0; j < 4; j++)
            asm("sub.rn.bf16x2 %0, %1, %2;\n" : "=r"(a[j]) : "r"(r[j]), "r"(j & 1 ? c.y : c.x));
    }
};
template <> struct t2dq<__half> {
    /* a4z with no zero point: 1024 + u - 1032 = q; (1024 + 16 u) / 16 - 72 = q (exact) */
    static __device__ __forceinline__ void a4(uint32_t w, uint32_t *a)
    {
        a4z(w, a, make_uint2(0x64086408u, 0xd480d480u));
    }
    /* the constants of a4z: 1032 + zlo (subtracted, row g) and -(72 + zhi) (added, row g + 8) */
    static __device__ __forceinline__ uint2 zc(int zlo, int zhi)
    {
        const uint32_t l = __half_as_ushort(__float2half_rn(1032.f + (float)zlo));
        const uint32_t h = __half_as_ushort(__float2half_rn(-72.f - (float)zhi));
        return make_uint2(l | l << 16, h | h << 16);
    }
    /* two exact values (a4's registers) times s in fp32, rounded to f16 once */
    static __device__ __forceinline__ uint32_t scale2(uint32_t q, float s)
    {
        const float2 f = __half22float2(*reinterpret_cast<const __half2 *>(&q));
        return tc<__half>::pack(f.x * s, f.y * s);
    }
    /* the same as t2dq<bf16>::mul2 for an f16 scale (5 x 11 bits, rounded once) */
    static __device__ __forceinline__ uint32_t mul2(uint32_t q, uint32_t sp)
    {
        uint32_t r;
        asm("fma.rn.f16x2 %0, %1, %2, %3;\n" : "=r"(r) : "r"(q), "r"(sp), "r"(0x80008000u));
        return r;
    }
    /* a4 with zero points: q - z exactly for |z| <= 16 */
    static __device__ __forceinline__ void a4z(uint32_t w, uint32_t *a, uint2 c)
    {
        const uint32_t magic = 0x64006400u, w8 = w >> 8;
        uint32_t r[4];
        asm("lop3.b32 %0, %1, 0x000f000f, %2, 0xea;\n" : "=r"(r[0]) : "r"(w), "r"(magic));
        asm("lop3.b32 %0, %1, 0x00f000f0, %2, 0xea;\n" : "=r"(r[1]) : "r"(w), "r"(magic));
        asm("lop3.b32 %0, %1, 0x000f000f, %2, 0xea;\n" : "=r"(r[2]) : "r"(w8), "r"(magic));
        asm("lop3.b32 %0, %1, 0x00f000f0, %2, 0xea;\n" : "=r"(r[3]) : "r"(w8), "r"(magic));
#pragma unroll
        for (int j = 0; j < 4; j += 2) {
            asm("sub.rn.f16x2 %0, %1, %2;\n" : "=r"(a[j]) : "r"(r[j]), "r"(c.x));
            asm("fma.rn.f16x2 %0, %1, %2, %3;\n"
                : "=r"(a[j + 1])
                : "r"(r[j + 1]), "r"(0x2c002c00u), "r"(c.y));
        }
    }
};

#endif
