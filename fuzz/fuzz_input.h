/* fuzz_input.h: the byte decoder every target uses, so that every byte string decodes to a
 * valid input: values are taken from the front, and once the input is exhausted every
 * take returns a fixed default (0, or the first choice). Header-only, no state elsewhere. */
#ifndef FUZZ_INPUT_H
#define FUZZ_INPUT_H

#include <stddef.h>
#include <stdint.h>

typedef struct fuzz_input {
    const uint8_t *data;
    size_t size, pos;
} fuzz_input;

static inline void fuzz_input_init(fuzz_input *in, const uint8_t *data, size_t size) {
    in->data = data;
    in->size = size;
    in->pos = 0;
}

static inline int fuzz_exhausted(const fuzz_input *in) {
    return in->pos >= in->size;
}

static inline uint8_t fuzz_u8(fuzz_input *in) {
    return in->pos < in->size ? in->data[in->pos++] : 0;
}

static inline uint16_t fuzz_u16(fuzz_input *in) {
    uint16_t lo = fuzz_u8(in);
    return (uint16_t)(lo | (uint16_t)(fuzz_u8(in) << 8));
}

static inline uint32_t fuzz_u32(fuzz_input *in) {
    uint32_t lo = fuzz_u16(in);
    return lo | ((uint32_t)fuzz_u16(in) << 16);
}

/* One of n choices (n >= 1); one byte when n <= 256, two otherwise. 0 when exhausted. */
static inline uint32_t fuzz_choice(fuzz_input *in, uint32_t n) {
    if (n <= 1)
        return 0;
    return (n <= 256 ? fuzz_u8(in) : fuzz_u16(in)) % n;
}

/* An element of a constant table. */
#define FUZZ_PICK(in, table)                                                                       \
    ((table)[fuzz_choice((in), (uint32_t)(sizeof(table) / sizeof((table)[0])))])

#endif /* FUZZ_INPUT_H */
