#ifndef ALIGNER_MALLOC_COUNTER_H
#define ALIGNER_MALLOC_COUNTER_H
#include <stdint.h>

/* Allocations (malloc, calloc, realloc, posix_memalign, aligned_alloc, memalign) since start.
   Linked into the benchmark executable only: its definitions interpose glibc's for the process. */
uint64_t aligner_malloc_count(void);

#endif
