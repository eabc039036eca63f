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
// (eps_v) is one trace per presynaptic neuron, updated outside, and read from *_pre [B, n_pre].
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

// The traces one per presynaptic neuron, where every target neuron shares the constants, over
// n = B * n_pre elements: eps_I = alpha_syn eps_I + p (in place), and with do_v
// eps_v_new = alpha_mem eps_v_old + g eps_I (double-buffered: the kernel that follows needs both).
template <typename T>
__global__ void eprop_pre_traces(long long n, T as, T am, T g, const T* pre, T* eps_I, const T* epsv_old,
                                 T* epsv_new, int do_v) {
    SL_GRID_STRIDE(k, n) {
        T eI = as * eps_I[k] + pre[k];
        eps_I[k] = eI;
        if (do_v) epsv_new[k] = am * epsv_old[k] + g * eI;
    }
}

// psi[b, j] = surrogate(V - theta) (1 - refractory), theta = v_thresh + beta a (ALIF)
template <typename T>
__global__ void eprop_psi(int B, int N, const T* V, const T* a, const T* refr, int has_ref, const T* vth,
                          const T* beta, int alif, int kind, T sp, T sq, T* psi) {
    SL_GRID_STRIDE(k, (long long)B * N) {
        int j = (int)(k % N);
        T theta = alif ? vth[j] + beta[j] * a[k] : vth[j];
        T v = sl_surrogate<T>(kind, sp, sq, V[k] - theta, vth[j]);
        psi[k] = has_ref ? v * (T(1) - refr[k]) : v;
    }
}

template <typename T>
__global__ void eprop_synapse_step(
    int B, int n_pre, int n_post, int K, int flags, int slot, int read_slot,
    const T* pre, const T* epsI_pre, const T* epsv_pre, const T* epsv_pre_prev,
    const T* am, const T* as, const T* g, const T* rho, const T* beta,
    const T* psi, const T* psi_prev, const T* z_prev,
    T* eps_I, T* eps_v, T* eps_a, T* e_hist,
    const T* r_as, const T* r_am, const T* r_g, T* ebar_I, T* ebar_V,
    const T* signal, const T* fb, const T* R, T reg_scale, T* grad) {
    const int alif = flags & SL_EP_ALIF, syn_I = flags & SL_EP_SYN_I, syn_v = flags & SL_EP_SYN_V;
    const int hetero = flags & SL_EP_HETERO, r_delta = flags & SL_EP_R_DELTA, r_unit = flags & SL_EP_R_UNIT;
    const int Kf = hetero ? K : 1;
    const long long BPN = (long long)B * n_pre * n_post;
    SL_GRID_STRIDE(s, (long long)n_pre * n_post) {
        long long i = s / n_post;
        int j = (int)(s % n_post);
        T c_am = am[j], c_as = as[j], c_g = g[j];
        T c_rho = alif ? rho[j] : T(0), c_beta = alif ? beta[j] : T(0);
        T acc = T(0), acc_r = T(0);
        for (int b = 0; b < B; ++b) {
            long long bi = (long long)b * n_pre + i;
            long long bj = (long long)b * n_post + j;
            long long k = bi * n_post + j;
            T ev;
            T e_d = T(0);
            if (flags & SL_EP_UPDATE) {
                T ev_old = syn_v ? eps_v[k] : epsv_pre_prev[bi];
                T pp = psi_prev[bj];
                if (alif) {
                    T a_old = eps_a[k];
                    if (flags & SL_EP_RECOMPUTE) e_d = pp * (ev_old - c_beta * a_old);
                    eps_a[k] = pp * ev_old + (c_rho - pp * c_beta) * a_old;
                } else if (flags & SL_EP_RECOMPUTE) {
                    e_d = pp * ev_old;
                }
                T eI;
                if (syn_I) {
                    eI = c_as * eps_I[k] + pre[bi];
                    eps_I[k] = eI;
                } else {
                    eI = epsI_pre[bi];
                }
                if (syn_v) {
                    T decay = (flags & SL_EP_ZERO_RESET) ? c_am * (T(1) - z_prev[bj]) : c_am;
                    ev = decay * ev_old + c_g * eI;
                    eps_v[k] = ev;
                } else {
                    ev = epsv_pre[bi];
                }
            } else {
                ev = syn_v ? eps_v[k] : epsv_pre[bi];
            }
            T elig = alif ? ev - c_beta * eps_a[k] : ev;
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
        if (flags & SL_EP_HAS_R) grad[s] += reg_scale * acc_r;
        if (flags & SL_EP_HAS_L) grad[s] += acc;
    }
}
