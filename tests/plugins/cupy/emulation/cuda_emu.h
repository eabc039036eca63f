// Test-only: lets the backend's .cu files compile as plain C++ so the kernels run on the CPU.
// Grid-stride kernels use no shared memory and no synchronisation, so a serial walk over the
// grid (sl_emulate: blockIdx/threadIdx set for every thread in turn) computes exactly what the
// GPU computes (up to the rounding of the math library).  Block-sync kernels (shared memory,
// __syncthreads) run block after block with one OS thread per CUDA thread of the block
// (sl_emulate_blocks): __syncthreads is a barrier of those threads, the block's shared memory
// one buffer they all see.
#pragma once
#include <math.h>
#include <pthread.h>

#include <thread>
#include <vector>

#define SL_EMULATION 1

struct sl_dim3 {
    unsigned int x, y, z;
};
static thread_local sl_dim3 blockIdx, threadIdx;
static sl_dim3 blockDim, gridDim;
static pthread_barrier_t sl_emu_barrier;
static unsigned char* sl_emu_shared = nullptr;

#define __syncthreads() pthread_barrier_wait(&sl_emu_barrier)
#define SL_DYNAMIC_SHARED(T, name) T* name = reinterpret_cast<T*>(sl_emu_shared)

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

template <typename F>
static void sl_emulate_blocks(unsigned int grid, unsigned int block, unsigned long long shared, F body) {
    gridDim = {grid, 1, 1};
    blockDim = {block, 1, 1};
    std::vector<double> buffer(shared / sizeof(double) + 1);  // aligned for any element type
    sl_emu_shared = reinterpret_cast<unsigned char*>(buffer.data());
    pthread_barrier_init(&sl_emu_barrier, nullptr, block);
    for (unsigned int bx = 0; bx < grid; ++bx) {
        std::vector<std::thread> threads;
        for (unsigned int tx = 0; tx < block; ++tx) {
            threads.emplace_back([bx, tx, &body]() {
                blockIdx = {bx, 0, 0};
                threadIdx = {tx, 0, 0};
                body();
            });
        }
        for (auto& th : threads) th.join();
    }
    pthread_barrier_destroy(&sl_emu_barrier);
    sl_emu_shared = nullptr;
}
