/* chaos_fiber.c: the engine's context switch, chaos_fiber.h's two implementations: six
 * callee-saved registers and a stack swap on x86-64, ucontext elsewhere. */
#include "chaos_fiber.h"

#if defined(__x86_64__) && !defined(CHAOS_PORTABLE_FIBERS)
__asm__(".text\n"
        ".globl chaos_fiber_switch\n"
        ".type chaos_fiber_switch,@function\n"
        "chaos_fiber_switch:\n"
        "    pushq %rbp\n"
        "    pushq %rbx\n"
        "    pushq %r12\n"
        "    pushq %r13\n"
        "    pushq %r14\n"
        "    pushq %r15\n"
        "    movq %rsp, (%rdi)\n"
        "    movq %rsi, %rsp\n"
        "    popq %r15\n"
        "    popq %r14\n"
        "    popq %r13\n"
        "    popq %r12\n"
        "    popq %rbx\n"
        "    popq %rbp\n"
        "    ret\n"
        ".size chaos_fiber_switch, .-chaos_fiber_switch\n"
        ".section .note.GNU-stack,\"\",@progbits\n"
        ".text\n");

/* A new fiber starts in entry(): its stack holds six zero registers and entry as the
 * return address, placed so that entry sees the stack alignment of a called function. */
void chaos_fiber_make(chaos_fiber *c, uint8_t *stack, size_t size, void (*entry)(void)) {
    uintptr_t top = ((uintptr_t)(stack + size)) & ~(uintptr_t)15;
    /* The return address sits at a 16-aligned slot, so after ret rsp % 16 == 8, as
     * right after a call. */
    void **sp = (void **)(top - 16);
    *sp = (void *)(uintptr_t)entry;
    for (int i = 0; i < 6; i++)
        *--sp = NULL;
    c->sp = sp;
}
#else
void chaos_fiber_make(chaos_fiber *c, uint8_t *stack, size_t size, void (*entry)(void)) {
    getcontext(c);
    c->uc_stack.ss_sp = stack;
    c->uc_stack.ss_size = size;
    c->uc_link = NULL;
    makecontext(c, entry, 0);
}
#endif
