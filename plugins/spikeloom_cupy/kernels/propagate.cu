// Synaptic propagation, event-driven: only the rows W[i, :] of presynaptic neurons i that spiked
// are read.  One thread per (row, postsynaptic neuron); every sum runs over i in increasing order,
// so the result does not depend on the launch configuration.
#include "common.cuh"

// out[r, j] (+)= sum_{k in rowptr[r] .. rowptr[r+1]} val[k] W[col[k], j]: the spikes of all rows
// r (steps x batch) given in compressed sparse rows (built once per call from the spike array).
template <typename T>
__global__ void propagate_csr(long long R, int n_post, const long long* rowptr, const long long* col,
                              const T* val, const T* W, T* out, int accumulate) {
    SL_GRID_STRIDE(k, R * n_post) {
        long long r = k / n_post;
        int j = (int)(k % n_post);
        T acc = T(0);
        for (long long e = rowptr[r]; e < rowptr[r + 1]; ++e) acc += val[e] * W[col[e] * n_post + j];
        out[k] = accumulate ? out[k] + acc : acc;
    }
}

// out[b, j] (+)= sum_{i: s[b, i] != 0} s[b, i] W[i, j] for one step's spikes s [B, n_pre]; the
// scan over s is read by all threads of a row alike (a broadcast), W only where s is non-zero.
template <typename T>
__global__ void propagate_scan(int B, int n_pre, int n_post, const T* s, const T* W, T* out, int accumulate) {
    SL_GRID_STRIDE(k, (long long)B * n_post) {
        long long b = k / n_post;
        int j = (int)(k % n_post);
        const T* row = s + b * n_pre;
        T acc = T(0);
        for (int i = 0; i < n_pre; ++i) {
            T v = row[i];
            if (v != T(0)) acc += v * W[(long long)i * n_post + j];
        }
        out[k] = accumulate ? out[k] + acc : acc;
    }
}
