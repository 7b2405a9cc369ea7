#include "verbatim_hash.h"
#include <xxhash.h>
#include <xxh_x86dispatch.h>

#if defined(__x86_64__)
__attribute__((target("avx"))) static void clear_upper_avx(void) { __builtin_ia32_vzeroupper(); }
static int has_avx = -1;
static inline void clear_upper(void) {
    if (has_avx < 0) has_avx = __builtin_cpu_supports("avx") ? 1 : 0;  // idempotent: a benign race
    if (has_avx) clear_upper_avx();
}
#else
static inline void clear_upper(void) {}
#endif

vh_digest vh_hash128(const void *data, size_t length) {
    XXH128_hash_t h = XXH3_128bits_dispatch(data, length);
    clear_upper();
    return (vh_digest){h.low64, h.high64};
}

void *vh_state_create(void) {
    XXH3_state_t *s = XXH3_createState();
    if (s) XXH3_128bits_reset(s);
    return s;
}

void vh_state_free(void *state) { XXH3_freeState((XXH3_state_t *)state); }

void vh_state_update(void *state, const void *data, size_t length) {
    if (length == 0) return;
    XXH3_128bits_update_dispatch((XXH3_state_t *)state, data, length);
    clear_upper();
}

vh_digest vh_state_digest(const void *state) {
    XXH128_hash_t h = XXH3_128bits_digest((const XXH3_state_t *)state);
    clear_upper();
    return (vh_digest){h.low64, h.high64};
}
