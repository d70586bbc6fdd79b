#ifndef ALIGNER_INTRINSICS_H
#define ALIGNER_INTRINSICS_H

/* A hint to fetch the cache line holding p; never faults, whatever p is. */
static inline void aligner_prefetch(const void *p) { __builtin_prefetch(p, 0, 3); }

/* Whether the CPU has AVX and FMA (Go's math.useFMA on amd64: its Exp then fuses). */
static inline int aligner_cpu_has_fma(void) {
#if defined(__x86_64__)
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx") && __builtin_cpu_supports("fma");
#else
    return 0;
#endif
}

#ifdef __linux__
#include <stddef.h>
/* mremap is a GNU extension that the Swift Glibc module leaves out; declared here as glibc does. */
extern void *mremap(void *old_address, size_t old_size, size_t new_size, int flags, ...);

/* Grows (or moves) a private anonymous mapping without copying its pages (MREMAP_MAYMOVE). */
static inline void *aligner_mremap(void *old_address, size_t old_size, size_t new_size) {
    return mremap(old_address, old_size, new_size, 1);
}
#endif

#endif
