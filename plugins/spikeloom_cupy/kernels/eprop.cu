// e-prop (SPEC section 6): the per-synapse part of one step, fused.  One thread per synapse
// (i, j) of one trainable connection into a trained population; it walks the batch, updates the
// synapse's traces, forms the eligibility e, filters e[t - delay] with the readout's own impulse
// response into e_bar, and accumulates sum_b L[b, j] e_bar[b, i, j] (and the regulariser's
// sum_b R[b, j] e[b, i, j]) into grad[i, j].  No atomics: each thread owns its synapse.
//
// Traces, index ((b * n_pre) + i) * n_post + j:
//   eps_a[t] = psi[t-1] eps_v[t-1] + (rho - psi[t-1] beta) eps_a[t-1]           (ALIF)
//   eps_I[t] = alpha_syn eps_I[t-1] + p_i[t]                                    (per synapse only
//   eps_v[t] = alpha_mem (1 - z[t-1] if zero reset) eps_v[t-1] + g eps_I[t]     where not shared)
//   e[t]     = psi[t] (eps_v[t] - beta eps_a[t])
// Where every target neuron shares alpha_syn (alpha_mem, g, and the reset subtracts), eps_I
// (eps_v) is one trace per presynaptic neuron [B, n_pre], double-buffered: the update reads
// *_old and the threads of j = 0 write *_new (every thread computes the same value from *_old,
// so no thread reads what another writes in the same launch); the host swaps the buffers after
// the step.  Calls without SL_EP_UPDATE read the new values.
// The batch is split into chunks of bc examples: thread w = c * n_pre * n_post + s handles
// synapse s for the examples of chunk c, and grad [chunks, n_pre, n_post] keeps one partial sum
// per chunk (summed over the chunks once, after the last step): many more threads, each walking a
// short loop, keep more memory requests in flight.
// e_hist [D, B, n_pre, n_post] is a ring of the last D values of e: slot is t mod D, and
// read_slot holds e[t - delay].  With a readout whose time constants differ per neuron, e_bar has
// a readout axis of K (last) and the learning signal is delta [B, K] through fb [n_post, K].
#include "common.cuh"

#define SL_EP_UPDATE 1      // first call of the step for this connection: update the traces
#define SL_EP_WRITE_E 2     // last call: store e[t] in the ring
#define SL_EP_ALIF 4
#define SL_EP_SYN_I 8       // eps_I per synapse
#define SL_EP_SYN_V 16      // eps_v per synapse
#define SL_EP_ZERO_RESET 32
#define SL_EP_HAS_L 64      // a learning signal this step
#define SL_EP_HAS_R 128     // the rate regulariser
#define SL_EP_HETERO 256    // per-neuron readout time constants (e_bar has a readout axis)
#define SL_EP_R_DELTA 512   // the readout has a delta synapse
#define SL_EP_R_UNIT 1024   // the readout's input gain is 1
#define SL_EP_RECOMPUTE 2048  // delay 1, one readout connection: e[t-1] is recomputed from the
                              // traces of t-1 instead of being kept in e_hist

// The batch split into chunks of bc examples, the last maybe shorter (the per-synapse and the
// readout-gradient kernels run one thread per element and chunk): how many chunks, and the
// examples b0 .. b1 - 1 of chunk c.
__device__ __forceinline__ long long sl_batch_chunks(int B, int bc) { return (B + bc - 1) / bc; }
__device__ __forceinline__ void sl_batch_range(long long c, int B, int bc, int& b0, int& b1) {
    b0 = (int)c * bc;
    b1 = b0 + bc < B ? b0 + bc : B;
}
// Thread w of a kernel with one thread per entry of an [n / cols, cols] array and batch chunk
// (entry w mod n, chunk w / n): the entry's row and column, and its chunk's examples b0 .. b1 - 1.
__device__ __forceinline__ void sl_entry_and_chunk(long long w, long long n, int cols, int B, int bc, long long& row,
                                                   int& col, int& b0, int& b1) {
    long long e = w % n;
    row = e / cols;
    col = (int)(e % cols);
    sl_batch_range(w / n, B, bc, b0, b1);
}
// One step of the presynaptic traces in the chunked kernels, with fused multiply-adds:
// eps_I = alpha_syn eps_I + p, eps_v = decay eps_v + g eps_I.  eprop_synapse_chunk (traces in the
// synapse's thread) and eprop_pre_chunk (shared traces, once per presynaptic neuron) both call it,
// so that their values agree bit for bit.
template <typename T>
__device__ __forceinline__ void sl_pre_trace_step(T& eI, T& ev, T as, T decay, T g, T p) {
    eI = sl_fma(as, eI, p);
    ev = sl_fma(decay, ev, g * eI);
}

