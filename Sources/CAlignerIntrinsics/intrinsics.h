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

#include <sys/syscall.h>
#include <unistd.h>
/* How many CPUs this process may run on (its affinity: taskset, the cpusets of Kubernetes'
   static CPU manager), or 0 if unknown. The raw system call, because glibc's wrapper and
   CPU_COUNT are GNU extensions the Swift Glibc module leaves out. */
static inline int aligner_affinity_cpu_count(void) {
    unsigned long mask[16] = {0}; /* 1024 CPUs, as glibc's cpu_set_t */
    if (syscall(SYS_sched_getaffinity, 0, sizeof mask, mask) <= 0) return 0;
    int n = 0;
    for (int i = 0; i < 16; i++) n += __builtin_popcountl(mask[i]);
    return n;
}

/* Puts one thread (a tid from /proc/self/task) under SCHED_BATCH (3 in Linux' uapi/sched.h),
   priority 0; returns 0, or -1 with errno set. The raw system call, as above. */
static inline int aligner_set_batch_scheduling(int tid) {
    int priority = 0; /* struct sched_param is one int */
    return (int)syscall(SYS_sched_setscheduler, tid, 3, &priority);
}
#endif

#endif
