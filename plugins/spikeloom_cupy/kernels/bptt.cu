// BPTT backward passes (SPEC section 6, the reference's adjoint recursion), one thread per
// (batch, neuron) element, from t = T-1 down to 0:
//
//   gz    = ext[t] + ga                             (ext: from later steps' targets and the regulariser)
//   gVr   = alpha_mem gV[t+1]
//   gz   += gVr dR/dz                               (only without detach_reset)
//   gV[t] = gVr dR/dV + gz psi[t]                   (dR/dV = 1, or 1 - z[t] for the zero reset)
//   ga    = -beta psi[t] gz + rho ga                (ALIF)
//   gI[t] = g gV[t] + alpha_syn gI[t+1]
//
// psi is the surrogate of V[t] - theta[t], 0 while refractory.
#include "common.cuh"

template <typename T>
__device__ __forceinline__ void sl_spiking_adjoint(
    T ext, T V, T z, T a, T refr, T gV_next, T gI_next, int has_next, T& ga,
    T am, T as, T g, T vth, T rho, T beta, int alif, int zero_reset, int detach,
    int kind, T sp, T sq, T& gV, T& gI) {
    T theta = alif ? vth + beta * a : vth;
    T psi = sl_surrogate<T>(kind, sp, sq, V - theta, vth) * (T(1) - refr);
    T gz = ext;
    if (alif) gz = gz + ga;
    T gVr = has_next ? am * gV_next : T(0);
    if (!detach) gz = gz + gVr * (zero_reset ? -V : -vth);
    T dR = zero_reset ? gVr * (T(1) - z) : gVr;
    gV = dR + gz * psi;
    if (alif) ga = -beta * psi * gz + rho * ga;
    gI = has_next ? g * gV + as * gI_next : g * gV;
}

// One element k (neuron j) of the reversed step whose records and adjoints start at off (= t B N):
// the adjoint from gz, with ga [B, N] carrying dloss/da and gV/gI of step t + 1 read where
// has_next.  Shared by spiking_backward_step and spiking_block_backward.
template <typename T>
__device__ __forceinline__ void sl_adjoint_element(
    long long k, int j, long long off, long long BN, int has_next, T gz,
    const T* rec_V, const T* rec_z, const T* rec_a, const T* rec_ref, int has_ref, T* ga,
    const T* am, const T* as, const T* g, const T* vth, const T* rho, const T* beta,
    int alif, int zero_reset, int detach, int kind, T sp, T sq, T* gV_all, T* gI_all) {
    T ga_k = alif ? ga[k] : T(0);
    T gV, gI;
    sl_spiking_adjoint<T>(gz, rec_V[off + k], rec_z[off + k], alif ? rec_a[off + k] : T(0),
                          has_ref ? rec_ref[off + k] : T(0), has_next ? gV_all[off + BN + k] : T(0),
                          has_next ? gI_all[off + BN + k] : T(0), has_next, ga_k, am[j], as[j], g[j], vth[j],
                          alif ? rho[j] : T(0), alif ? beta[j] : T(0), alif, zero_reset, detach, kind, sp, sq, gV,
                          gI);
    if (alif) ga[k] = ga_k;
    gV_all[off + k] = gV;
    gI_all[off + k] = gI;
}

// All steps of a population with no connection inside its group; ext [T, B, N] (has_ext).
template <typename T>
__global__ void spiking_backward(
    int steps, int B, int N, const T* ext, int has_ext, const T* rec_V, const T* rec_z, const T* rec_a,
    const T* rec_ref, int has_ref, const T* am, const T* as, const T* g, const T* vth, const T* rho, const T* beta,
    int alif, int zero_reset, int detach, int kind, T sp, T sq, T* gV_all, T* gI_all) {
    long long BN = (long long)B * N;
    SL_GRID_STRIDE(k, BN) {
        int j = (int)(k % N);
        T c_am = am[j], c_as = as[j], c_g = g[j], c_vth = vth[j];
        T c_rho = alif ? rho[j] : T(0), c_beta = alif ? beta[j] : T(0);
        T ga = T(0), gV = T(0), gI = T(0);
        for (int t = steps - 1; t >= 0; --t) {
            long long idx = (long long)t * BN + k;
            T gV_t, gI_t;
            sl_spiking_adjoint<T>(has_ext ? ext[idx] : T(0), rec_V[idx], rec_z[idx], alif ? rec_a[idx] : T(0),
                                  has_ref ? rec_ref[idx] : T(0), gV, gI, t + 1 < steps, ga, c_am, c_as, c_g, c_vth,
                                  c_rho, c_beta, alif, zero_reset, detach, kind, sp, sq, gV_t, gI_t);
            gV_all[idx] = gV_t;
            gI_all[idx] = gI_t;
            gV = gV_t;
            gI = gI_t;
        }
    }
}