template <typename T>
__global__ void eprop_synapse_step(
    int B, int bc, int n_pre, int n_post, int K, int flags, int slot, int read_slot,
    const T* pre, const T* epsI_old, T* epsI_new, const T* epsv_old, T* epsv_new,
    const T* am, const T* as, const T* g, const T* rho, const T* beta,
    const T* psi, const T* psi_prev, const T* z_prev,
    T* eps_I, T* eps_v, T* eps_a, T* e_hist,
    const T* r_as, const T* r_am, const T* r_g, T* ebar_I, T* ebar_V,
    const T* signal, const T* fb, const T* R, T reg_scale, T* grad) {
    const int alif = flags & SL_EP_ALIF, syn_I = flags & SL_EP_SYN_I, syn_v = flags & SL_EP_SYN_V;
    const int hetero = flags & SL_EP_HETERO, r_delta = flags & SL_EP_R_DELTA, r_unit = flags & SL_EP_R_UNIT;
    const int Kf = hetero ? K : 1;
    const long long BPN = (long long)B * n_pre * n_post;
    const long long NS = (long long)n_pre * n_post;
    const long long chunks = sl_batch_chunks(B, bc);
    SL_GRID_STRIDE(w, chunks * NS) {
        long long i;
        int j, b0, b1;
        sl_entry_and_chunk(w, NS, n_post, B, bc, i, j, b0, b1);
        T c_am = am[j], c_as = as[j], c_g = g[j];
        T c_rho = alif ? rho[j] : T(0), c_beta = alif ? beta[j] : T(0);
        T acc = T(0), acc_r = T(0);
        for (int b = b0; b < b1; ++b) {
            long long bi = (long long)b * n_pre + i;
            long long bj = (long long)b * n_post + j;
            long long k = bi * n_post + j;
            T ev;
            T e_d = T(0);
            T a_now = T(0);  // eps_a[t], kept in a register for e below
            if (flags & SL_EP_UPDATE) {
                T ev_old = syn_v ? eps_v[k] : epsv_old[bi];
                T pp = psi_prev[bj];
                if (alif) {
                    T a_old = eps_a[k];
                    if (flags & SL_EP_RECOMPUTE) e_d = pp * (ev_old - c_beta * a_old);
                    a_now = pp * ev_old + (c_rho - pp * c_beta) * a_old;
                    eps_a[k] = a_now;
                } else if (flags & SL_EP_RECOMPUTE) {
                    e_d = pp * ev_old;
                }
                T eI;
                if (syn_I) {
                    eI = c_as * eps_I[k] + pre[bi];
                    eps_I[k] = eI;
                } else {
                    eI = c_as * epsI_old[bi] + pre[bi];
                    if (j == 0) epsI_new[bi] = eI;
                }
                if (syn_v) {
                    T decay = (flags & SL_EP_ZERO_RESET) ? c_am * (T(1) - z_prev[bj]) : c_am;
                    ev = decay * ev_old + c_g * eI;
                    eps_v[k] = ev;
                } else {
                    ev = c_am * ev_old + c_g * eI;
                    if (j == 0) epsv_new[bi] = ev;
                }
            } else {
                ev = syn_v ? eps_v[k] : epsv_new[bi];
                if (alif) a_now = eps_a[k];
            }
            T elig = alif ? ev - c_beta * a_now : ev;
            T e = psi[bj] * elig;
            if ((flags & SL_EP_UPDATE) && (flags & SL_EP_HAS_R)) acc_r += R[bj] * e;
            if (!(flags & SL_EP_RECOMPUTE)) e_d = e_hist[(long long)read_slot * BPN + k];
            for (int q = 0; q < Kf; ++q) {
                long long f = k * Kf + q;
                T cur;
                if (r_delta) {
                    cur = e_d;
                } else {
                    cur = r_as[q] * ebar_I[f] + e_d;
                    ebar_I[f] = cur;
                }
                T mem = r_am[q] * ebar_V[f] + (r_unit ? cur : r_g[q] * cur);
                ebar_V[f] = mem;
                if (flags & SL_EP_HAS_L) {
                    if (hetero) {
                        acc += signal[(long long)b * K + q] * fb[(long long)j * K + q] * mem;
                    } else {
                        acc += signal[bj] * mem;
                    }
                }
            }
            if (flags & SL_EP_WRITE_E) e_hist[(long long)slot * BPN + k] = e;
        }
        if (flags & SL_EP_HAS_R) grad[w] += reg_scale * acc_r;
        if (flags & SL_EP_HAS_L) grad[w] += acc;
    }
}

