// Forward neuron updates (SPEC section 3): one thread per (batch, neuron) element.
//
// spiking_forward / li_forward: the fused time loop of a population whose input does not depend on
// its own recent spikes; the summed input h [T, B, N] is computed beforehand, each thread keeps
// its state in registers and walks all T steps.
// spiking_step / li_step: one step of a population whose input needs spikes of the previous steps
// of its own group; the state lives in [B, N] arrays between launches and one recurrent
// connection can be delivered inside the kernel, event-driven (only the rows of W of presynaptic
// neurons that spiked are read).
#include "common.cuh"

// record flags
#define SL_REC_I 1
#define SL_REC_A 2
#define SL_REC_REF 4
#define SL_REC_PSI 8  // spiking_step: the surrogate psi = sl_surrogate(V - theta) (1 - refractory)

template <typename T>
__device__ __forceinline__ void sl_spiking_update(
    T h, T& I, T& V, T& a, T& z, long long& ref,
    T am, T as, T g, T vth, T rho, T beta, long long nref, int alif, int zero_reset,
    T& V_rec, T& theta_rec, T& refr) {
    I = as * I + h;
    V = am * V + g * I;
    T theta = vth;
    if (alif) {
        a = rho * a + z;
        theta = vth + beta * a;
    }
    bool refractory = ref > 0;
    z = (V >= theta && !refractory) ? T(1) : T(0);
    V_rec = V;
    theta_rec = theta;
    refr = refractory ? T(1) : T(0);
    if (zero_reset) {
        V = V * (T(1) - z);
    } else {
        V = V - vth * z;
    }
    if (z > T(0)) {
        ref = nref;
    } else {
        ref = ref - 1 > 0 ? ref - 1 : 0;
    }
}

// One element k (neuron j) of a step on the state arrays [B, N] from its summed input hv: load the
// state, sl_spiking_update, store it, and record this step's values at index o of the out_*
// arrays (rec_flags; with SL_REC_PSI also e-prop's surrogate psi, 0 while refractory, from the
// surrogate kind, sp, sq).  Shared by spiking_step and spiking_block_loop.
template <typename T>
__device__ __forceinline__ void sl_spiking_element(
    long long k, int j, long long o, T hv, T* I_s, T* V_s, T* a_s, T* z_s, long long* ref_s,
    const T* am, const T* as, const T* g, const T* vth, const T* rho, const T* beta, const long long* nref,
    int alif, int zero_reset, int rec_flags, int kind, T sp, T sq,
    T* out_V, T* out_z, T* out_I, T* out_a, T* out_ref, T* out_psi) {
    T I = I_s[k], V = V_s[k], a = alif ? a_s[k] : T(0), z = z_s[k];
    long long ref = ref_s[k];
    T Vr, theta, refr;
    sl_spiking_update<T>(hv, I, V, a, z, ref, am[j], as[j], g[j], vth[j], alif ? rho[j] : T(0),
                         alif ? beta[j] : T(0), nref[j], alif, zero_reset, Vr, theta, refr);
    I_s[k] = I;
    V_s[k] = V;
    if (alif) a_s[k] = a;
    z_s[k] = z;
    ref_s[k] = ref;
    out_V[o] = Vr;
    out_z[o] = z;
    if (rec_flags & SL_REC_I) out_I[o] = I;
    if (rec_flags & SL_REC_A) out_a[o] = a;
    if (rec_flags & SL_REC_REF) out_ref[o] = refr;
    if (rec_flags & SL_REC_PSI) out_psi[o] = sl_surrogate<T>(kind, sp, sq, Vr - theta, vth[j]) * (T(1) - refr);
}

template <typename T>
__global__ void spiking_forward(
    int steps, int B, int N, const T* h, int has_h,
    const T* am, const T* as, const T* g, const T* vth, const T* rho, const T* beta, const long long* nref,
    int alif, int zero_reset, int rec_flags,
    T* rec_V, T* rec_z, T* rec_I, T* rec_a, T* rec_ref) {
    long long BN = (long long)B * N;
    SL_GRID_STRIDE(k, BN) {
        int j = (int)(k % N);
        T I = T(0), V = T(0), a = T(0), z = T(0);
        long long ref = 0;
        T c_am = am[j], c_as = as[j], c_g = g[j], c_vth = vth[j];
        T c_rho = alif ? rho[j] : T(0), c_beta = alif ? beta[j] : T(0);
        long long c_nref = nref[j];
        for (int t = 0; t < steps; ++t) {
            long long idx = (long long)t * BN + k;
            T Vr, theta, refr;
            sl_spiking_update<T>(has_h ? h[idx] : T(0), I, V, a, z, ref, c_am, c_as, c_g, c_vth, c_rho, c_beta,
                                 c_nref, alif, zero_reset, Vr, theta, refr);
            rec_V[idx] = Vr;
            rec_z[idx] = z;
            if (rec_flags & SL_REC_I) rec_I[idx] = I;
            if (rec_flags & SL_REC_A) rec_a[idx] = a;
            if (rec_flags & SL_REC_REF) rec_ref[idx] = refr;
        }
    }
}