// One step t of a population inside a recurrent group.  ext (has_ext) holds what reaches z[t]
// from later groups, the regulariser and all but one of the group's own connections: [T, B, N]
// read at step t with ext_per_step, else [B, N].  The kernel adds the remaining connection itself
// (has_fb: to a population of n_fb neurons with the given delay, while t + delay < T):
// sum_m gI_target[t + delay][b, m] W[j, m], from gI_fb [T, B, n_fb] and Wt_fb = W^T [n_fb, N]
// (neighbouring threads read neighbouring addresses).  Records and adjoints are [T, B, N]; ga
// [B, N] carries dloss/da[t+1] between launches.  Only t changes between the launches of one
// run (and ext's pointer where it is a per-step buffer).
template <typename T>
__global__ void spiking_backward_step(
    int t, int steps, int B, int N, const T* ext, int has_ext, int ext_per_step,
    const T* gI_fb, const T* Wt_fb, int n_fb, int fb_delay, int has_fb,
    const T* rec_V, const T* rec_z, const T* rec_a, const T* rec_ref, int has_ref, T* ga,
    const T* am, const T* as, const T* g, const T* vth, const T* rho, const T* beta,
    int alif, int zero_reset, int detach, int kind, T sp, T sq, T* gV_all, T* gI_all) {
    long long BN = (long long)B * N;
    long long off = (long long)t * BN;
    long long ext_off = ext_per_step ? off : 0;
    int has_next = t + 1 < steps;
    int use_fb = has_fb && t + fb_delay < steps;
    SL_GRID_STRIDE(k, BN) {
        int j = (int)(k % N);
        long long b = k / N;
        T gz = has_ext ? ext[ext_off + k] : T(0);
        if (use_fb) {
            T acc = T(0);
            const T* row = gI_fb + ((long long)(t + fb_delay) * B + b) * n_fb;
            for (int m = 0; m < n_fb; ++m) acc += row[m] * Wt_fb[(long long)m * N + j];
            gz = gz + acc;
        }
        sl_adjoint_element<T>(k, j, off, BN, has_next, gz, rec_V, rec_z, rec_a, rec_ref, has_ref, ga, am, as, g, vth,
                              rho, beta, alif, zero_reset, detach, kind, sp, sq, gV_all, gI_all);
    }
}

// The reversed time loop of a population whose only connection inside its group is its own
// recurrent connection W [N, N] (delay >= 1), as spiking_block_loop runs it forward: one block per
// example, the block's threads splitting the neurons.  At step t the example's gI[t + delay] (N
// values) is copied into shared memory, then every thread adds sum_m gI[t + delay][m] W[j, m]
// (read through Wt = W^T, in the order of spiking_backward_step) to ext[t] (has_ext) and runs the
// adjoint of its neurons; __syncthreads separates the copy from the updates and the steps.  ga
// [B, N] starts at zero.  Needs N * sizeof(T) bytes of dynamic shared memory.
template <typename T>
__global__ void spiking_block_backward(
    int steps, int B, int N, const T* ext, int has_ext, const T* Wt, int delay,
    const T* rec_V, const T* rec_z, const T* rec_a, const T* rec_ref, int has_ref, T* ga,
    const T* am, const T* as, const T* g, const T* vth, const T* rho, const T* beta,
    int alif, int zero_reset, int detach, int kind, T sp, T sq, T* gV_all, T* gI_all) {
    SL_DYNAMIC_SHARED(T, s_row);
    long long BN = (long long)B * N;
    for (int b = blockIdx.x; b < B; b += gridDim.x) {
        for (int t = steps - 1; t >= 0; --t) {
            int fb_t = t + delay;
            int use_fb = fb_t < steps;
            if (use_fb) {
                const T* row = gI_all + (long long)fb_t * BN + (long long)b * N;
                for (int m = threadIdx.x; m < N; m += blockDim.x) s_row[m] = row[m];
            }
            __syncthreads();
            int has_next = t + 1 < steps;
            for (int j = threadIdx.x; j < N; j += blockDim.x) {
                long long k = (long long)b * N + j;
                long long off = (long long)t * BN;
                T gz = has_ext ? ext[off + k] : T(0);
                if (use_fb) {
                    T acc = T(0);
                    for (int m = 0; m < N; ++m) acc += s_row[m] * Wt[(long long)m * N + j];
                    gz = gz + acc;
                }
                sl_adjoint_element<T>(k, j, off, BN, has_next, gz, rec_V, rec_z, rec_a, rec_ref, has_ref, ga, am, as, g,
                                      vth, rho, beta, alif, zero_reset, detach, kind, sp, sq, gV_all, gI_all);
            }
            __syncthreads();
        }
    }
}

// The LI readout: gV[t] = alpha_mem gV[t+1] + dY[t], gI[t] = g gV[t] + alpha_syn gI[t+1].
template <typename T>
__global__ void li_backward(int steps, int B, int N, const T* dY, int has_dY, const T* am, const T* as,
                            const T* g, T* gV_all, T* gI_all) {
    long long BN = (long long)B * N;
    SL_GRID_STRIDE(k, BN) {
        int j = (int)(k % N);
        T c_am = am[j], c_as = as[j], c_g = g[j];
        T gV = T(0), gI = T(0);
        for (int t = steps - 1; t >= 0; --t) {
            long long idx = (long long)t * BN + k;
            gV = c_am * gV;
            if (has_dY) gV = gV + dY[idx];
            gI = t + 1 < steps ? c_g * gV + c_as * gI : c_g * gV;
            gV_all[idx] = gV;
            gI_all[idx] = gI;
        }
    }
}