// The per-synapse part of `steps` consecutive steps at once (at most EPROP_STEPS of them), for a
// population whose one readout connection has delay 1 and whose readout shares its time constants
// (SL_EP_RECOMPUTE without SL_EP_HETERO): what eprop_synapse_step does step by step, with every
// trace of the synapse, its filtered eligibility and its gradient sum kept in registers across
// the steps, so the per-synapse arrays are read and written once per call instead of once per
// step.  The forward pass does not depend on the traces, so the host first runs the steps and
// stacks what the kernel reads per step: psi and z_prev [steps + 1, B, n_post] (slot 0 holds the
// step before the first), signal [steps, B, n_post] (the learning signal, 0 outside the loss
// window: adding 0 * e_bar leaves the sum unchanged) and R [steps, B, n_post] (the regulariser,
// SL_EP_HAS_R).  The delivered presynaptic spikes of step q are read from the source's ring
// [pre_slots, B, n_pre] (the forward stepper's), slot (pre_base + q) mod pre_slots.  The traces
// kept one per presynaptic neuron are read from *_old and written, after the last step, to *_new
// by the threads of j = 0.  Per synapse the gradient adds sum over its examples and the steps of
// L e_bar (and reg_scale times sum R e) to grad[c, i, j]: the same terms as step by step, summed
// in another order.
// Each thread takes TILE consecutive presynaptic neurons i0 .. i0 + TILE - 1 (fewer in the last
// tile) of one postsynaptic neuron j and one batch chunk c: what a step reads per postsynaptic
// neuron (psi, z_prev, the learning signal, R) is loaded once for the tile's synapses instead of
// once per synapse, and the tile's traces stay in registers (TILE is a template argument so that
// their number is known when compiling).  The threads are laid out in warps of 32 consecutive
// postsynaptic neurons, `group` consecutive warps taking the same 32 neurons for `group`
// consecutive tiles: thread w = (((c * tile_groups + tg) * j_groups + jg) * group + t) * 32 + l
// takes tile tg * group + t and neuron jg * 32 + l (threads beyond the last tile or neuron do
// nothing).  With `group` warps per block, a block's warps read the same per-neuron values at each
// step, which the first of them brings into the SM's L1 cache for the others.  Each synapse's
// arithmetic, and the order of its sums, depends neither on TILE nor on `group`.
// FIXED >= 0: the flags SL_EP_HAS_R, SL_EP_R_DELTA and SL_EP_R_UNIT as known when compiling (the
// bits of FIXED; those bits of `flags` are not read), so that the loop over the synapses carries no
// test of them; FIXED = -1 reads them from `flags`.  The same operations either way.
// The synapse's recursions use fused multiply-adds (sl_fma), and eps_a[t] is written as
// rho eps_a[t-1] + e[t-1], which equals psi[t-1] eps_v[t-1] + (rho - psi[t-1] beta) eps_a[t-1]:
// fewer roundings and instructions per synapse-step than eprop_synapse_step, which rounds every
// product and sum as the reference does.
// SHARED = 1 (only without SL_EP_SYN_I and SL_EP_SYN_V): eps_I and eps_v are the same for every
// postsynaptic neuron, and eprop_pre_chunk has advanced them over the chunk's steps already:
// `pre` then holds eps_v before the first step and after each step, [steps + 1, B, n_pre] and at
// least TILE - 1 more values (read, not used, by the threads of a last, partial tile), and
// the thread reads it instead of updating eps_I and eps_v itself (pre_base, pre_slots and the
// epsI_* / epsv_* buffers are not read).  The values are those the thread would compute, by the
// same operations in the same order.
template <typename T, int TILE, int SHARED, int FIXED>
__global__ void eprop_synapse_chunk(
    int B, int bc, int n_pre, int n_post, int steps, int flags, int pre_base, int pre_slots, int group,
    const T* pre, const T* epsI_old, T* epsI_new, const T* epsv_old, T* epsv_new,
    const T* am, const T* as, const T* g, const T* rho, const T* beta,
    const T* psi, const T* z_prev, T* eps_I, T* eps_v, T* eps_a,
    const T* r_as, const T* r_am, const T* r_g, T* ebar_I, T* ebar_V,
    const T* signal, const T* R, T reg_scale, T* grad) {
    const int alif = flags & SL_EP_ALIF, syn_I = flags & SL_EP_SYN_I, syn_v = flags & SL_EP_SYN_V;
    const int fixed = FIXED >= 0 ? FIXED : flags;
    const int r_delta = fixed & SL_EP_R_DELTA, r_unit = fixed & SL_EP_R_UNIT, has_R = fixed & SL_EP_HAS_R;
    const int zero_reset = flags & SL_EP_ZERO_RESET;
    const long long NS = (long long)n_pre * n_post;
    const long long tiles = (n_pre + TILE - 1) / TILE;
    const long long tile_groups = (tiles + group - 1) / group, j_groups = (n_post + 31) / 32;
    const long long per_chunk = tile_groups * j_groups * group * 32;  // threads per batch chunk
    const long long BI = (long long)B * n_pre, BJ = (long long)B * n_post;
    const long long chunks = sl_batch_chunks(B, bc);
    SL_GRID_STRIDE(w, chunks * per_chunk) {
        long long c = w / per_chunk;
        long long s = w % per_chunk;
        int j = (int)((s / (32LL * group)) % j_groups * 32 + s % 32);
        long long tile = s / (32LL * group * j_groups) * group + s / 32 % group;
        if (tile >= tiles || j >= n_post) continue;
        int b0, b1;
        sl_batch_range(c, B, bc, b0, b1);
        long long i0 = tile * TILE;
        int nt = n_pre - i0 < TILE ? (int)(n_pre - i0) : TILE;
        T c_am = am[j], c_as = as[j], c_g = g[j];
        T c_rho = alif ? rho[j] : T(0), c_beta = alif ? beta[j] : T(0);
        T k_as = r_as[0], k_am = r_am[0], k_g = r_g[0];
        T acc[TILE], acc_r[TILE];
#pragma unroll
        for (int u = 0; u < TILE; ++u) {
            acc[u] = T(0);
            acc_r[u] = T(0);
        }
        for (int b = b0; b < b1; ++b) {
            long long bj = (long long)b * n_post + j;
            long long bi0 = (long long)b * n_pre + i0;
            T ev[TILE], eI[TILE], a[TILE];
            T eb_I[TILE], eb_V[TILE];
#pragma unroll
            for (int u = 0; u < TILE; ++u) {
                if (u < nt) {
                    long long bi = bi0 + u;
                    long long k = bi * n_post + j;
                    if (SHARED) {
                        ev[u] = pre[bi];
                    } else {
                        ev[u] = syn_v ? eps_v[k] : epsv_old[bi];
                        eI[u] = syn_I ? eps_I[k] : epsI_old[bi];
                    }
                    a[u] = alif ? eps_a[k] : T(0);
                    eb_I[u] = r_delta ? T(0) : ebar_I[k];
                    eb_V[u] = ebar_V[k];
                } else {  // past a last, partial tile: with SHARED computed on, never stored
                    ev[u] = eI[u] = a[u] = eb_I[u] = eb_V[u] = T(0);
                }
            }
            // the step's per-neuron values, read through pointers advanced by a slice per step
            const T* psi_q = psi + bj;  // psi of the step before the first
            const T* sig_q = signal + bj;
            const T* R_q = R + (has_R ? bj : 0);
            const T* z_q = z_prev + (syn_v && zero_reset ? bj : 0);
            const T* ev_q = pre + (SHARED ? BI + bi0 : 0);  // SHARED: eps_v after the first step
            T pp = *psi_q;
            int slot = pre_base;  // the ring slot of step q's presynaptic spikes
            for (int q = 0; q < steps; ++q) {
                psi_q += BJ;
                T ps = *psi_q;
                T sig = *sig_q;
                sig_q += BJ;
                T r_q = T(0);
                if (has_R) {
                    r_q = *R_q;
                    R_q += BJ;
                }
                T decay = c_am;
                if (syn_v && zero_reset) {
                    decay = c_am * (T(1) - *z_q);
                    z_q += BJ;
                }
                // SHARED: eps_v after step q; else the spikes delivered at step q
                const T* pre_q = ev_q;
                if (SHARED) {
                    ev_q += BI;
                } else {
                    pre_q = pre + (long long)slot * BI + bi0;
                    slot = slot + 1 == pre_slots ? 0 : slot + 1;
                }
#pragma unroll
                for (int u = 0; u < TILE; ++u) {
                    // SHARED: every u, also past a last tile of fewer than TILE neurons, which then
                    // reads up to TILE - 1 values past the end of its row (the host pads `pre`)
                    if (SHARED || u < nt) {
                        T ev_old = ev[u];
                        T e_d;  // e of the step before
                        if (alif) {
                            e_d = pp * sl_fma(-c_beta, a[u], ev_old);
                            a[u] = sl_fma(c_rho, a[u], e_d);
                        } else {
                            e_d = pp * ev_old;
                        }
                        if (SHARED) {
                            ev[u] = pre_q[u];
                        } else {
                            sl_pre_trace_step(eI[u], ev[u], c_as, decay, c_g, pre_q[u]);
                        }
                        if (has_R) {
                            T e = ps * (alif ? sl_fma(-c_beta, a[u], ev[u]) : ev[u]);
                            acc_r[u] = sl_fma(r_q, e, acc_r[u]);
                        }
                        T cur;
                        if (r_delta) {
                            cur = e_d;
                        } else {
                            cur = sl_fma(k_as, eb_I[u], e_d);
                            eb_I[u] = cur;
                        }
                        eb_V[u] = sl_fma(k_am, eb_V[u], r_unit ? cur : k_g * cur);
                        acc[u] = sl_fma(sig, eb_V[u], acc[u]);
                    }
                }
                pp = ps;
            }
#pragma unroll
            for (int u = 0; u < TILE; ++u) {
                if (u < nt) {
                    long long bi = bi0 + u;
                    long long k = bi * n_post + j;
                    if (!SHARED) {
                        if (syn_v) {
                            eps_v[k] = ev[u];
                        } else if (j == 0) {
                            epsv_new[bi] = ev[u];
                        }
                        if (syn_I) {
                            eps_I[k] = eI[u];
                        } else if (j == 0) {
                            epsI_new[bi] = eI[u];
                        }
                    }
                    if (alif) eps_a[k] = a[u];
                    if (!r_delta) ebar_I[k] = eb_I[u];
                    ebar_V[k] = eb_V[u];
                }
            }
        }
#pragma unroll
        for (int u = 0; u < TILE; ++u) {
            if (u < nt) {
                long long gw = c * NS + (i0 + u) * n_post + j;
                if (has_R) grad[gw] += reg_scale * acc_r[u];
                grad[gw] += acc[u];
            }
        }
    }
}

