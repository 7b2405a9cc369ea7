#include <xxhash.h>
/* Declares the *_dispatch entry points, which pick the widest SIMD path at run time.
   Swift does not see the header's renaming macros, so callers name them explicitly. */
#include <xxh_x86dispatch.h>
