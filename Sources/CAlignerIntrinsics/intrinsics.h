#ifndef ALIGNER_INTRINSICS_H
#define ALIGNER_INTRINSICS_H

/* A hint to fetch the cache line holding p; never faults, whatever p is. */
static inline void aligner_prefetch(const void *p) { __builtin_prefetch(p, 0, 3); }

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