// The traces that every postsynaptic neuron shares (eprop_synapse_chunk with SHARED = 1), advanced
// over `steps` consecutive steps once per presynaptic neuron instead of once per synapse: one
// thread per (b, i), eps_I = alpha_syn eps_I + p_i[q], eps_v = alpha_mem eps_v + g eps_I
// (sl_pre_trace_step, as eprop_synapse_chunk advances them; the constants of target neuron 0,
// which every target shares).  The spikes of step q come from the source's ring,
// slot (pre_base + q) mod pre_slots; ev_hist[0, b, i] is eps_v before the first step,
// ev_hist[q + 1, b, i] after step q, and the values after the last step go to epsI_new and epsv_new.
template <typename T>
__global__ void eprop_pre_chunk(int B, int n_pre, int steps, int pre_base, int pre_slots, const T* pre,
                                const T* epsI_old, T* epsI_new, const T* epsv_old, T* epsv_new, const T* am,
                                const T* as, const T* g, T* ev_hist) {
    const long long BI = (long long)B * n_pre;
    const T c_am = am[0], c_as = as[0], c_g = g[0];
    SL_GRID_STRIDE(bi, BI) {
        T eI = epsI_old[bi], ev = epsv_old[bi];
        ev_hist[bi] = ev;
        int slot = pre_base;
        for (int q = 0; q < steps; ++q) {
            sl_pre_trace_step(eI, ev, c_as, c_am, c_g, pre[(long long)slot * BI + bi]);
            slot = slot + 1 == pre_slots ? 0 : slot + 1;
            ev_hist[(q + 1) * BI + bi] = ev;
        }
        epsI_new[bi] = eI;
        epsv_new[bi] = ev;
    }
}