// The whole time loop of a population whose only connection inside its group is one of its own
// (recurrent, delay >= 1): one block per example (grid-stride over examples), the block's threads
// splitting the neurons.  At every step the block lists, in shared memory and in index order, the
// neurons of the example that spiked at step t - delay (each thread counts the spikes in its
// contiguous chunk of rec_z's row, a scan of the counts gives each chunk its place in the list);
// then each thread delivers them as spiking_step does (the rows of W_rec [N, N] of the neurons
// that spiked, in index order: the same sums) and updates its neurons.  __syncthreads separates
// the phases and the steps.  Spikes are 0 or 1, so the row of a neuron that spiked is added as it
// is (1 * w == w).  h [T, B, N] (has_h) is the drive delivered outside; the state arrays [B, N]
// start at zero; records as spiking_forward.  Needs (N + 2 blockDim) ints of dynamic shared
// memory (launch.block_config).
template <typename T>
__global__ void spiking_block_loop(
    int steps, int B, int N, const T* h, int has_h, const T* W_rec, int delay,
    T* I_s, T* V_s, T* a_s, T* z_s, long long* ref_s,
    const T* am, const T* as, const T* g, const T* vth, const T* rho, const T* beta, const long long* nref,
    int alif, int zero_reset, int rec_flags,
    T* rec_V, T* rec_z, T* rec_I, T* rec_a, T* rec_ref) {
    SL_DYNAMIC_SHARED(int, s_list);
    int* s_scan = s_list + N;  // two buffers of blockDim counts
    long long BN = (long long)B * N;
    int tid = threadIdx.x, nt = blockDim.x;
    int chunk = (N + nt - 1) / nt;
    int c0 = tid * chunk < N ? tid * chunk : N;
    int c1 = c0 + chunk < N ? c0 + chunk : N;
    for (int b = blockIdx.x; b < B; b += gridDim.x) {
        for (int t = 0; t < steps; ++t) {
            int src_t = t - delay;
            int n_active = 0;
            if (src_t >= 0) {
                const T* row = rec_z + (long long)src_t * BN + (long long)b * N;
                int count = 0;
                for (int i = c0; i < c1; ++i) count += row[i] != T(0);
                int* in = s_scan;
                int* out = s_scan + nt;
                in[tid] = count;
                __syncthreads();
                for (int off = 1; off < nt; off <<= 1) {  // inclusive scan of the counts
                    out[tid] = tid >= off ? in[tid] + in[tid - off] : in[tid];
                    __syncthreads();
                    int* tmp = in;
                    in = out;
                    out = tmp;
                }
                int pos = in[tid] - count;
                n_active = in[nt - 1];
                for (int i = c0; i < c1; ++i) {
                    if (row[i] != T(0)) s_list[pos++] = i;
                }
            }
            __syncthreads();
            for (int j = tid; j < N; j += nt) {
                long long k = (long long)b * N + j;
                long long idx = (long long)t * BN + k;
                T hv = has_h ? h[idx] : T(0);
                if (src_t >= 0) {
                    T acc = T(0);
                    for (int q = 0; q < n_active; ++q) acc += W_rec[(long long)s_list[q] * N + j];
                    hv = has_h ? hv + acc : acc;
                }
                sl_spiking_element<T>(k, j, idx, hv, I_s, V_s, a_s, z_s, ref_s, am, as, g, vth, rho, beta, nref, alif,
                                      zero_reset, rec_flags & ~SL_REC_PSI, 0, T(0), T(0), rec_V, rec_z, rec_I,
                                      rec_a, rec_ref, nullptr);
            }
            __syncthreads();
        }
    }
}

