// XXH3-128 through libxxhash's run-time dispatch (AVX-512 / AVX2 / SSE2), followed by a
// vzeroupper. Measured on this project's machines: after a large XXH3 call, the next
// legacy-SSE code in the process (most compiled Swift) ran about 1.7x slower until the
// upper vector state was cleared. Every hash in Verbatim goes through these functions.
#ifndef VERBATIM_HASH_H
#define VERBATIM_HASH_H
#include <stddef.h>
#include <stdint.h>

typedef struct { uint64_t low; uint64_t high; } vh_digest;

/// One-shot XXH3-128 of `length` bytes.
vh_digest vh_hash128(const void *data, size_t length);

/// Streaming XXH3-128: an opaque state (NULL if out of memory).
void *vh_state_create(void);
void vh_state_free(void *state);
void vh_state_update(void *state, const void *data, size_t length);
vh_digest vh_state_digest(const void *state);

#endif