// The per-step loss of the readout (SPEC section 4, per_step) and its derivative, one thread per
// example b (K readout neurons walked in order): p = softmax(Y[b]), loss_acc[b] +=
// sum_k ((Y - max) - log(sum exp)) hot, prob_sum[b] += p, delta[b] = (p - hot) / denom.  Outside
// the window (has_delta = 0) only the bias filter advances.  The bias's filtered input
// bbar = r_am bbar + r_g (the same for every example) is double-buffered like the traces above
// (example 0 writes bb_new), and gbias[b, k] += delta[b, k] bbar[k] (summed over b at the end).
template <typename T>
__global__ void eprop_loss_step(int B, int K, int hetero, int has_delta, const T* Y, const T* hot, T denom,
                                T* loss_acc, T* prob_sum, T* delta, const T* r_am, const T* r_g,
                                const T* bb_old, T* bb_new, T* gbias) {
    SL_GRID_STRIDE(b, (long long)B) {
        const T* y = Y + b * K;
        if (has_delta) {
            T m = y[0];
            for (int k = 1; k < K; ++k) m = y[k] > m ? y[k] : m;
            T s = T(0);
            for (int k = 0; k < K; ++k) s += sl_exp(y[k] - m);
            T ls = sl_log(s);
            T l = T(0);
            for (int k = 0; k < K; ++k) {
                long long q = b * K + k;
                T p = sl_exp(y[k] - m) / s;
                l += ((y[k] - m) - ls) * hot[q];
                prob_sum[q] += p;
                delta[q] = (p - hot[q]) / denom;
            }
            loss_acc[b] += l;
        }
        for (int k = 0; k < K; ++k) {
            int h = hetero ? k : 0;
            T bb = r_am[h] * bb_old[k] + r_g[h];
            if (b == 0) bb_new[k] = bb;
            if (has_delta) gbias[b * K + k] += delta[b * K + k] * bb;
        }
    }
}