// One step t.  h (has_h) is the input from everything delivered outside the kernel ([T, B, N]
// read at step t with per_step and h_per_step, else [B, N]), h2 (has_h2) a second one [B, N]
// (what the host delivered this step, while h holds what was delivered for all steps at once);
// the recurrent connection (has_rec) adds sum_i s[b, i] W[i, j] over the i with s[b, i] != 0,
// s being the source's spikes [B, n_pre] of step t - delay, read from src [., B, n_pre].  State
// arrays [B, N] are updated in place: V after the reset, z the new spikes, ref the remaining
// refractory steps.  The recorded values of this step go to the out_* arrays (rec_flags as for
// spiking_forward; with SL_REC_PSI also e-prop's surrogate psi of the step, 0 while refractory,
// from the surrogate kind, sp, sq of sl_surrogate).  Addressing: with per_step, out_* are [T, B, N] and step t is written
// (else they are [B, N]); src holds slot t - delay (nothing before step 0), or with ring > 0 is a
// ring of that many slots and slot (t - delay) mod ring.  Only t changes between the launches of
// one run, so the host prepares the arguments once.
template <typename T>
__global__ void spiking_step(
    int t, int B, int N, int per_step, const T* h, int has_h, int h_per_step, const T* h2, int has_h2,
    const T* src, const T* W_rec, int n_pre, int delay, int ring, int has_rec,
    T* I_s, T* V_s, T* a_s, T* z_s, long long* ref_s,
    const T* am, const T* as, const T* g, const T* vth, const T* rho, const T* beta, const long long* nref,
    int alif, int zero_reset, int rec_flags, int kind, T sp, T sq,
    T* out_V, T* out_z, T* out_I, T* out_a, T* out_ref, T* out_psi) {
    long long BN = (long long)B * N;
    long long off = per_step ? (long long)t * BN : 0;
    long long slot = ring > 0 ? (((long long)t - delay) % ring + ring) % ring : (long long)t - delay;
    int use_rec = has_rec && slot >= 0;
    SL_GRID_STRIDE(k, BN) {
        int j = (int)(k % N);
        long long b = k / N;
        T hv = has_h ? h[(h_per_step ? off : 0) + k] : T(0);
        if (has_h2) hv = has_h ? hv + h2[k] : h2[k];
        if (use_rec) {
            T acc = T(0);
            const T* row = src + (slot * B + b) * n_pre;
            for (int i = 0; i < n_pre; ++i) {
                T s = row[i];
                if (s != T(0)) acc += s * W_rec[(long long)i * N + j];
            }
            hv = (has_h || has_h2) ? hv + acc : acc;
        }
        sl_spiking_element<T>(k, j, off + k, hv, I_s, V_s, a_s, z_s, ref_s, am, as, g, vth, rho, beta, nref, alif,
                              zero_reset, rec_flags, kind, sp, sq, out_V, out_z, out_I, out_a, out_ref, out_psi);
    }
}

// The LI readout over all steps: I = as I + h, V = am V + g (I + bias); records V (and I).
template <typename T>
__global__ void li_forward(
    int steps, int B, int N, const T* h, int has_h, const T* am, const T* as, const T* g, const T* bias,
    int rec_flags, T* rec_V, T* rec_I) {
    long long BN = (long long)B * N;
    SL_GRID_STRIDE(k, BN) {
        int j = (int)(k % N);
        T I = T(0), V = T(0);
        T c_am = am[j], c_as = as[j], c_g = g[j], c_bias = bias[j];
        for (int t = 0; t < steps; ++t) {
            long long idx = (long long)t * BN + k;
            I = c_as * I + (has_h ? h[idx] : T(0));
            V = c_am * V + c_g * (I + c_bias);
            rec_V[idx] = V;
            if (rec_flags & SL_REC_I) rec_I[idx] = I;
        }
    }
}

// One LI step t on state arrays [B, N] (updated in place).  h (has_h) is the input delivered
// outside the kernel [B, N]; one connection (has_src) is delivered here as in spiking_step: the
// source's spikes of step t - delay, slot (t - delay) mod ring of src [ring, B, n_pre].
template <typename T>
__global__ void li_step(int t, int B, int N, const T* h, int has_h, const T* src, const T* W, int n_pre, int delay,
                        int ring, int has_src, T* I_s, T* V_s, const T* am, const T* as, const T* g,
                        const T* bias) {
    long long BN = (long long)B * N;
    long long slot = (((long long)t - delay) % ring + ring) % ring;
    SL_GRID_STRIDE(k, BN) {
        int j = (int)(k % N);
        long long b = k / N;
        T hv = has_h ? h[k] : T(0);
        if (has_src) {
            T acc = T(0);
            const T* row = src + (slot * B + b) * n_pre;
            for (int i = 0; i < n_pre; ++i) {
                T s = row[i];
                if (s != T(0)) acc += s * W[(long long)i * N + j];
            }
            hv = has_h ? hv + acc : acc;
        }
        T I = as[j] * I_s[k] + hv;
        I_s[k] = I;
        V_s[k] = am[j] * V_s[k] + g[j] * (I + bias[j]);
    }
}
