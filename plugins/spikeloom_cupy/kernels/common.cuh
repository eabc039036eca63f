// Shared device helpers of the spikeloom CuPy kernels: math overloads per dtype, the surrogate
// derivatives of SPEC section 5, and the grid-stride loop most kernels use (one thread per
// element, no shared memory, no synchronisation: such a kernel gives the same result whatever the
// launch configuration, and a serial loop over the grid reproduces it exactly).  The block-loop
// kernels (one block per example walking all steps, __syncthreads between steps) get their
// dynamic shared memory through SL_DYNAMIC_SHARED; the CPU emulation defines both differently.
#pragma once

#ifndef SL_EMULATION
#define SL_DYNAMIC_SHARED(T, name)                         \
    extern __shared__ __align__(16) unsigned char sl_smem[]; \
    T* name = reinterpret_cast<T*>(sl_smem)
#endif

#define SL_GRID_STRIDE(i, n) \
    for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < (n); \
         i += (long long)blockDim.x * gridDim.x)

__device__ __forceinline__ float sl_abs(float x) { return fabsf(x); }
__device__ __forceinline__ double sl_abs(double x) { return fabs(x); }
__device__ __forceinline__ float sl_exp(float x) { return expf(x); }
__device__ __forceinline__ double sl_exp(double x) { return exp(x); }
__device__ __forceinline__ float sl_log(float x) { return logf(x); }
__device__ __forceinline__ double sl_log(double x) { return log(x); }
// a * b + c rounded once (a fused multiply-add, written out: --fmad=false forbids the compiler to
// fuse on its own, so only the kernels that call this round differently from the reference)
__device__ __forceinline__ float sl_fma(float a, float b, float c) { return fmaf(a, b, c); }
__device__ __forceinline__ double sl_fma(double a, double b, double c) { return fma(a, b, c); }

// surrogate kinds (the host passes these numbers; see spikeloom_cupy/kernel_specs.py)
#define SL_SUPERSPIKE 0
#define SL_TRIANGLE 1
#define SL_SIGMOID 2
#define SL_ATAN 3

// psi(x) for x = V - theta, written in the reference's order of operations.
// superspike: p = beta;  triangle: p = gamma;  sigmoid: p = slope;  atan: p = pi/2 alpha, q = alpha/2
template <typename T>
__device__ __forceinline__ T sl_surrogate(int kind, T p, T q, T x, T vth) {
    if (kind == SL_SUPERSPIKE) {
        T d = p * sl_abs(x) + T(1);
        return T(1) / (d * d);
    }
    if (kind == SL_TRIANGLE) {
        T c = T(1) - sl_abs(x) / vth;
        return (p / vth) * (c > T(0) ? c : T(0));
    }
    if (kind == SL_SIGMOID) {
        T e = sl_exp(-p * sl_abs(x));
        T d = T(1) + e;
        return p * e / (d * d);
    }
    T u = p * x;  // atan
    return q / (T(1) + u * u);
}