// The exact gradient of one trainable readout connection, one thread per weight (i, k): the
// delivered spikes s [B, n_pre] filtered with the readout's impulse response (f0: its synapse,
// f1: its membrane; [B, n_pre] shared by all k, or [B, n_pre, K] with per-neuron time constants,
// hetero), and grad[c, i, k] += sum_{b in chunk c} f1[b, i(, k)] delta[b, k] (the batch in chunks
// of bc examples, as in eprop_synapse_step).  f0 and f1 are double-buffered
// (read *_old, written *_new by the threads that own the entry: k = 0 unless hetero).
template <typename T>
__global__ void eprop_out_grad(int B, int bc, int n_pre, int K, int hetero, int r_delta, int r_unit, int has_delta,
                               const T* s, const T* r_as, const T* r_am, const T* r_g, const T* f0_old, T* f0_new,
                               const T* f1_old, T* f1_new, const T* delta, T* grad) {
    const long long NW = (long long)n_pre * K;
    const long long chunks = sl_batch_chunks(B, bc);
    SL_GRID_STRIDE(w, chunks * NW) {
        long long i;
        int k, b0, b1;
        sl_entry_and_chunk(w, NW, K, B, bc, i, k, b0, b1);
        int h = hetero ? k : 0;
        int owner = hetero || k == 0;
        T acc = T(0);
        for (int b = b0; b < b1; ++b) {
            long long bi = (long long)b * n_pre + i;
            long long f = hetero ? bi * K + k : bi;
            T x = s[bi];
            T c0 = r_delta ? x : r_as[h] * f0_old[f] + x;
            T c1 = r_am[h] * f1_old[f] + (r_unit ? c0 : r_g[h] * c0);
            if (owner) {
                if (!r_delta) f0_new[f] = c0;
                f1_new[f] = c1;
            }
            if (has_delta) acc += c1 * delta[(long long)b * K + k];
        }
        if (has_delta) grad[w] += acc;
    }
}

