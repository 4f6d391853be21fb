/* chaos_fiber.h: the engine's context switch (internal to chaos/src). A fiber is a stack and
 * the registers to resume it with; chaos_fiber_make readies one to start in entry(), and
 * chaos_fiber_swap saves the running context in from and resumes to. chaos_fiber.c has the
 * two implementations. */
#ifndef CHAOS_FIBER_H
#define CHAOS_FIBER_H

#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

/* The context switch. On x86-64 a few instructions that save the callee-saved registers
 * and swap stacks: swapcontext() costs a sigprocmask system call per switch, and under
 * ASan its interceptor releases the shadow of the whole stack each time (two more system
 * calls), which made a run several times slower. Elsewhere (or with CHAOS_PORTABLE_FIBERS,
 * which tests/chaos builds to keep this path working), ucontext. */
#if defined(__x86_64__) && !defined(CHAOS_PORTABLE_FIBERS)
typedef struct chaos_fiber {
    void *sp;
} chaos_fiber;
void chaos_fiber_switch(void **save_sp, void *load_sp); /* chaos_fiber.c, six registers */
static inline void chaos_fiber_swap(chaos_fiber *from, chaos_fiber *to) {
    chaos_fiber_switch(&from->sp, to->sp);
}
#else
#include <ucontext.h>
typedef ucontext_t chaos_fiber;
static inline void chaos_fiber_swap(chaos_fiber *from, chaos_fiber *to) {
    if (swapcontext(from, to) != 0)
        abort(); /* only with a bad context: never a silent wrong switch */
}
#endif

void chaos_fiber_make(chaos_fiber *c, uint8_t *stack, size_t size, void (*entry)(void));

#endif
