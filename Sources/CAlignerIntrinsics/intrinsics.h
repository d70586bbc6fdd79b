#ifndef ALIGNER_INTRINSICS_H
#define ALIGNER_INTRINSICS_H

/* A hint to fetch the cache line holding p; never faults, whatever p is. */
static inline void aligner_prefetch(const void *p) { __builtin_prefetch(p, 0, 3); }

#endif
