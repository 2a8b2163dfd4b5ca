#!/usr/bin/env python3
# q4gemm_layout.py - a model of kernels/q4gemm.cu's data movement at the index level, in
# numpy: the tile layout (llm_k_q4_tile's tile_pos), the block's shared-memory stages (tiles
# as copied, x rows with their 16-byte pieces XOR-swizzled), each lane's A fragments from its
# tile word (t2dq), ldmatrix.x4's B fragments, the m16n8k16 fragment maps, the group scales
# at the group ends, integral zero points subtracted from the codes, split K and the staged
# store - checked against a float64 product.  No GPU needed; run it by hand (python3
# tests/gpu/q4gemm_layout.py, numpy) when the kernel's indexing changes: it says OK or BAD
# per shape and exits non-zero on BAD.
import numpy as np, itertools, sys
rng = np.random.default_rng(1)

def tile_pos(n, k, K):
    tile = (n // 16) * (K // 64) + k // 64
    r = n % 16; kk = k % 64; s = kk // 16; c = kk % 16
    lane = (r & 7) * 4 + (c & 7) // 2
    nib = (r >> 3) + 2 * (c >> 3) + 4 * (c & 1)
    return tile * 128 + lane * 4 + s, nib

def make_tiles(W, N, K):  # W int codes -8..7
    d = np.zeros(N * K // 8, dtype=np.uint64)
    for n in range(N):
        for k in range(K):
            w, j = tile_pos(n, k, K)
            d[w] |= np.uint64(((int(W[n, k]) & 0xf) ^ 8) << (4 * j))
    return d.astype(np.uint32)

def a4(w):  # -> 4 regs, each (lo, hi) values
    out = []
    for j in range(4):
        lo = ((w >> (4 * j)) & 0xf) - 8
        hi = ((w >> (16 + 4 * j)) & 0xf) - 8
        out.append((lo, hi))
    return out

def run(M, N, K, GS, BN, S_req, ZP=False):
    W = rng.integers(-8, 8, size=(N, K))
    X = rng.standard_normal((M, K)).astype(np.float64)
    NG = K // GS
    sc = rng.random((N, NG)) + 0.5
    Z = rng.integers(-8, 9, size=(N, NG)) if ZP else np.zeros((N, NG), dtype=int)
    ref = np.zeros((M, N))
    for n in range(N):
        for g_ in range(NG):
            ref[:, n] += sc[n, g_] * (X[:, g_*GS:(g_+1)*GS] @ (W[n, g_*GS:(g_+1)*GS] - Z[n, g_]))
    tiles = make_tiles(W, N, K)  # uint32 words
    tbytes = tiles.view(np.uint8)
    WARPS, WR = 4, 2; BM = WARPS * WR * 16; STAGES = 4
    KT = K // 64; ntile = N // 16
    unit = GS // 64 if GS > 64 else 1; nu = KT // unit
    S = S_req
    kcs = -(-nu // S) * unit; S = -(-KT // kcs)
    mb = -(-M // BN); nb = -(-N // BM)
    part = np.zeros((S, M, N)); y = np.zeros((M, N))
    for bx, by, bz in itertools.product(range(mb), range(nb), range(S)):
        m0 = bx * BN; rt0 = by * (BM // 16)
        kc0 = bz * kcs; kc1 = min(KT, kc0 + kcs)
        acc = np.zeros((WARPS, 32, WR, BN // 8, 4)); prt = np.zeros_like(acc)
        for kc in range(kc0, kc1):
            # smem for this chunk
            sa = np.zeros(BM // 16 * 512, dtype=np.uint8)
            for u in range(BM // 16 * 512 // 16):
                rt = rt0 + (u >> 5)
                if rt < ntile:
                    src = (rt * KT + kc) * 512 + (u & 31) * 16
                    sa[u*16:u*16+16] = tbytes[src:src+16]
            sb = np.zeros((BN * 64,))  # as 16-bit elements, address in elements
            for u in range(BN * 8):
                r, c = u >> 3, u & 7
                if m0 + r < M:
                    dst = r * 64 + ((c ^ (r & 7)) * 8)
                    sb[dst:dst+8] = X[m0 + r, kc*64 + c*8: kc*64 + c*8 + 8]
            for warp in range(WARPS):
                # lanes' data
                aw = np.zeros((32, WR, 4), dtype=np.uint64)
                for lane in range(32):
                    for i in range(WR):
                        off = (warp * WR + i) * 512 + lane * 16
                        aw[lane, i] = sa[off:off+16].view(np.uint32)
                sc_l = np.zeros((32, WR, 2, 2))
                for lane in range(32):
                    g = lane >> 2
                    for i in range(WR):
                        rt = rt0 + warp * WR + i
                        live = rt < ntile
                        for h in range(2):
                            gi = (kc * 64 + 32 * h + 16) // GS
                            need = GS == 32 or (h == 1 and ((kc + 1) * 64) % GS == 0)
                            if need and live:
                                sc_l[lane, i, h, 0] = sc[rt * 16 + g, gi]
                                sc_l[lane, i, h, 1] = sc[rt * 16 + g + 8, gi]
                # zero points of the chunk's groups, per lane and tile (rows g, g + 8)
                zc = np.zeros((32, WR, 2, 2), dtype=int)
                for lane in range(32):
                    g = lane >> 2
                    for i in range(WR):
                        rt = rt0 + warp * WR + i
                        for h in range(2 if GS == 32 else 1):
                            gi = (kc * 64 + 32 * h) // GS
                            if rt < ntile and ZP:
                                zc[lane, i, h] = (Z[rt * 16 + g, gi], Z[rt * 16 + g + 8, gi])
                for ks in range(4):
                    af = []
                    for lane in range(32):
                        row = []
                        for i in range(WR):
                            zl, zh = zc[lane, i, ks >> 1 if GS == 32 else 0]
                            f = a4(int(aw[lane, i, ks]))
                            row.append([(lo - (zh if j & 1 else zl), hi - (zh if j & 1 else zl))
                                        for j, (lo, hi) in enumerate(f)])
                        af.append(row)
                    for jj in range(BN // 16):
                        # ldmatrix x4: lane supplies row address
                        addr = []
                        for lane in range(32):
                            lrow = 8 * (lane >> 4) + (lane & 7); lhalf = (lane >> 3) & 1
                            row = 16 * jj + lrow; ch = 2 * ks + lhalf
                            addr.append(row * 64 + ((ch ^ (row & 7)) * 8))
                        b = np.zeros((32, 4, 2))
                        for mtx in range(4):
                            for lane in range(32):
                                rowaddr = addr[mtx * 8 + lane // 4]
                                b[lane, mtx] = sb[rowaddr + 2 * (lane % 4): rowaddr + 2 * (lane % 4) + 2]
                        # mma: build A (16x16), B (16x8) from fragments, check consistency
                        for i in range(WR):
                            A = np.full((16, 16), np.nan)
                            for lane in range(32):
                                g, t = lane >> 2, lane & 3
                                f = af[lane][i]
                                for (rr, cc), val in [((g, 2*t), f[0][0]), ((g, 2*t+1), f[0][1]),
                                                      ((g+8, 2*t), f[1][0]), ((g+8, 2*t+1), f[1][1]),
                                                      ((g, 2*t+8), f[2][0]), ((g, 2*t+9), f[2][1]),
                                                      ((g+8, 2*t+8), f[3][0]), ((g+8, 2*t+9), f[3][1])]:
                                    A[rr, cc] = val
                            for half in range(2):
                                B = np.full((16, 8), np.nan)
                                for lane in range(32):
                                    g, t = lane >> 2, lane & 3
                                    b0 = b[lane, 2 * half]; b1 = b[lane, 2 * half + 1]
                                    B[2*t, g], B[2*t+1, g] = b0
                                    B[2*t+8, g], B[2*t+9, g] = b1
                                D = A @ B
                                j = 2 * jj + half
                                for lane in range(32):
                                    g, t = lane >> 2, lane & 3
                                    prt[warp, lane, i, j] += [D[g, 2*t], D[g, 2*t+1], D[g+8, 2*t], D[g+8, 2*t+1]]
                    if ks & 1:
                        h = ks >> 1
                        gend = GS == 32 or (h == 1 and ((kc + 1) * 64) % GS == 0)
                        if gend:
                            for lane in range(32):
                                for i in range(WR):
                                    s0, s1 = sc_l[lane, i, h]
                                    acc[warp, lane, i, :, 0:2] += s0 * prt[warp, lane, i, :, 0:2]
                                    acc[warp, lane, i, :, 2:4] += s1 * prt[warp, lane, i, :, 2:4]
                            prt[warp] = 0
        LDO = BM + 4
        so = np.zeros(BN * LDO)
        for warp in range(WARPS):
            for lane in range(32):
                g, t = lane >> 2, lane & 3
                for i in range(WR):
                    for j in range(BN // 8):
                        r = (warp * WR + i) * 16 + g; c = 8 * j + 2 * t
                        a = acc[warp, lane, i, j]
                        so[c*LDO + r] = a[0]; so[(c+1)*LDO + r] = a[1]
                        so[c*LDO + r + 8] = a[2]; so[(c+1)*LDO + r + 8] = a[3]
        mn = min(BN, M - m0)
        for e in range(mn * BM):
            c, r = e // BM, e % BM; n = rt0 * 16 + r
            if n >= N: continue
            v = so[c * LDO + r]
            if S > 1: part[bz, m0 + c, n] = v
            else: y[m0 + c, n] = v
    if S > 1: y = part.sum(0)
    err = np.abs(y - ref).max() / np.abs(ref).max()
    print(f"M={M} N={N} K={K} GS={GS} BN={BN} S={S} ZP={int(ZP)}: max rel err {err:.2e}", "OK" if err < 1e-9 else "BAD")
    return err < 1e-9

ok = True
for args in [(33, 176, 256, 64, 64, 1), (9, 144, 256, 32, 32, 2), (40, 272, 384, 128, 32, 1),
             (70, 160, 512, 128, 64, 2), (5, 48, 128, 32, 32, 1), (33, 176, 256, 32, 64, 2, True),
             (40, 144, 512, 128, 32, 1, True), (9, 160, 256, 64, 32, 1, True)]:
    ok &= run(*args)
sys.exit(0 if ok else 1)
