// Test-only: lets the backend's .cu files compile as plain C++ so the kernels run serially on the
// CPU.  blockIdx/threadIdx/blockDim/gridDim are globals the driver sets for every thread of the
// grid in turn; the kernels use no shared memory and no synchronisation, so a serial walk over
// the grid computes exactly what the GPU computes (up to the rounding of the math library).
#pragma once
#include <math.h>

struct sl_dim3 {
    unsigned int x, y, z;
};
static sl_dim3 blockIdx, threadIdx, blockDim, gridDim;

#define __global__
#define __device__
#define __forceinline__ inline

template <typename F>
static void sl_emulate(unsigned int grid, unsigned int block, F body) {
    gridDim = {grid, 1, 1};
    blockDim = {block, 1, 1};
    for (unsigned int bx = 0; bx < grid; ++bx) {
        for (unsigned int tx = 0; tx < block; ++tx) {
            blockIdx = {bx, 0, 0};
            threadIdx = {tx, 0, 0};
            body();
        }
    }
}