// eprop_out_grad for `steps` consecutive steps at once (at most EPROP_STEPS), at the end of a chunk
// of e-prop steps, for a readout that shares its time constants (no readout axis): the delivered
// spikes of step q are read from the source's ring [s_slots, B, n_pre], slot (s_base + q) mod
// s_slots, and delta of step q from deltas [steps, B, K] (0 outside the loss window: adding
// 0 * f1 leaves the sum unchanged).  Each thread keeps the filter of its (b, i) in registers
// across the steps (every k of the row computes the same values; the threads of k = 0 write them
// to *_new after the last step) and adds sum over its examples and the steps of f1 delta to
// grad[c, i, k]: the same terms as step by step, summed in another order.
template <typename T>
__global__ void eprop_out_grad_chunk(int B, int bc, int n_pre, int K, int r_delta, int r_unit, int steps,
                                     int s_base, int s_slots, const T* s, const T* r_as, const T* r_am,
                                     const T* r_g, const T* f0_old, T* f0_new, const T* f1_old, T* f1_new,
                                     const T* deltas, T* grad) {
    const long long NW = (long long)n_pre * K;
    const long long BI = (long long)B * n_pre, BK = (long long)B * K;
    const long long chunks = sl_batch_chunks(B, bc);
    const T k_as = r_as[0], k_am = r_am[0], k_g = r_g[0];
    SL_GRID_STRIDE(w, chunks * NW) {
        long long i;
        int k, b0, b1;
        sl_entry_and_chunk(w, NW, K, B, bc, i, k, b0, b1);
        T acc = T(0);
        for (int b = b0; b < b1; ++b) {
            long long bi = (long long)b * n_pre + i;
            T c0 = r_delta ? T(0) : f0_old[bi];
            T c1 = f1_old[bi];
            int slot = s_base;
            for (int q = 0; q < steps; ++q) {
                T x = s[(long long)slot * BI + bi];
                slot = slot + 1 == s_slots ? 0 : slot + 1;
                c0 = r_delta ? x : k_as * c0 + x;
                c1 = k_am * c1 + (r_unit ? c0 : k_g * c0);
                acc += c1 * deltas[q * BK + (long long)b * K + k];
            }
            if (k == 0) {
                if (!r_delta) f0_new[bi] = c0;
                f1_new[bi] = c1;
            }
        }
        grad[w] += acc;
    }
}
