#pragma once
// Process-wide settings every command applies before it computes anything.
#include <torch/torch.h>

#include <string>

namespace qrobust::util {

// Sets LibTorch's intra-op thread count, once per command, in apps/ (the library reads it): `requested` > 0 is used as is, 0 means all cores
// (LibTorch reports 1 on some machines unless told). Returns the count in effect.
int configure_threads(int64_t requested);

// Keeps freed heap memory for reuse (glibc): a training step frees and re-allocates the same
// hundreds of MB every step, and by default glibc hands blocks above an adaptive threshold
// back to the OS and trims the heap, so every step page-faults its memory in again (measured:
// the exact grad-l1 step spent a fifth of its CPU time in the kernel). Call once at start-up.
void configure_allocator();

// "auto" (CUDA when present, else CPU), "cpu", "cuda" or "cuda:N". Throws UsageError for an
// unknown name or a CUDA device this build or machine does not have.
torch::Device resolve_device(const std::string& name);

// The BLAS library this process loaded (path of the shared object), or "" if none is mapped.
std::string loaded_blas_library();

// Logs a warning when the loaded BLAS is Debian's slow reference implementation.
void warn_if_reference_blas();

}  // namespace qrobust::util
