/* sanitizer.h: which sanitizer this part of the harness is built with, said in one place
 * (gcc names them __SANITIZE_*__, clang through __has_feature): CHAOS_ASAN for
 * AddressSanitizer, CHAOS_TSAN for ThreadSanitizer. Then the few runtime calls the harness
 * makes, declared here because the runtimes' own headers are not installed with every
 * compiler: ASan's fiber-switch and poisoning interface, and TSan's ignore annotations, as
 * CHAOS_TSAN_IGNORE_BEGIN/END (no-ops in other builds) around bookkeeping that TSan must
 * not see (it is ordered by fiber switches TSan is told not to synchronise). The reference
 * says the same for itself in ref/src; this header is the harness's. */
#ifndef CHAOS_SANITIZER_H
#define CHAOS_SANITIZER_H

#include <stddef.h>

#if defined(__SANITIZE_ADDRESS__)
#define CHAOS_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define CHAOS_ASAN 1
#endif
#endif
#if defined(__SANITIZE_THREAD__)
#define CHAOS_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define CHAOS_TSAN 1
#endif
#endif

#ifdef __cplusplus
extern "C" {
#endif

#ifdef CHAOS_ASAN
void __asan_unpoison_memory_region(void const volatile *addr, size_t size);
void __asan_poison_memory_region(void const volatile *addr, size_t size);
void __sanitizer_start_switch_fiber(void **fake_stack_save, const void *bottom, size_t size);
void __sanitizer_finish_switch_fiber(void *fake_stack_save, const void **bottom_old,
                                     size_t *size_old);
void __asan_set_error_report_callback(void (*cb)(const char *));
void *__asan_get_report_address(void);
#endif

#ifdef CHAOS_TSAN
void *__tsan_get_current_fiber(void);
void *__tsan_create_fiber(unsigned flags);
void __tsan_destroy_fiber(void *fiber);
void __tsan_switch_to_fiber(void *fiber, unsigned flags);
void __tsan_acquire(void *addr);
void __tsan_release(void *addr);
void AnnotateIgnoreReadsBegin(const char *file, int line);
void AnnotateIgnoreReadsEnd(const char *file, int line);
void AnnotateIgnoreWritesBegin(const char *file, int line);
void AnnotateIgnoreWritesEnd(const char *file, int line);
#define CHAOS_TSAN_NO_SYNC 1u /* __tsan_switch_to_fiber: the switch orders nothing */
#define CHAOS_TSAN_IGNORE_BEGIN()                                                                  \
    do {                                                                                           \
        AnnotateIgnoreReadsBegin(__FILE__, __LINE__);                                              \
        AnnotateIgnoreWritesBegin(__FILE__, __LINE__);                                             \
    } while (0)
#define CHAOS_TSAN_IGNORE_END()                                                                    \
    do {                                                                                           \
        AnnotateIgnoreWritesEnd(__FILE__, __LINE__);                                               \
        AnnotateIgnoreReadsEnd(__FILE__, __LINE__);                                                \
    } while (0)
#else
#define CHAOS_TSAN_IGNORE_BEGIN() ((void)0)
#define CHAOS_TSAN_IGNORE_END() ((void)0)
#endif

#ifdef __cplusplus
}
#endif

#endif
