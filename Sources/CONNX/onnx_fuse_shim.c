/*
 * onnx_fuse_shim.c: the C layer between libprotobuf-c and Swift (see onnx_fuse_shim.h).
 *
 * Three parts:
 *   - an arena (bump allocator with a byte budget) that protobuf-c allocates from;
 *   - onnx_fuse_load and onnx_fuse_load_fd: one non-recursive pass over untrusted wire
 *     bytes (in memory, or read from a file through a forward window) that validates them,
 *     lifts TensorProto.raw_data payloads out and writes a compacted copy for protobuf-c,
 *     then protobuf_c_message_unpack and a "healing" walk that points raw_data back into
 *     the caller's bytes or mapping;
 *   - onnx_fuse_pack_to_fd: protobuf-c packing straight into a file descriptor.
 */
#define _GNU_SOURCE /* copy_file_range */
#include "onnx_fuse_shim.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <signal.h>
#include <unistd.h>
#include <limits.h>
#include <sys/mman.h>
#include <sys/sendfile.h>
#include <pthread.h>
#include <stdatomic.h>
#ifdef __GLIBC__
#include <malloc.h>
#endif
#ifdef __linux__
#include <sched.h> /* sched_getaffinity */
#endif

/* ==== arena ============================================================================ */

#define ARENA_ALIGN ((size_t)16)
#define ARENA_FIRST_BLOCK ((size_t)64 << 10)
#define ARENA_MAX_BLOCK ((size_t)8 << 20)

/* Blocks of at least this many bytes are mapped on their own, in whole huge pages. */
#define ARENA_HUGE_PAGE ((size_t)2 << 20)

/* Every block starts with this header; the usable bytes follow, aligned to ARENA_ALIGN. */
typedef struct arena_block {
    struct arena_block *prev;
    size_t mapped;                /* the length of the block's own mapping; 0 for calloc */
} arena_block;

struct onnx_fuse_arena {
    /* The view handed to protobuf-c; allocator_data points back at this arena. */
    ProtobufCAllocator allocator;
    arena_block *blocks;          /* every block, newest first */
    unsigned char *cursor;        /* free space of the current bump block ... */
    unsigned char *limit;         /* ... ends here */
    size_t next_block_size;       /* grows geometrically up to ARENA_MAX_BLOCK */
    size_t budget;
    size_t used;                  /* bytes handed out, rounded up to ARENA_ALIGN; <= budget */
    int over_budget;
    int maps_large_blocks;        /* see onnx_fuse_arena_create_for_tree */
};

static void *arena_pb_alloc(void *allocator_data, size_t size)
{
    return onnx_fuse_arena_alloc(allocator_data, size);
}

/* Single blocks are never freed: everything dies with the arena. protobuf-c frees
 * scratch memory and, on errors, partial trees through this; both are fine to keep. */
static void arena_pb_free(void *allocator_data, void *pointer)
{
    (void)allocator_data;
    (void)pointer;
}

onnx_fuse_arena *onnx_fuse_arena_create_for_tree(size_t budget)
{
    onnx_fuse_arena *arena = onnx_fuse_arena_create(budget);
    if (arena != NULL)
        arena->maps_large_blocks = 1;
    return arena;
}

onnx_fuse_arena *onnx_fuse_arena_create(size_t budget)
{
    onnx_fuse_arena *arena = calloc(1, sizeof *arena);
    if (arena == NULL)
        return NULL;
    arena->allocator.alloc = arena_pb_alloc;
    arena->allocator.free = arena_pb_free;
    arena->allocator.allocator_data = arena;
    arena->next_block_size = ARENA_FIRST_BLOCK;
    arena->budget = budget;
    return arena;
}

void onnx_fuse_arena_destroy(onnx_fuse_arena *arena)
{
    if (arena == NULL)
        return;
    arena_block *block = arena->blocks;
    while (block != NULL) {
        arena_block *prev = block->prev;
        if (block->mapped != 0)
            munmap(block, block->mapped);
        else
            free(block);
        block = prev;
    }
    free(arena);
}

/* A new zeroed block of at least `size` usable bytes, linked into the arena; returns the
 * aligned start of the usable bytes and sets *usable to their number. In an arena for a
 * decoded tree, a large block (a large model's tree is tens of megabytes of them) is a
 * mapping of its own in whole huge pages, asked for with MADV_HUGEPAGE: filling it then
 * faults once per 2 MiB instead of once per 4 KiB page (the 60,000-node chain's load and save:
 * 40,759 faults before, 24,341 after). Other blocks come from calloc, which may reuse memory the process freed (the
 * encoder's arena, made after the rewrites have freed much). Both are zero without a memset. */
static unsigned char *arena_new_block(onnx_fuse_arena *arena, size_t size, size_t *usable)
{
    size_t overhead = sizeof(arena_block) + ARENA_ALIGN - 1;
    if (size > SIZE_MAX - overhead - ARENA_HUGE_PAGE)
        return NULL;
    size_t length = overhead + size;
    size_t mapped = 0;
    arena_block *block = NULL;
    if (arena->maps_large_blocks && length >= ARENA_HUGE_PAGE) {
        /* A multiple of the huge page: the kernel then aligns the mapping to one. */
        mapped = (length + ARENA_HUGE_PAGE - 1) & ~(ARENA_HUGE_PAGE - 1);
        void *region = mmap(NULL, mapped, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (region != MAP_FAILED) {
#ifdef MADV_HUGEPAGE
            (void)madvise(region, mapped, MADV_HUGEPAGE); /* advice only: small pages otherwise */
#endif
            block = region;
            length = mapped;
        } else {
            mapped = 0;
        }
    }
    if (block == NULL) {
        block = calloc(1, length);
        if (block == NULL)
            return NULL;
    }
    block->mapped = mapped;
    block->prev = arena->blocks;
    arena->blocks = block;
    uintptr_t start = (uintptr_t)(block + 1);
    start = (start + ARENA_ALIGN - 1) & ~(uintptr_t)(ARENA_ALIGN - 1);
    *usable = length - (size_t)(start - (uintptr_t)block);
    return (unsigned char *)start;
}

void *onnx_fuse_arena_alloc(onnx_fuse_arena *arena, size_t size)
{
    if (arena == NULL)
        return NULL;
    /* malloc(0) may return a unique pointer; protobuf-c treats NULL as failure. */
    if (size == 0)
        size = 1;
    if (size > SIZE_MAX - (ARENA_ALIGN - 1))
        return NULL;
    size_t rounded = (size + ARENA_ALIGN - 1) & ~(ARENA_ALIGN - 1);
    if (rounded > arena->budget - arena->used) {
        arena->over_budget = 1;
        return NULL;
    }
    unsigned char *p;
    if (rounded <= (size_t)(arena->limit - arena->cursor)) {
        p = arena->cursor;
        arena->cursor += rounded;
    } else if (rounded > arena->next_block_size / 4) {
        /* A large allocation gets a block of its own, so the free tail of the current
         * bump block stays usable and no block wastes more than a quarter of itself. */
        size_t usable;
        p = arena_new_block(arena, rounded, &usable);
        if (p == NULL)
            return NULL;
    } else {
        size_t usable;
        p = arena_new_block(arena, arena->next_block_size, &usable);
        if (p == NULL)
            return NULL;
        arena->cursor = p + rounded;
        arena->limit = p + usable; /* a mapped block's rounding to whole huge pages is usable too */
        if (arena->next_block_size < ARENA_MAX_BLOCK)
            arena->next_block_size *= 2;
    }
    arena->used += rounded;
    return p;
}

int onnx_fuse_arena_over_budget(const onnx_fuse_arena *arena)
{
    return arena != NULL && arena->over_budget;
}

size_t onnx_fuse_arena_used(const onnx_fuse_arena *arena)
{
    return arena == NULL ? 0 : arena->used;
}

ProtobufCAllocator *onnx_fuse_arena_allocator(onnx_fuse_arena *arena)
{
    return arena == NULL ? NULL : &arena->allocator;
}

/* ==== wire format helpers ============================================================== */

#define FIELD_NUMBER_MAX 536870911u            /* 2^29 - 1, the largest legal field number */
/* The reserved field number of the lift marker. It is the largest legal number, so no
 * ONNX field will ever use it; a TensorProto that carries it on the wire is rejected. */
#define ONNX_FUSE_MARKER_FIELD FIELD_NUMBER_MAX
#define TENSOR_RAW_DATA_FIELD 9u
#define VARINT_MAX_BYTES 10
/* Sub-message lengths in the compacted buffer are written as 5-byte varints (enough for
 * 2^35 - 1) before the length is known, and patched when the message ends. */
#define PLACEHOLDER_BYTES 5
/* protobuf-c decodes length prefixes with 32-bit int arithmetic (the fifth byte is shifted
 * by 28 as an int) and keeps field lengths in `unsigned`: longer fields would overflow. */
#define COMPACT_LENGTH_MAX ((uint64_t)0x7fffffff)
#define NO_INDEX SIZE_MAX

enum { VARINT_OK, VARINT_TRUNCATED, VARINT_TOO_LONG };

/* Decodes a varint from at most `avail` bytes. Bits beyond 64 are dropped, as protobuf
 * does for a 10-byte varint whose last byte is larger than 1. */
static int varint_decode(const uint8_t *p, size_t avail, uint64_t *value, size_t *used)
{
    uint64_t v = 0;
    for (size_t i = 0; i < VARINT_MAX_BYTES; i++) {
        if (i == avail)
            return VARINT_TRUNCATED;
        v |= (uint64_t)(p[i] & 0x7f) << (7 * i);
        if ((p[i] & 0x80) == 0) {
            *value = v;
            *used = i + 1;
            return VARINT_OK;
        }
    }
    return VARINT_TOO_LONG;
}

/* The wire type a scalar of this type uses when it is not packed. */
static unsigned natural_wire_type(ProtobufCType type)
{
    switch (type) {
    case PROTOBUF_C_TYPE_INT32:
    case PROTOBUF_C_TYPE_SINT32:
    case PROTOBUF_C_TYPE_INT64:
    case PROTOBUF_C_TYPE_SINT64:
    case PROTOBUF_C_TYPE_UINT32:
    case PROTOBUF_C_TYPE_UINT64:
    case PROTOBUF_C_TYPE_BOOL:
    case PROTOBUF_C_TYPE_ENUM:
        return PROTOBUF_C_WIRE_TYPE_VARINT;
    case PROTOBUF_C_TYPE_SFIXED32:
    case PROTOBUF_C_TYPE_FIXED32:
    case PROTOBUF_C_TYPE_FLOAT:
        return PROTOBUF_C_WIRE_TYPE_32BIT;
    case PROTOBUF_C_TYPE_SFIXED64:
    case PROTOBUF_C_TYPE_FIXED64:
    case PROTOBUF_C_TYPE_DOUBLE:
        return PROTOBUF_C_WIRE_TYPE_64BIT;
    default:
        return PROTOBUF_C_WIRE_TYPE_LENGTH_PREFIXED;
    }
}

static const char *type_name(ProtobufCType type)
{
    static const char *const names[] = {
        "int32", "sint32", "sfixed32", "int64", "sint64", "sfixed64", "uint32", "fixed32",
        "uint64", "fixed64", "float", "double", "bool", "enum", "string", "bytes", "message",
    };
    return (unsigned)type < sizeof names / sizeof names[0] ? names[type] : "unknown";
}

/* A repeated scalar given as one length-delimited run of values. protobuf-c treats every
 * repeated scalar that arrives with wire type 2 as packed, whatever the .proto says. */
static int is_packed_occurrence(const ProtobufCFieldDescriptor *field, unsigned wire_type)
{
    return field->label == PROTOBUF_C_LABEL_REPEATED
        && wire_type == PROTOBUF_C_WIRE_TYPE_LENGTH_PREFIXED
        && natural_wire_type(field->type) != PROTOBUF_C_WIRE_TYPE_LENGTH_PREFIXED;
}

static int wire_type_fits(const ProtobufCFieldDescriptor *field, unsigned wire_type)
{
    return wire_type == natural_wire_type(field->type) || is_packed_occurrence(field, wire_type);
}

enum { UTF8_OK, UTF8_NUL, UTF8_BAD };

/* Strict UTF-8 (RFC 3629): no overlong forms, no surrogates, nothing above U+10FFFF.
 * protobuf-c hands strings to C as NUL-terminated copies, so a NUL would cut them short.
 * On failure *at is the offset of the offending byte. On success *at is the number of bytes
 * checked: all `n`, or, when `final` is 0 (a chunk of a longer string), up to a sequence
 * that the end of the chunk cuts, which the next chunk must start with. */
static int utf8_check(const uint8_t *s, size_t n, int final, size_t *at)
{
    size_t i = 0;
    while (i < n) {
        /* Names are mostly ASCII: skip 8 bytes at a time while none is NUL or above 0x7f. */
        while (n - i >= 8) {
            uint64_t v;
            memcpy(&v, s + i, 8);
            if (((v | (v - 0x0101010101010101u)) & 0x8080808080808080u) != 0)
                break;
            i += 8;
        }
        if (i == n)
            break;
        uint8_t c = s[i];
        if (c < 0x80) {
            if (c == 0) {
                *at = i;
                return UTF8_NUL;
            }
            i++;
            continue;
        }
        size_t more;
        uint8_t lo = 0x80, hi = 0xbf; /* allowed range of the second byte */
        if (c >= 0xc2 && c <= 0xdf) {
            more = 1;
        } else if (c == 0xe0) {
            more = 2, lo = 0xa0;          /* no overlong 3-byte forms */
        } else if ((c >= 0xe1 && c <= 0xec) || c == 0xee || c == 0xef) {
            more = 2;
        } else if (c == 0xed) {
            more = 2, hi = 0x9f;          /* no surrogates U+D800..U+DFFF */
        } else if (c == 0xf0) {
            more = 3, lo = 0x90;          /* no overlong 4-byte forms */
        } else if (c >= 0xf1 && c <= 0xf3) {
            more = 3;
        } else if (c == 0xf4) {
            more = 3, hi = 0x8f;          /* nothing above U+10FFFF */
        } else {
            *at = i;
            return UTF8_BAD;
        }
        if (n - i <= more) {
            if (!final)
                break;                    /* the sequence goes on in the next chunk */
            *at = i;
            return UTF8_BAD;
        }
        if (s[i + 1] < lo || s[i + 1] > hi) {
            *at = i;
            return UTF8_BAD;
        }
        for (size_t k = 2; k <= more; k++) {
            if ((s[i + k] & 0xc0) != 0x80) {
                *at = i;
                return UTF8_BAD;
            }
        }
        i += more + 1;
    }
    *at = i;
    return UTF8_OK;
}

/* The varints of a packed run: VARINT_OK and *at = bytes checked (all `n`, or, when `final`
 * is 0, up to a varint that the end of the chunk cuts), or the failure and *at = the offset
 * of the varint. */
static int varints_check(const uint8_t *p, size_t n, int final, size_t *at)
{
    size_t i = 0;
    while (i < n) {
        uint64_t ignored;
        size_t used;
        int r = varint_decode(p + i, n - i, &ignored, &used);
        if (r == VARINT_OK) {
            i += used;
            continue;
        }
        if (r == VARINT_TRUNCATED && !final)
            break;
        *at = i;
        return r;
    }
    *at = i;
    return VARINT_OK;
}

/* ==== growable byte buffer for the compacted copy ====================================== */

/* The per-field helpers of the wire pass run some 200,000 times for a 6,000-node model. */
#if defined(__GNUC__) || defined(__clang__)
#define ALWAYS_INLINE __attribute__((always_inline))
#else
#define ALWAYS_INLINE
#endif

typedef struct {
    uint8_t *data;
    size_t len;
    size_t cap;
} byte_buf;

static int buf_grow(byte_buf *b, size_t extra)
{
    if (extra > SIZE_MAX - b->len)
        return 0;
    size_t need = b->len + extra;
    size_t cap = b->cap < 4096 ? 4096 : b->cap;
    while (cap < need)
        cap = cap > SIZE_MAX / 2 ? need : cap * 2;
    uint8_t *data = realloc(b->data, cap);
    if (data == NULL)
        return 0;
    b->data = data;
    b->cap = cap;
    return 1;
}

static inline ALWAYS_INLINE int buf_reserve(byte_buf *b, size_t extra)
{
    return extra <= b->cap - b->len || buf_grow(b, extra);
}

static inline ALWAYS_INLINE int buf_bytes(byte_buf *b, const uint8_t *p, size_t n)
{
    if (!buf_reserve(b, n))
        return 0;
    if (n > 0)
        memcpy(b->data + b->len, p, n);
    b->len += n;
    return 1;
}

/* Minimal varint encoding: the compacted buffer re-encodes every tag and length, because
 * protobuf-c rejects tags and lengths longer than 5 bytes, which protobuf itself allows.
 * Written in place (the pass writes some 200,000 of them for a 6,000-node model). */
static inline ALWAYS_INLINE int buf_varint(byte_buf *b, uint64_t v)
{
    if (!buf_reserve(b, VARINT_MAX_BYTES))
        return 0;
    uint8_t *out = b->data + b->len;
    size_t n = 0;
    while (v >= 0x80) {
        out[n++] = (uint8_t)(v | 0x80);
        v >>= 7;
    }
    out[n++] = (uint8_t)v;
    b->len += n;
    return 1;
}

static inline ALWAYS_INLINE int buf_key(byte_buf *b, uint32_t number, unsigned wire_type)
{
    return buf_varint(b, ((uint64_t)number << 3) | wire_type);
}

/* Writes a 5-byte varint for `v` (< 2^35) at `at`: padded with continuation bytes, which
 * protobuf-c's scan_length_prefixed_data accepts (it reads up to 5 length bytes). */
static void buf_patch_varint5(byte_buf *b, size_t at, uint64_t v)
{
    for (int i = 0; i < PLACEHOLDER_BYTES - 1; i++) {
        b->data[at + i] = (uint8_t)((v & 0x7f) | 0x80);
        v >>= 7;
    }
    b->data[at + PLACEHOLDER_BYTES - 1] = (uint8_t)(v & 0x7f);
}

/* ==== the wire pass ==================================================================== */

/* One message being read. */
typedef struct {
    const ProtobufCMessageDescriptor *desc;
    size_t end;              /* input offset just past the message */
    size_t placeholder;      /* compacted offset of its 5-byte length placeholder */
    size_t counts_base;      /* its per-field occurrence counters start here in counts[] */
    const char *name;        /* path segment: the field in the parent, or the root's type */
    size_t index;            /* position among the parent's repeated field, or NO_INDEX */
    int is_tensor;           /* a TensorProto: its raw_data may be lifted */
    int seen_raw_data;
    int has_payload;         /* a TensorProto with non-empty raw_data */
    size_t singular_slot;    /* a TensorProto in a singular field: the parent's counts[] slot
                              * of that field (else NO_INDEX), marked when it had a payload */
} wire_frame;

/* A lifted TensorProto.raw_data payload inside the caller's bytes. */
typedef struct {
    size_t offset;
    size_t length;
} lift_entry;

/* The window of a file source; fields up to DIRECT_MIN go through it. */
#define WINDOW_MAX ((size_t)256 << 10)
/* The first read, and the first after a jump over bytes not needed (lifted raw_data). */
#define READ_AFTER_SKIP ((size_t)512)
/* A jump over at most this many bytes keeps the reads growing (see wire_refill). */
#define READ_THROUGH_MAX ((size_t)64 << 10)
/* A string, bytes or packed field at least this long that is not in the window is read
 * from the file straight into the compacted buffer (and checked there). */
#define DIRECT_MIN ((size_t)64 << 10)
/* Linux reads at most 0x7ffff000 bytes per call; stay below that. */
#define READ_CHUNK_MAX ((size_t)1 << 30)

/* Where the wire pass gets its bytes: [start, start + avail) of the input are at `base`.
 *   - A memory source is one window over the whole input: base is the input, start 0,
 *     avail len; every request is served in place.
 *   - A file source (onnx_fuse_load_fd) reads the input with pread into `buf`, a window of
 *     at most WINDOW_MAX bytes that only moves forward, as the pass does. A request beyond
 *     the window refills it from the requested offset, keeping the bytes it still covers,
 *     so every byte is read at most once. Whatever the pass steps over (lifted raw_data) is
 *     not read to get past it: the next refill starts where the pass goes on. Reads grow
 *     (READ_AFTER_SKIP, doubling up to the window) while the pass goes on where the last
 *     read ended, and shrink back after a jump, so that the read-ahead issued for a few
 *     structure bytes between two payloads takes only a little of the next payload. */
typedef struct {
    const uint8_t *base;
    size_t start;
    size_t avail;
    size_t len;              /* the size of the input */
    int is_file;
    int fd;
    uint8_t *buf;            /* the window of a file source */
    size_t cap;              /* its size: WINDOW_MAX, or len when smaller */
    size_t read_size;        /* how much the next refill reads */
} byte_source;

typedef struct {
    byte_source src;
    size_t max_depth;
    size_t lift_min;         /* raw_data of at least this many bytes (and non-empty) is lifted */
    onnx_fuse_error *err;

    /* Explicit stack of open messages instead of recursion: depth is attacker-controlled. */
    wire_frame *frames;
    size_t depth, frames_cap;
    /* Running occurrence counters of each open message's fields, for "node[3]" in paths. */
    size_t *counts;
    size_t counts_len, counts_cap;

    byte_buf out;            /* the compacted copy handed to protobuf-c */
    lift_entry *lifts;
    size_t n_lifts, lifts_cap;
    size_t message_count;
    uint64_t lifted_bytes;

    /* The field being read, for error paths; in_field is 0 between fields. */
    int in_field;
    const ProtobufCFieldDescriptor *field;
    uint32_t field_number;
    size_t field_index;
} wire_pass;

/* An error path built right to left, innermost segment first, in buf[start..]. Building
 * from the leaf keeps the useful end of a path too deep for onnx_fuse_error.path; room for
 * a leading "..." is always kept free. */
typedef struct {
    char buf[sizeof(((onnx_fuse_error *)0)->path)];
    size_t start;
    int truncated;
} rpath;

static void rpath_prepend(rpath *p, const char *text)
{
    size_t n = strlen(text);
    if (p->truncated)
        return;
    if (n + 3 > p->start) {
        p->truncated = 1;
        if (p->buf[p->start] == '.')
            p->start++;
        p->start -= 3;
        memcpy(p->buf + p->start, "...", 3);
        return;
    }
    p->start -= n;
    memcpy(p->buf + p->start, text, n);
}

static void rpath_segment(rpath *p, const char *name, size_t index, int first)
{
    char seg[160];
    if (index == NO_INDEX)
        snprintf(seg, sizeof seg, "%s%s", name, first ? "" : ".");
    else
        snprintf(seg, sizeof seg, "%s[%zu]%s", name, index, first ? "" : ".");
    rpath_prepend(p, seg);
}

/* "ModelProto.graph.node[3].attribute[0].name"; an unknown field shows as "#number". */
static void wire_path(const wire_pass *w, char *dst, size_t cap)
{
    rpath p;
    p.start = sizeof p.buf - 1;
    p.buf[p.start] = '\0';
    p.truncated = 0;
    int first = 1;
    if (w->in_field) {
        if (w->field != NULL) {
            rpath_segment(&p, w->field->name, w->field_index, 1);
        } else {
            char unknown[16];
            snprintf(unknown, sizeof unknown, "#%u", (unsigned)w->field_number);
            rpath_segment(&p, unknown, NO_INDEX, 1);
        }
        first = 0;
    }
    for (size_t i = w->depth; i > 0 && !p.truncated; i--) {
        rpath_segment(&p, w->frames[i - 1].name, w->frames[i - 1].index, first);
        first = 0;
    }
    snprintf(dst, cap, "%s", p.buf + p.start);
}

#if defined(__GNUC__) || defined(__clang__)
__attribute__((format(printf, 4, 5)))
#endif
static onnx_fuse_status wire_fail(wire_pass *w, onnx_fuse_status status, size_t offset,
                                  const char *fmt, ...)
{
    onnx_fuse_error *err = w->err;
    err->status = status;
    err->offset = offset;
    wire_path(w, err->path, sizeof err->path);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err->message, sizeof err->message, fmt, ap);
    va_end(ap);
    return status;
}

static onnx_fuse_status wire_nomem(wire_pass *w, size_t offset)
{
    return wire_fail(w, ONNX_FUSE_NOMEM, offset, "out of memory");
}

/* ---- reading through the byte source ---- */

/* Reads up to `count` bytes at `offset` of `fd` into `dst`, retrying EINTR and short reads;
 * stops early only at the end of the file. 0 or an errno; *got says how much was read. */
static int pread_fully(int fd, uint8_t *dst, size_t count, size_t offset, size_t *got)
{
    size_t done = 0;
    int e = 0;
    while (done < count) {
        size_t chunk = count - done < READ_CHUNK_MAX ? count - done : READ_CHUNK_MAX;
        if (offset + done > (uint64_t)INT64_MAX - chunk) {
            e = EOVERFLOW;
            break;
        }
        ssize_t n = pread(fd, dst + done, chunk, (off_t)(offset + done));
        if (n < 0) {
            if (errno == EINTR)
                continue;
            e = errno != 0 ? errno : EIO;
            break;
        }
        if (n == 0)
            break; /* end of file */
        done += (size_t)n;
    }
    *got = done;
    return e;
}

/* Reads `count` bytes at `offset` into `dst`, or fails: ONNX_FUSE_IO with the errno of a
 * failed read, or with EIO when the file ends before `len`, the size the caller gave. */
static onnx_fuse_status wire_read(wire_pass *w, uint8_t *dst, size_t count, size_t offset,
                                  size_t need, size_t *got)
{
    int e = pread_fully(w->src.fd, dst, count, offset, got);
    onnx_fuse_status st = ONNX_FUSE_OK;
    if (e != 0) {
        st = wire_fail(w, ONNX_FUSE_IO, offset + *got, "read failed at byte %zu: %s",
                       offset + *got, strerror(e));
        w->err->sys_errno = e;
    } else if (*got < need) {
        st = wire_fail(w, ONNX_FUSE_IO, offset + *got,
                       "the file ends before byte %zu of the %zu bytes it was said to hold "
                       "(it changed while loading)", offset + *got, w->src.len);
        w->err->sys_errno = EIO;
    }
    return st;
}

/* The slow path of wire_bytes (file sources only): moves the window forward to start at
 * `pos` and reads until it holds at least `n` bytes (n <= cap, inside the input). */
static const uint8_t *wire_refill(wire_pass *w, size_t pos, size_t n)
{
    static const uint8_t nothing[1];
    byte_source *s = &w->src;
    if (n == 0)
        return nothing;
    if (!s->is_file || n > s->cap || pos > s->len || n > s->len - pos) {
        /* Cannot happen: the pass asks only for bytes inside the input, a window at most. */
        wire_fail(w, ONNX_FUSE_INVALID, pos, "internal error: %zu bytes at %zu are out of reach",
                  n, pos);
        return NULL;
    }
    size_t keep = 0;
    if (pos >= s->start && pos - s->start <= s->avail) {
        /* Going on where the window is: keep its tail, read after it. */
        keep = s->avail - (pos - s->start);
        if (keep > 0 && pos != s->start)
            memmove(s->buf, s->buf + (pos - s->start), keep);
    } else if (pos < s->start || pos - (s->start + s->avail) > READ_THROUGH_MAX) {
        /* A jump past a large payload: start small again, so that the read-ahead for the few
         * structure bytes before the next payload takes little of it. */
        s->read_size = READ_AFTER_SKIP;
    }
    /* A jump past a small payload keeps the read size: models with 100,000 tiny tensors
     * would otherwise cost a read for every few of them. */
    s->start = pos;
    s->avail = keep;
    size_t target = n > s->read_size ? n : s->read_size;
    if (target > s->cap)
        target = s->cap;
    if (target > s->len - pos)
        target = s->len - pos;
    if (s->read_size < WINDOW_MAX)
        s->read_size *= 2;
    if (keep < target) {
        size_t got = 0;
        onnx_fuse_status st = wire_read(w, s->buf + keep, target - keep, pos + keep,
                                        n > keep ? n - keep : 0, &got);
        s->avail += got;
        if (st != ONNX_FUSE_OK)
            return NULL;
    }
    return s->buf;
}

/* The `n` input bytes at `pos` (inside the input; n at most a window for a file source),
 * or NULL with the error set. */
static inline const uint8_t *wire_bytes(wire_pass *w, size_t pos, size_t n)
{
    const byte_source *s = &w->src;
    if (pos >= s->start) {
        size_t off = pos - s->start;
        if (off <= s->avail && n <= s->avail - off)
            return s->base + off;
    }
    return wire_refill(w, pos, n);
}

/* The `n` input bytes at `pos` if the window holds them (always for a memory source). */
static inline const uint8_t *wire_peek(const wire_pass *w, size_t pos, size_t n)
{
    const byte_source *s = &w->src;
    if (pos >= s->start) {
        size_t off = pos - s->start;
        if (off <= s->avail && n <= s->avail - off)
            return s->base + off;
    }
    return NULL;
}

/* Reads a varint at *pos that must end before `end`. Only the varint's own bytes must be
 * in the file: the one before a lifted payload may be the last byte a file source needs. */
static onnx_fuse_status wire_varint_slow(wire_pass *w, size_t *pos, size_t end, uint64_t *value,
                                         const char *what)
{
    size_t limit = end - *pos < VARINT_MAX_BYTES ? end - *pos : VARINT_MAX_BYTES;
    const byte_source *s = &w->src;
    size_t have = 0;
    const uint8_t *p = NULL;
    if (*pos >= s->start && *pos - s->start <= s->avail) {
        have = s->avail - (*pos - s->start);
        p = s->base + (*pos - s->start);
    }
    if (have > limit)
        have = limit;
    size_t used = 0;
    int r = varint_decode(p, have, value, &used);
    while (r == VARINT_TRUNCATED && have < limit) {
        /* The window ends inside the varint (a file source): one more byte at least. */
        if ((p = wire_refill(w, *pos, have + 1)) == NULL)
            return w->err->status;
        have = s->avail < limit ? s->avail : limit;
        r = varint_decode(p, have, value, &used);
    }
    switch (r) {
    case VARINT_OK:
        *pos += used;
        return ONNX_FUSE_OK;
    case VARINT_TRUNCATED:
        return wire_fail(w, ONNX_FUSE_INVALID, *pos, "%s runs past the end of the message", what);
    default:
        return wire_fail(w, ONNX_FUSE_INVALID, *pos, "%s is longer than 10 bytes", what);
    }
}

/* wire_varint_slow with the usual case inline: a one-byte varint (most keys and lengths)
 * inside the message and the window. */
static inline ALWAYS_INLINE onnx_fuse_status wire_varint(wire_pass *w, size_t *pos, size_t end, uint64_t *value,
                                           const char *what)
{
    const byte_source *s = &w->src;
    size_t at = *pos;
    if (at < end && at >= s->start && at - s->start < s->avail) {
        uint8_t byte = s->base[at - s->start];
        if (byte < 0x80) {
            *value = byte;
            *pos = at + 1;
            return ONNX_FUSE_OK;
        }
    }
    return wire_varint_slow(w, pos, end, value, what);
}

static onnx_fuse_status wire_push(wire_pass *w, const ProtobufCMessageDescriptor *desc,
                                  size_t end, size_t placeholder, const char *name,
                                  size_t index, size_t offset)
{
    if (w->depth == w->frames_cap) {
        size_t cap = w->frames_cap == 0 ? 32 : w->frames_cap * 2;
        wire_frame *frames = realloc(w->frames, cap * sizeof *frames);
        if (frames == NULL)
            return wire_nomem(w, offset);
        w->frames = frames;
        w->frames_cap = cap;
    }
    size_t n_fields = desc->n_fields;
    if (n_fields > w->counts_cap - w->counts_len) {
        size_t cap = w->counts_cap == 0 ? 256 : w->counts_cap;
        while (cap - w->counts_len < n_fields)
            cap *= 2;
        size_t *counts = realloc(w->counts, cap * sizeof *counts);
        if (counts == NULL)
            return wire_nomem(w, offset);
        w->counts = counts;
        w->counts_cap = cap;
    }
    memset(w->counts + w->counts_len, 0, n_fields * sizeof *w->counts);

    wire_frame *f = &w->frames[w->depth++];
    f->desc = desc;
    f->end = end;
    f->placeholder = placeholder;
    f->counts_base = w->counts_len;
    f->name = name;
    f->index = index;
    f->is_tensor = desc == &onnx__tensor_proto__descriptor;
    f->seen_raw_data = 0;
    f->has_payload = 0;
    f->singular_slot = NO_INDEX;
    w->counts_len += n_fields;
    w->message_count++;
    return ONNX_FUSE_OK;
}

/* Closes the innermost message: its compacted length is known now. */
static onnx_fuse_status wire_pop(wire_pass *w, size_t pos)
{
    wire_frame *f = &w->frames[w->depth - 1];
    w->in_field = 0;
    if (w->depth > 1) {
        uint64_t body = w->out.len - (f->placeholder + PLACEHOLDER_BYTES);
        if (body > COMPACT_LENGTH_MAX)
            return wire_fail(w, ONNX_FUSE_LIMIT, pos,
                             "message of %llu bytes (raw_data excluded) is too large for protobuf-c",
                             (unsigned long long)body);
        buf_patch_varint5(&w->out, f->placeholder, body);
    }
    if (f->has_payload && f->singular_slot != NO_INDEX)
        w->counts[f->singular_slot] = 1;
    w->counts_len = f->counts_base;
    w->depth--;
    return ONNX_FUSE_OK;
}

/* A sub-message: write its key and a length placeholder, and open a frame for it. */
static onnx_fuse_status wire_enter(wire_pass *w, size_t key_offset, size_t body, size_t length)
{
    const ProtobufCFieldDescriptor *field = w->field;
    if (w->depth >= w->max_depth)
        return wire_fail(w, ONNX_FUSE_LIMIT, key_offset, "messages nested deeper than %zu levels",
                         w->max_depth);
    if (!buf_key(&w->out, field->id, PROTOBUF_C_WIRE_TYPE_LENGTH_PREFIXED))
        return wire_nomem(w, key_offset);
    /* protobuf-c merges a singular message field given twice. An earlier TensorProto's raw_data
     * would be lost if lifted (the later one's unknown fields replace its marker) and kept if
     * copied, unless the later one has an empty raw_data (protobuf-c keeps the earlier bytes,
     * other readers the empty ones): refused whatever its size. (The counts[] slot of a
     * singular field is otherwise unused.) */
    size_t singular_slot = NO_INDEX;
    if (field->descriptor == &onnx__tensor_proto__descriptor && field->label != PROTOBUF_C_LABEL_REPEATED) {
        const wire_frame *parent = &w->frames[w->depth - 1];
        singular_slot = parent->counts_base + (size_t)(field - parent->desc->fields);
        if (w->counts[singular_slot] != 0)
            return wire_fail(w, ONNX_FUSE_INVALID, key_offset,
                             "a TensorProto given twice as a singular field would lose its raw_data");
    }
    size_t placeholder = w->out.len;
    static const uint8_t zeros[PLACEHOLDER_BYTES];
    if (!buf_bytes(&w->out, zeros, PLACEHOLDER_BYTES))
        return wire_nomem(w, key_offset);
    onnx_fuse_status st = wire_push(w, field->descriptor, body + length, placeholder, field->name,
                                    w->field_index, key_offset);
    if (st == ONNX_FUSE_OK)
        w->frames[w->depth - 1].singular_slot = singular_slot;
    return st;
}

/* A non-empty TensorProto.raw_data of at least lift_min bytes: remember where it is and
 * write a marker instead.
 * The marker is an unknown varint field whose value indexes the lift table; protobuf-c
 * keeps it in the tensor's unknown_fields, where the healing walk finds it. */
static onnx_fuse_status wire_lift(wire_pass *w, size_t key_offset, size_t body, size_t length)
{
    if (w->n_lifts == w->lifts_cap) {
        size_t cap = w->lifts_cap == 0 ? 64 : w->lifts_cap * 2;
        lift_entry *lifts = realloc(w->lifts, cap * sizeof *lifts);
        if (lifts == NULL)
            return wire_nomem(w, key_offset);
        w->lifts = lifts;
        w->lifts_cap = cap;
    }
    w->lifts[w->n_lifts].offset = body;
    w->lifts[w->n_lifts].length = length;
    if (!buf_key(&w->out, ONNX_FUSE_MARKER_FIELD, PROTOBUF_C_WIRE_TYPE_VARINT)
        || !buf_varint(&w->out, w->n_lifts))
        return wire_nomem(w, key_offset);
    w->n_lifts++;
    w->lifted_bytes += length;
    return ONNX_FUSE_OK;
}

/* What the bytes of a string, bytes or packed field are checked for. */
enum { CHECK_NONE, CHECK_STRING, CHECK_BOOLS, CHECK_VARINTS };

/* Checks the `n` bytes at `p`, which are the input bytes at `offset`: all of the field's
 * (final) or a chunk of them (then *done says how far the next chunk must start). */
static onnx_fuse_status wire_check_bytes(wire_pass *w, int kind, const uint8_t *p, size_t n,
                                         size_t offset, int final, size_t *done)
{
    size_t at = n;
    switch (kind) {
    case CHECK_STRING:
        switch (utf8_check(p, n, final, &at)) {
        case UTF8_NUL:
            return wire_fail(w, ONNX_FUSE_INVALID, offset + at, "NUL byte inside a string");
        case UTF8_BAD:
            return wire_fail(w, ONNX_FUSE_INVALID, offset + at, "invalid UTF-8 inside a string");
        default:
            break;
        }
        break;
    case CHECK_BOOLS:
        /* protobuf-c reads a packed bool as one byte and refuses anything but 0 and 1. */
        for (size_t i = 0; i < n; i++)
            if (p[i] > 1)
                return wire_fail(w, ONNX_FUSE_INVALID, offset + i, "packed bool value is not 0 or 1");
        break;
    case CHECK_VARINTS:
        switch (varints_check(p, n, final, &at)) {
        case VARINT_OK:
            break;
        case VARINT_TRUNCATED:
            return wire_fail(w, ONNX_FUSE_INVALID, offset + at,
                             "packed value runs past the end of the message");
        default:
            return wire_fail(w, ONNX_FUSE_INVALID, offset + at, "packed value is longer than 10 bytes");
        }
        break;
    default:
        break;
    }
    if (done != NULL)
        *done = at;
    return ONNX_FUSE_OK;
}

/* A field longer than protobuf-c can read, not in the window of a file source: checked
 * chunk by chunk through the window (what a memory source checks in one go), then refused,
 * without copying anything. */
static onnx_fuse_status wire_too_large(wire_pass *w, int kind, size_t body, size_t length,
                                       size_t length_offset)
{
    if (kind != CHECK_NONE) {
        size_t pos = body, end = body + length;
        while (pos < end) {
            size_t want = end - pos < w->src.cap ? end - pos : w->src.cap;
            const uint8_t *p = wire_bytes(w, pos, want);
            if (p == NULL)
                return w->err->status;
            size_t done = 0;
            onnx_fuse_status st = wire_check_bytes(w, kind, p, want, pos, pos + want == end, &done);
            if (st != ONNX_FUSE_OK)
                return st;
            if (done == 0)
                break; /* cannot happen: a window holds a whole UTF-8 sequence or varint */
            pos += done;
        }
    }
    return wire_fail(w, ONNX_FUSE_LIMIT, length_offset,
                     "field of %llu bytes is too large for protobuf-c", (unsigned long long)length);
}

/* A long field of a file source that is not in the window: its key and length go to the
 * compacted buffer, then its bytes straight from the window and the file, checked there. */
static onnx_fuse_status wire_copy_direct(wire_pass *w, int kind, size_t key_offset, size_t body,
                                         size_t length)
{
    byte_source *s = &w->src;
    if (!buf_key(&w->out, w->field_number, PROTOBUF_C_WIRE_TYPE_LENGTH_PREFIXED)
        || !buf_varint(&w->out, length) || !buf_reserve(&w->out, length))
        return wire_nomem(w, key_offset);
    uint8_t *dst = w->out.data + w->out.len;
    size_t have = 0;
    if (body >= s->start && body - s->start < s->avail) {
        have = s->avail - (body - s->start);
        if (have > length)
            have = length; /* cannot happen: the field is not all in the window */
        memcpy(dst, s->base + (body - s->start), have);
    }
    /* The window is used up: the pass goes on after the field. */
    s->start = body + length;
    s->avail = 0;
    if (have < length) {
        size_t got = 0;
        onnx_fuse_status st = wire_read(w, dst + have, length - have, body + have, length - have, &got);
        if (st != ONNX_FUSE_OK)
            return st;
    }
    onnx_fuse_status st = wire_check_bytes(w, kind, dst, length, body, 1, NULL);
    if (st != ONNX_FUSE_OK)
        return st;
    w->out.len += length;
    return ONNX_FUSE_OK;
}

/* A length-delimited field at key_offset whose length varint starts at length_offset. */
static onnx_fuse_status wire_length_delimited(wire_pass *w, size_t key_offset,
                                              size_t length_offset, size_t *pos)
{
    wire_frame *top = &w->frames[w->depth - 1];
    const ProtobufCFieldDescriptor *field = w->field;
    uint64_t length;
    onnx_fuse_status st = wire_varint(w, pos, top->end, &length, "length");
    if (st != ONNX_FUSE_OK)
        return st;
    if (length > top->end - *pos)
        return wire_fail(w, ONNX_FUSE_INVALID, length_offset,
                         "length %llu runs past the end of the message", (unsigned long long)length);
    size_t body = *pos;
    size_t n = (size_t)length;
    /* A sub-message is read field by field from its first byte by the main loop. */
    if (field != NULL && field->type == PROTOBUF_C_TYPE_MESSAGE)
        return wire_enter(w, key_offset, body, n);
    *pos += n;
    if (field != NULL && top->is_tensor && field->id == TENSOR_RAW_DATA_FIELD && n > 0) {
        top->has_payload = 1;
        /* Lifted: stepped over, never read. */
        if (n >= w->lift_min)
            return wire_lift(w, key_offset, body, n);
    }

    int kind = CHECK_NONE;
    if (field != NULL && field->type == PROTOBUF_C_TYPE_STRING) {
        kind = CHECK_STRING;
    } else if (field != NULL && is_packed_occurrence(field, PROTOBUF_C_WIRE_TYPE_LENGTH_PREFIXED)) {
        /* The payload of a packed repeated scalar must hold whole values, as protobuf-c
         * expects. */
        unsigned natural = natural_wire_type(field->type);
        if (natural == PROTOBUF_C_WIRE_TYPE_32BIT || natural == PROTOBUF_C_WIRE_TYPE_64BIT) {
            size_t size = natural == PROTOBUF_C_WIRE_TYPE_32BIT ? 4 : 8;
            if (n % size != 0)
                return wire_fail(w, ONNX_FUSE_INVALID, body,
                                 "packed %s values take %zu bytes, not a multiple of %zu",
                                 type_name(field->type), n, size);
        } else {
            kind = field->type == PROTOBUF_C_TYPE_BOOL ? CHECK_BOOLS : CHECK_VARINTS;
        }
    }

    const uint8_t *p = wire_peek(w, body, n);
    if (p == NULL && n >= DIRECT_MIN) {
        /* Only a file source gets here: a memory source's window is the whole input. */
        if (length > COMPACT_LENGTH_MAX)
            return wire_too_large(w, kind, body, n, length_offset);
        return wire_copy_direct(w, kind, key_offset, body, n);
    }
    if (p == NULL && (p = wire_bytes(w, body, n)) == NULL)
        return w->err->status;
    st = wire_check_bytes(w, kind, p, n, body, 1, NULL);
    if (st != ONNX_FUSE_OK)
        return st;
    if (length > COMPACT_LENGTH_MAX)
        return wire_fail(w, ONNX_FUSE_LIMIT, length_offset,
                         "field of %llu bytes is too large for protobuf-c", (unsigned long long)length);
    if (!buf_key(&w->out, w->field_number, PROTOBUF_C_WIRE_TYPE_LENGTH_PREFIXED)
        || !buf_varint(&w->out, length) || !buf_bytes(&w->out, p, n))
        return wire_nomem(w, key_offset);
    return ONNX_FUSE_OK;
}

/* Reads one field of the innermost message at *pos. */
static onnx_fuse_status wire_field(wire_pass *w, size_t *pos)
{
    wire_frame *top = &w->frames[w->depth - 1];
    size_t key_offset = *pos;
    uint64_t key;
    w->in_field = 0;
    onnx_fuse_status st = wire_varint(w, pos, top->end, &key, "field key");
    if (st != ONNX_FUSE_OK)
        return st;
    uint64_t number = key >> 3;
    unsigned wire_type = (unsigned)(key & 7);
    if (number == 0 || number > FIELD_NUMBER_MAX)
        return wire_fail(w, ONNX_FUSE_INVALID, key_offset, "field number %llu is out of range",
                         (unsigned long long)number);

    /* protoc-c sorts a descriptor's fields by number, and ONNX numbers its fields from 1
     * with few gaps: the field is usually at index number - 1 (ids are unique, so a match
     * is the field); the library's range search otherwise. */
    const ProtobufCFieldDescriptor *field = NULL;
    if (number <= top->desc->n_fields && top->desc->fields[number - 1].id == number)
        field = &top->desc->fields[number - 1];
    else
        field = protobuf_c_message_descriptor_get_field(top->desc, (unsigned)number);
    w->in_field = 1;
    w->field = field;
    w->field_number = (uint32_t)number;
    w->field_index = NO_INDEX;
    /* Count occurrences so that paths name the element: node[3]. A packed run holds many
     * elements and gets no index. */
    if (field != NULL && field->label == PROTOBUF_C_LABEL_REPEATED
        && !is_packed_occurrence(field, wire_type))
        w->field_index = w->counts[top->counts_base + (size_t)(field - top->desc->fields)]++;

    if (wire_type == 3 || wire_type == 4)
        return wire_fail(w, ONNX_FUSE_INVALID, key_offset, "wire type %u (group) is not supported",
                         wire_type);
    if (wire_type == 6 || wire_type == 7)
        return wire_fail(w, ONNX_FUSE_INVALID, key_offset, "wire type %u does not exist", wire_type);
    if (top->is_tensor && number == ONNX_FUSE_MARKER_FIELD)
        return wire_fail(w, ONNX_FUSE_INVALID, key_offset,
                         "TensorProto uses field number %u, which the loader reserves",
                         ONNX_FUSE_MARKER_FIELD);
    if (top->is_tensor && number == TENSOR_RAW_DATA_FIELD) {
        /* Two raw_data would leave two markers (or a marker and a copy) in one tensor. */
        if (top->seen_raw_data)
            return wire_fail(w, ONNX_FUSE_INVALID, key_offset, "raw_data given more than once");
        top->seen_raw_data = 1;
    }
    if (field != NULL && !wire_type_fits(field, wire_type)) {
        char kind[32];
        snprintf(kind, sizeof kind, "%s%s",
                 field->label == PROTOBUF_C_LABEL_REPEATED ? "repeated " : "", type_name(field->type));
        return wire_fail(w, ONNX_FUSE_INVALID, key_offset, "wire type %u does not fit %s %s field",
                         wire_type, strchr("aeio", kind[0]) != NULL ? "an" : "a", kind);
    }

    size_t value_offset = *pos;
    switch (wire_type) {
    case PROTOBUF_C_WIRE_TYPE_VARINT: {
        uint64_t ignored;
        st = wire_varint(w, pos, top->end, &ignored, "varint value");
        if (st != ONNX_FUSE_OK)
            return st;
        break;
    }
    case PROTOBUF_C_WIRE_TYPE_64BIT:
    case PROTOBUF_C_WIRE_TYPE_32BIT: {
        size_t size = wire_type == PROTOBUF_C_WIRE_TYPE_64BIT ? 8 : 4;
        if (top->end - *pos < size)
            return wire_fail(w, ONNX_FUSE_INVALID, value_offset,
                             "%zu-byte value runs past the end of the message", size);
        *pos += size;
        break;
    }
    default:
        return wire_length_delimited(w, key_offset, value_offset, pos);
    }
    /* Scalars are copied as they are, behind a minimal key. A varint's bytes are still in
     * the window wire_varint read them into. */
    const uint8_t *value = wire_bytes(w, value_offset, *pos - value_offset);
    if (value == NULL)
        return w->err->status;
    if (!buf_key(&w->out, w->field_number, wire_type)
        || !buf_bytes(&w->out, value, *pos - value_offset))
        return wire_nomem(w, key_offset);
    return ONNX_FUSE_OK;
}

/* The whole pass: a loop over fields, closing messages where their bytes end. */
static onnx_fuse_status wire_run(wire_pass *w, size_t len)
{
    if (w->max_depth < 1)
        return wire_fail(w, ONNX_FUSE_LIMIT, 0, "messages nested deeper than %zu levels",
                         w->max_depth);
    onnx_fuse_status st = wire_push(w, &onnx__model_proto__descriptor, len, 0,
                                    onnx__model_proto__descriptor.short_name, NO_INDEX, 0);
    size_t pos = 0;
    while (st == ONNX_FUSE_OK && w->depth > 0) {
        if (pos == w->frames[w->depth - 1].end)
            st = wire_pop(w, pos);
        else
            st = wire_field(w, &pos);
    }
    return st;
}

/* ==== healing ========================================================================== */

typedef struct {
    const uint8_t *in;
    const lift_entry *lifts;
    size_t n_lifts;
    size_t healed;
    int bad_marker;
} healer;

/* Replaces the marker in a TensorProto's unknown fields by raw_data pointing into `in`. */
static void heal_tensor(healer *h, Onnx__TensorProto *tensor)
{
    ProtobufCMessage *base = &tensor->base;
    unsigned i = 0;
    while (i < base->n_unknown_fields) {
        ProtobufCMessageUnknownField *u = &base->unknown_fields[i];
        if (u->tag != ONNX_FUSE_MARKER_FIELD || u->wire_type != PROTOBUF_C_WIRE_TYPE_VARINT) {
            i++;
            continue;
        }
        uint64_t index;
        size_t used;
        if (varint_decode(u->data, u->len, &index, &used) != VARINT_OK || index >= h->n_lifts) {
            h->bad_marker = 1; /* cannot happen: the wire pass wrote every marker */
            return;
        }
        const lift_entry *e = &h->lifts[index];
        tensor->has_raw_data = 1;
        tensor->raw_data.len = e->length;
        tensor->raw_data.data = (uint8_t *)(uintptr_t)(h->in + e->offset);
        memmove(u, u + 1, (base->n_unknown_fields - i - 1) * sizeof *u);
        base->n_unknown_fields--;
        h->healed++;
    }
    if (base->n_unknown_fields == 0)
        base->unknown_fields = NULL;
}

/* Visits every message of the tree through the descriptors: repeated, optional and oneof
 * message fields alike. Recursion is fine here: the wire pass bounded the depth, and
 * protobuf-c has already recursed as deep. */
static void heal_message(healer *h, ProtobufCMessage *message)
{
    const ProtobufCMessageDescriptor *desc = message->descriptor;
    if (desc == &onnx__tensor_proto__descriptor)
        heal_tensor(h, (Onnx__TensorProto *)message);
    for (unsigned f = 0; f < desc->n_fields; f++) {
        const ProtobufCFieldDescriptor *field = &desc->fields[f];
        if (field->type != PROTOBUF_C_TYPE_MESSAGE)
            continue;
        char *base = (char *)message;
        if ((field->flags & PROTOBUF_C_FIELD_FLAG_ONEOF)
            && *(const uint32_t *)(base + field->quantifier_offset) != field->id)
            continue; /* another member of the oneof is set; this slot is not ours */
        if (field->label == PROTOBUF_C_LABEL_REPEATED) {
            size_t n = *(const size_t *)(base + field->quantifier_offset);
            ProtobufCMessage **items = *(ProtobufCMessage ***)(base + field->offset);
            for (size_t i = 0; i < n; i++)
                if (items[i] != NULL)
                    heal_message(h, items[i]);
        } else {
            ProtobufCMessage *child = *(ProtobufCMessage **)(base + field->offset);
            if (child != NULL && child != field->default_value)
                heal_message(h, child);
        }
    }
}

/* ==== onnx_fuse_load =================================================================== */

static onnx_fuse_status load_fail(onnx_fuse_error *err, onnx_fuse_status status,
                                  const char *path, const char *message)
{
    err->status = status;
    snprintf(err->path, sizeof err->path, "%s", path);
    snprintf(err->message, sizeof err->message, "%s", message);
    return status;
}

static void wire_free(wire_pass *w)
{
    free(w->frames);
    free(w->counts);
    free(w->out.data);
    free(w->lifts);
    free(w->src.buf);
    w->frames = NULL;
    w->counts = NULL;
    w->out.data = NULL;
    w->lifts = NULL;
    w->src.buf = NULL;
}

/* onnx_fuse_load and onnx_fuse_load_fd: the wire pass reads `data` (is_file 0) or `fd`
 * (is_file 1, `data` only locates the payloads); the tree points into `data`. */
static onnx_fuse_status load_from(const uint8_t *data, size_t len, int is_file, int fd,
                                  const onnx_fuse_load_limits *limits,
                                  onnx_fuse_loaded *out, onnx_fuse_error *err)
{
    onnx_fuse_error scratch;
    if (err == NULL)
        err = &scratch;
    memset(err, 0, sizeof *err);
    if (out == NULL)
        return load_fail(err, ONNX_FUSE_INVALID, "", "no place for the result");
    memset(out, 0, sizeof *out);
    if (data == NULL && len > 0)
        return load_fail(err, ONNX_FUSE_INVALID, "", "no input bytes");
    static const uint8_t empty[1];
    if (data == NULL)
        data = empty;
    onnx_fuse_load_limits lim = { 100, SIZE_MAX, 0, 0 };
    if (limits != NULL)
        lim = *limits;

    wire_pass w;
    memset(&w, 0, sizeof w);
    w.src.len = len;
    w.src.is_file = is_file;
    w.src.fd = fd;
    if (is_file) {
        /* Nothing is read from `data`: the window starts empty at offset 0. */
        w.src.cap = len < WINDOW_MAX ? len : WINDOW_MAX;
        w.src.read_size = READ_AFTER_SKIP;
        if (w.src.cap > 0 && (w.src.buf = malloc(w.src.cap)) == NULL)
            return load_fail(err, ONNX_FUSE_NOMEM, "ModelProto", "out of memory");
        w.src.base = w.src.buf;
    } else {
        w.src.base = data;
        w.src.avail = len;
        w.src.cap = len;
    }
    w.max_depth = lim.max_depth;
    w.lift_min = lim.lift_min;
    w.err = err;
    onnx_fuse_status st = wire_run(&w, len);
    free(w.frames);
    free(w.counts);
    free(w.src.buf);
    w.frames = NULL;
    w.counts = NULL;
    w.src.buf = NULL;
    if (st != ONNX_FUSE_OK) {
        wire_free(&w);
        return st;
    }

    size_t budget = lim.unpack_budget, per_structure = 0;
    if (__builtin_mul_overflow(w.out.len, lim.unpack_budget_per_byte, &per_structure)
        || __builtin_add_overflow(budget, per_structure, &budget))
        budget = SIZE_MAX;
    onnx_fuse_arena *arena = onnx_fuse_arena_create_for_tree(budget);
    if (arena == NULL) {
        wire_free(&w);
        return load_fail(err, ONNX_FUSE_NOMEM, "ModelProto", "out of memory");
    }
    ProtobufCMessage *model = protobuf_c_message_unpack(
        &onnx__model_proto__descriptor, onnx_fuse_arena_allocator(arena), w.out.len,
        w.out.data != NULL ? w.out.data : empty);
    /* protobuf-c copies every string, bytes and unknown field out of the buffer. */
    free(w.out.data);
    w.out.data = NULL;
    if (model == NULL) {
        int over = onnx_fuse_arena_over_budget(arena);
        onnx_fuse_arena_destroy(arena);
        wire_free(&w);
        if (over) {
            char message[sizeof err->message];
            snprintf(message, sizeof message, "unpacking needs more than %zu bytes of memory",
                     budget);
            return load_fail(err, ONNX_FUSE_LIMIT, "ModelProto", message);
        }
        return load_fail(err, ONNX_FUSE_INVALID, "ModelProto",
                         "protobuf-c could not unpack the message");
    }

    /* Only pointer arithmetic on `data`: a file source's mapping is never touched. */
    healer h = { data, w.lifts, w.n_lifts, 0, 0 };
    heal_message(&h, model);
    wire_free(&w);
    if (h.bad_marker || h.healed != h.n_lifts) {
        onnx_fuse_arena_destroy(arena);
        /* protobuf-c merges a singular message field given twice and keeps only the later
         * unknown fields, so an earlier tensor's marker (its raw_data) would be dropped. The
         * wire pass refuses a singular TensorProto given twice; this catches the same through
         * a message around it given twice (a SparseTensorProto attribute, ...). */
        return load_fail(err, ONNX_FUSE_INVALID, "ModelProto",
                         "a TensorProto given twice as a singular field would lose its raw_data");
    }

    out->model = (Onnx__ModelProto *)model;
    out->arena = arena;
    out->message_count = w.message_count;
    out->lifted_count = w.n_lifts;
    out->lifted_bytes = w.lifted_bytes;
    return ONNX_FUSE_OK;
}

onnx_fuse_status onnx_fuse_load(const uint8_t *data, size_t len,
                                const onnx_fuse_load_limits *limits,
                                onnx_fuse_loaded *out, onnx_fuse_error *err)
{
    return load_from(data, len, 0, -1, limits, out, err);
}

onnx_fuse_status onnx_fuse_load_fd(int fd, const uint8_t *mapping, size_t len,
                                   const onnx_fuse_load_limits *limits,
                                   onnx_fuse_loaded *out, onnx_fuse_error *err)
{
    return load_from(mapping, len, 1, fd, limits, out, err);
}

ProtobufCMessage *onnx_fuse_unpack_trusted(const ProtobufCMessageDescriptor *descriptor,
                                           const uint8_t *data, size_t len,
                                           onnx_fuse_arena *arena)
{
    static const uint8_t empty[1];
    if (descriptor == NULL || arena == NULL || (data == NULL && len > 0))
        return NULL;
    return protobuf_c_message_unpack(descriptor, onnx_fuse_arena_allocator(arena), len,
                                     data != NULL ? data : empty);
}

/* ==== saving =========================================================================== */

#define FD_BUFFER_SIZE ((size_t)1 << 20)
/* Appends at least this large skip the buffer: weights go straight from where they are
 * (often a mapped input file) to the kernel. */
#define FD_DIRECT_MIN ((size_t)256 << 10)
/* Linux writes at most 0x7ffff000 bytes per call; stay below that everywhere. */
#define WRITE_CHUNK_MAX ((size_t)1 << 30)

const ProtobufCMessageDescriptor *onnx_fuse_model_descriptor(void)
{
    return &onnx__model_proto__descriptor;
}

size_t onnx_fuse_packed_size(const ProtobufCMessage *message)
{
    return protobuf_c_message_get_packed_size(message);
}

void onnx_fuse_keep_freed_memory(size_t mmap_threshold, size_t trim_threshold)
{
#ifdef __GLIBC__
    mallopt(M_MMAP_THRESHOLD, mmap_threshold > INT_MAX ? INT_MAX : (int)mmap_threshold);
    mallopt(M_TRIM_THRESHOLD, trim_threshold > INT_MAX ? INT_MAX : (int)trim_threshold);
#else
    (void)mmap_threshold;
    (void)trim_threshold;
#endif
}

int onnx_fuse_usable_processors(void)
{
#ifdef __linux__
    cpu_set_t mask;
    if (sched_getaffinity(0, sizeof mask, &mask) == 0) {
        int count = CPU_COUNT(&mask);
        if (count > 0) return count;
    }
#endif
    long online = sysconf(_SC_NPROCESSORS_ONLN);
    return online > 0 ? (online > INT_MAX ? INT_MAX : (int)online) : 1;
}

int onnx_fuse_write_all(int fd, const void *data, size_t len)
{
    const uint8_t *p = data;
    while (len > 0) {
        ssize_t n = write(fd, p, len < WRITE_CHUNK_MAX ? len : WRITE_CHUNK_MAX);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return errno != 0 ? errno : EIO;
        }
        if (n == 0)
            return EIO; /* no progress and no error: do not spin */
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

/* Copies `len` bytes at offset `offset` of `src` to the current position of `dst` in the
 * kernel: copy_file_range (which can share blocks), else sendfile, which also copies between
 * file systems (an input copied into memory, `LoadOptions.copiesInputFiles`; an output on
 * another file system than its input). 0, an errno, or -1 when neither is possible here
 * (caller writes). */
static int copy_range(int dst, int src, off_t offset, size_t len)
{
    int first = 1, sending = 0;
    while (len > 0) {
        ssize_t n = sending ? sendfile(dst, src, &offset, len) : copy_file_range(src, &offset, dst, NULL, len, 0);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            /* Not supported for this pair of files: nothing was copied yet, so send instead,
             * or (caller) write. */
            if (first && !sending && (errno == ENOSYS || errno == EXDEV || errno == EINVAL || errno == EOPNOTSUPP || errno == EBADF)) {
                sending = 1;
                continue;
            }
            if (first && sending && (errno == EINVAL || errno == ENOSYS))
                return -1;
            return errno != 0 ? errno : EIO;
        }
        if (n == 0)
            return EIO; /* the source ended early: it changed under us */
        first = 0;
        len -= (size_t)n;
    }
    return 0;
}

/* Payloads at least this big are copied by the kernel (copy_file_range): one system call
 * is cheap next to the bytes. Smaller ones come through a pread window: a model can have a
 * hundred thousand tiny tensors, and reading them through the mapping would map the page-cache
 * folio around each one (up to 2 MB of neighbouring weights) into the process. */
#define KERNEL_COPY_MIN ((size_t)64 << 10)
#define SOURCE_WINDOW_SIZE ((size_t)128 << 10)

/* A ProtobufCBuffer that writes to a file descriptor. protobuf-c cannot be told to stop
 * packing, so after the first error the remaining appends are ignored. */
typedef struct {
    ProtobufCBuffer base; /* first, so that a ProtobufCBuffer * is an fd_buffer * */
    int fd;
    const onnx_fuse_mapped_source *sources;
    size_t n_sources;
    uint8_t *buf;
    size_t used;
    uint64_t written;
    uint64_t writeback_from; /* bytes before this offset have been handed to start_writeback */
    int error;
    /* The slots between a computed payload's producer and the thread writing it (see
     * fd_append_produced), allocated at the first large payload. */
    uint8_t *ring;
    /* Bytes [window_start, window_start + window_len) of sources[window_source], read with pread. */
    uint8_t *window;
    size_t window_source;
    size_t window_start;
    size_t window_len;
} fd_buffer;

/* Written bytes are handed to the disk in steps of this size while the save goes on. */
#define WRITEBACK_STEP ((size_t)4 << 20)

/* Starts writing the bytes written since the last call to disk, once there are
 * WRITEBACK_STEP of them, without waiting: the disk works while the rest is made and
 * written, and the fsync at the end waits for the tail only. Failing (a pipe, tmpfs, an
 * old kernel) changes nothing. */
static void start_writeback(fd_buffer *b)
{
    if (b->error != 0 || b->written - b->writeback_from < WRITEBACK_STEP)
        return;
    (void)sync_file_range(b->fd, (off_t)b->writeback_from, (off_t)(b->written - b->writeback_from),
                          SYNC_FILE_RANGE_WRITE);
    b->writeback_from = b->written;
}

static void fd_write(fd_buffer *b, const uint8_t *data, size_t len)
{
    int e = onnx_fuse_write_all(b->fd, data, len);
    if (e != 0) {
        b->error = e;
    } else {
        b->written += len;
        start_writeback(b);
    }
}

static void fd_flush(fd_buffer *b)
{
    if (b->error == 0 && b->used > 0)
        fd_write(b, b->buf, b->used);
    b->used = 0;
}

/* Appends bytes that are in memory we may read. */
static void fd_append_memory(fd_buffer *b, const uint8_t *data, size_t len)
{
    if (len >= FD_DIRECT_MIN) {
        fd_flush(b); /* keep the order of the bytes */
        if (b->error == 0)
            fd_write(b, data, len);
        return;
    }
    if (len > FD_BUFFER_SIZE - b->used) {
        fd_flush(b);
        if (b->error != 0)
            return;
    }
    memcpy(b->buf + b->used, data, len);
    b->used += len;
}

/* The index of the source whose mapping holds [data, data + len), or n_sources. */
static size_t find_source(const fd_buffer *b, const uint8_t *data, size_t len)
{
    for (size_t i = 0; i < b->n_sources; i++) {
        const onnx_fuse_mapped_source *s = &b->sources[i];
        if (s->base != NULL && data >= s->base && len <= s->len && (size_t)(data - s->base) <= s->len - len)
            return i;
    }
    return b->n_sources;
}

/* Computed payloads at least this big are written by a second thread while they are made. */
#define PIPELINE_MIN ((size_t)1 << 20)
/* The ring between the producer and the writer thread: small enough to stay in cache, so that
 * neither side waits for memory, and no payload is ever whole in memory. */
#define PIPELINE_SLOT_SIZE ((size_t)256 << 10)
#define PIPELINE_SLOTS 4

/* A computed payload being written while it is made: the producer copies its pieces into the
 * ring's slots in turn, and the writer thread writes each full slot through the output's
 * fd_buffer (which the saving thread leaves alone until it has joined the writer). */
typedef struct {
    pthread_mutex_t lock;
    pthread_cond_t changed;
    uint8_t *slots;                /* PIPELINE_SLOTS slots of PIPELINE_SLOT_SIZE bytes */
    size_t length[PIPELINE_SLOTS]; /* bytes in each slot handed over */
    size_t handed;                 /* slots handed to the writer so far (producer) */
    size_t done;                   /* slots the writer has written so far (writer) */
    size_t used;                   /* bytes in the slot being filled (producer alone) */
    int finished;                  /* the producer is done (successfully or not) */
    int cancelled;                 /* ... and failed: what is left is not written */
    int error;                     /* the output's error, as the writer last saw it */
    fd_buffer *out;                /* written by the writer thread alone while it runs */
} payload_pipeline;

static void *pipeline_writer(void *argument)
{
    payload_pipeline *p = argument;
    for (;;) {
        pthread_mutex_lock(&p->lock);
        while (p->done == p->handed && !p->finished)
            pthread_cond_wait(&p->changed, &p->lock);
        if (p->done == p->handed) { /* finished, and everything handed over is written */
            pthread_mutex_unlock(&p->lock);
            return NULL;
        }
        size_t slot = p->done % PIPELINE_SLOTS;
        size_t length = p->length[slot];
        int cancelled = p->cancelled;
        pthread_mutex_unlock(&p->lock);
        /* After an error, the rest is not written (the save fails), but still taken. */
        if (p->out->error == 0 && !cancelled)
            fd_write(p->out, p->slots + slot * PIPELINE_SLOT_SIZE, length);
        pthread_mutex_lock(&p->lock);
        p->done++;
        p->error = p->out->error;
        pthread_cond_signal(&p->changed);
        pthread_mutex_unlock(&p->lock);
    }
}

/* Gives the slot being filled to the writer. */
static void pipeline_hand_over(payload_pipeline *p)
{
    pthread_mutex_lock(&p->lock);
    p->length[p->handed % PIPELINE_SLOTS] = p->used;
    p->handed++;
    pthread_cond_signal(&p->changed);
    pthread_mutex_unlock(&p->lock);
    p->used = 0;
}

/* The producer's `emit` for a pipelined payload: copies the piece into the ring, waiting for
 * the writer to free a slot when all are full. */
static int pipeline_emit(void *sink, const uint8_t *bytes, size_t len)
{
    payload_pipeline *p = sink;
    while (len > 0) {
        if (p->used == 0) {
            pthread_mutex_lock(&p->lock);
            while (p->handed - p->done >= PIPELINE_SLOTS && p->error == 0)
                pthread_cond_wait(&p->changed, &p->lock);
            int e = p->error;
            pthread_mutex_unlock(&p->lock);
            if (e != 0)
                return e; /* the write failed: stop making the rest */
        }
        size_t take = PIPELINE_SLOT_SIZE - p->used < len ? PIPELINE_SLOT_SIZE - p->used : len;
        memcpy(p->slots + (p->handed % PIPELINE_SLOTS) * PIPELINE_SLOT_SIZE + p->used, bytes, take);
        p->used += take;
        bytes += take;
        len -= take;
        if (p->used == PIPELINE_SLOT_SIZE)
            pipeline_hand_over(p);
    }
    return 0;
}

/* The producer's `emit` for a payload written on the saving thread: into the output's buffer. */
static int buffer_emit(void *sink, const uint8_t *bytes, size_t len)
{
    fd_buffer *b = sink;
    fd_append_memory(b, bytes, len);
    return b->error;
}

/* The producer's `emit`, counting the bytes: a producer that makes more or fewer than asked
 * fails the save instead of shifting everything after its payload. */
typedef struct {
    int (*emit)(void *sink, const uint8_t *bytes, size_t len);
    void *sink;
    size_t left;
} counted_sink;

static int counted_emit(void *sink, const uint8_t *bytes, size_t len)
{
    counted_sink *c = sink;
    if (len > c->left)
        return EIO;
    c->left -= len;
    return len > 0 ? c->emit(c->sink, bytes, len) : 0;
}

/* Appends the `len` computed bytes at `offset` of source `i`, as the producer makes them, a
 * piece at a time. A large payload goes through a ring of small slots to a second thread that
 * writes them (the kernel's copy overlaps the arithmetic); a smaller one straight into the
 * output's buffer. */
static void fd_append_produced(fd_buffer *b, size_t i, size_t offset, size_t len)
{
    const onnx_fuse_mapped_source *s = &b->sources[i];
    counted_sink counted = { buffer_emit, b, len };
    payload_pipeline p;
    memset(&p, 0, sizeof p);
    pthread_t writer;
    int pipelined = 0;
    if (len >= PIPELINE_MIN) {
        fd_flush(b); /* the bytes before this payload go first */
        if (b->error != 0)
            return;
        p.out = b;
        /* One ring for the whole save: allocated at the first large payload, freed at the end. */
        if (b->ring == NULL)
            b->ring = malloc(PIPELINE_SLOTS * PIPELINE_SLOT_SIZE);
        p.slots = b->ring;
        pipelined = p.slots != NULL && pthread_mutex_init(&p.lock, NULL) == 0;
        if (pipelined && pthread_cond_init(&p.changed, NULL) != 0) {
            pthread_mutex_destroy(&p.lock);
            pipelined = 0;
        }
        if (pipelined && pthread_create(&writer, NULL, pipeline_writer, &p) != 0) {
            pthread_cond_destroy(&p.changed);
            pthread_mutex_destroy(&p.lock);
            pipelined = 0;
        }
        if (pipelined) {
            counted.emit = pipeline_emit;
            counted.sink = &p;
        }
    }
    int e = s->produce(s->context, offset, len, counted_emit, &counted);
    if (e == 0 && counted.left != 0)
        e = EIO;
    if (pipelined) {
        if (e == 0 && p.used > 0)
            pipeline_hand_over(&p);
        pthread_mutex_lock(&p.lock);
        p.finished = 1;
        p.cancelled = e != 0;
        pthread_cond_signal(&p.changed);
        pthread_mutex_unlock(&p.lock);
        pthread_join(writer, NULL);
        pthread_cond_destroy(&p.changed);
        pthread_mutex_destroy(&p.lock);
    }
    if (e != 0 && b->error == 0)
        b->error = e;
}

/* Appends `len` bytes at `offset` of source `i` without touching its mapping. */
static void fd_append_from_source(fd_buffer *b, size_t i, size_t offset, size_t len)
{
    const onnx_fuse_mapped_source *s = &b->sources[i];
    if (s->produce != NULL) {
        fd_append_produced(b, i, offset, len);
        return;
    }
    if (len >= KERNEL_COPY_MIN) {
        fd_flush(b);
        if (b->error != 0)
            return;
        int e = copy_range(b->fd, s->fd, (off_t)offset, len);
        if (e == 0) {
            b->written += len;
            start_writeback(b);
            return;
        }
        if (e > 0) {
            b->error = e;
            return;
        }
        /* copy_file_range cannot do this pair of files: go through the window below. */
    }
    while (len > 0 && b->error == 0) {
        if (b->window == NULL || b->window_source != i || offset < b->window_start
            || offset >= b->window_start + b->window_len) {
            if (b->window == NULL && (b->window = malloc(SOURCE_WINDOW_SIZE)) == NULL) {
                b->error = ENOMEM;
                return;
            }
            size_t want = s->len - offset < SOURCE_WINDOW_SIZE ? s->len - offset : SOURCE_WINDOW_SIZE;
            ssize_t n;
            do {
                n = pread(s->fd, b->window, want, (off_t)offset);
            } while (n < 0 && errno == EINTR);
            if (n <= 0) {
                b->error = n < 0 ? errno : EIO; /* the source ended early: it changed under us */
                b->window_len = 0;
                return;
            }
            b->window_source = i;
            b->window_start = offset;
            b->window_len = (size_t)n;
        }
        size_t at = offset - b->window_start;
        size_t take = b->window_len - at < len ? b->window_len - at : len;
        fd_append_memory(b, b->window + at, take);
        offset += take;
        len -= take;
    }
}

static void fd_append(ProtobufCBuffer *base, size_t len, const uint8_t *data)
{
    fd_buffer *b = (fd_buffer *)base;
    if (b->error != 0 || len == 0)
        return;
    size_t i = find_source(b, data, len);
    if (i < b->n_sources)
        fd_append_from_source(b, i, (size_t)(data - b->sources[i].base), len);
    else
        fd_append_memory(b, data, len);
}

static int fd_buffer_open(fd_buffer *b, int fd, const onnx_fuse_mapped_source *sources, size_t n_sources)
{
    memset(b, 0, sizeof *b);
    b->base.append = fd_append;
    b->fd = fd;
    b->sources = sources;
    b->n_sources = n_sources;
    b->buf = malloc(FD_BUFFER_SIZE);
    return b->buf != NULL;
}

/* Flushes, frees, and turns the first error into the status and `err`. */
static onnx_fuse_status fd_buffer_close(fd_buffer *b, uint64_t *written, onnx_fuse_error *err)
{
    fd_flush(b);
    free(b->buf);
    free(b->window);
    free(b->ring);
    if (written != NULL)
        *written = b->written;
    if (b->error != 0) {
        err->status = ONNX_FUSE_IO;
        err->sys_errno = b->error;
        err->offset = b->written;
        snprintf(err->message, sizeof err->message, "write failed after %llu bytes: %s",
                 (unsigned long long)b->written, strerror(b->error));
        return ONNX_FUSE_IO;
    }
    return ONNX_FUSE_OK;
}

onnx_fuse_status onnx_fuse_pack_to_fd(const ProtobufCMessage *message, int fd,
                                      uint64_t *written, onnx_fuse_error *err)
{
    return onnx_fuse_pack_to_fd_from(message, fd, NULL, 0, written, err);
}

int onnx_fuse_copy_file(int dst, int src, uint64_t len)
{
    int e = copy_range(dst, src, 0, (size_t)len);
    if (e >= 0)
        return e;
    char *buffer = malloc(SOURCE_WINDOW_SIZE);
    if (buffer == NULL)
        return ENOMEM;
    off_t offset = 0;
    e = 0;
    while (len > 0 && e == 0) {
        size_t want = len < SOURCE_WINDOW_SIZE ? (size_t)len : SOURCE_WINDOW_SIZE;
        ssize_t n = pread(src, buffer, want, offset);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            e = n < 0 ? errno : EIO; /* the source ended early: it changed under us */
            break;
        }
        e = onnx_fuse_write_all(dst, buffer, (size_t)n);
        offset += n;
        len -= (uint64_t)n;
    }
    free(buffer);
    return e;
}

int onnx_fuse_memory_file(const char *name)
{
    return memfd_create(name, MFD_CLOEXEC);
}

int onnx_fuse_preallocate(int fd, uint64_t size)
{
    if (size == 0)
        return 0;
    return fallocate(fd, FALLOC_FL_KEEP_SIZE, 0, (off_t)size) == 0 ? 0 : errno;
}

onnx_fuse_status onnx_fuse_pack_to_fd_from(const ProtobufCMessage *message, int fd,
                                           const onnx_fuse_mapped_source *sources, size_t n_sources,
                                           uint64_t *written, onnx_fuse_error *err)
{
    onnx_fuse_error scratch;
    if (err == NULL)
        err = &scratch;
    memset(err, 0, sizeof *err);
    if (written != NULL)
        *written = 0;
    fd_buffer b;
    if (!fd_buffer_open(&b, fd, sources, n_sources))
        return load_fail(err, ONNX_FUSE_NOMEM, "", "out of memory");
    protobuf_c_message_pack_to_buffer(message, &b.base);
    return fd_buffer_close(&b, written, err);
}

onnx_fuse_status onnx_fuse_write_segments(int fd, const onnx_fuse_segment *segments, size_t n_segments,
                                          const onnx_fuse_mapped_source *sources, size_t n_sources,
                                          uint64_t *written, onnx_fuse_error *err)
{
    static const uint8_t zeros[4096];
    onnx_fuse_error scratch;
    if (err == NULL)
        err = &scratch;
    memset(err, 0, sizeof *err);
    if (written != NULL)
        *written = 0;
    fd_buffer b;
    if (!fd_buffer_open(&b, fd, sources, n_sources))
        return load_fail(err, ONNX_FUSE_NOMEM, "", "out of memory");
    uint64_t position = 0;
    for (size_t i = 0; i < n_segments && b.error == 0; i++) {
        if (segments[i].offset < position) {
            b.error = EINVAL; /* segments must not overlap */
            break;
        }
        while (position < segments[i].offset) {
            uint64_t gap = segments[i].offset - position;
            size_t step = gap < sizeof zeros ? (size_t)gap : sizeof zeros;
            fd_append(&b.base, step, zeros);
            position += step;
        }
        fd_append(&b.base, segments[i].len, segments[i].data);
        position += segments[i].len;
    }
    return fd_buffer_close(&b, written, err);
}

/* ==== temporary files on interruption ================================================== */

#define TEMPORARY_SLOTS 64
#define TEMPORARY_PATH_MAX 4096

/* Each slot's state moves FREE -> WRITING -> READY -> FREE for a save, or READY -> DYING for a
 * signal handler, which never gives the slot back (the process dies right after). Every move is
 * a compare-and-swap, so there is no lock anywhere: a save never waits, and the handler (which
 * may run on any thread, while other threads track and untrack) reads a path only after taking
 * its slot from READY, when no save can change it any more. The paths are plain memory, written
 * only by the one thread that holds the slot in WRITING. */
enum { SLOT_FREE, SLOT_WRITING, SLOT_READY, SLOT_DYING };
static char temporary_paths[TEMPORARY_SLOTS][TEMPORARY_PATH_MAX];
static _Atomic int temporary_state[TEMPORARY_SLOTS];
/* A handler may only touch lock-free atomics. */
_Static_assert(ATOMIC_INT_LOCK_FREE == 2, "the signal handler needs lock-free atomic ints");
static int temporary_handlers_installed;
static pthread_mutex_t temporary_handlers_lock = PTHREAD_MUTEX_INITIALIZER;

/* Moves `slot` from `from` to `to`; whether it was in `from`. */
static int move_slot(int slot, int from, int to)
{
    return atomic_compare_exchange_strong(&temporary_state[slot], &from, to);
}

static void remove_temporaries_and_die(int signal_number)
{
    for (int i = 0; i < TEMPORARY_SLOTS; i++) {
        if (move_slot(i, SLOT_READY, SLOT_DYING))
            unlink(temporary_paths[i]); /* async-signal-safe */
    }
    /* Die of the same signal, with its default action, as the caller expects. */
    struct sigaction action;
    memset(&action, 0, sizeof action);
    action.sa_handler = SIG_DFL;
    sigemptyset(&action.sa_mask);
    sigaction(signal_number, &action, NULL);
    raise(signal_number);
}

void onnx_fuse_remove_temporaries_on_signals(void)
{
    /* A lock, not a flag: a second caller returns only once the handlers are in place. */
    pthread_mutex_lock(&temporary_handlers_lock);
    if (!temporary_handlers_installed) {
        static const int signals[] = { SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGBUS };
        for (size_t i = 0; i < sizeof signals / sizeof signals[0]; i++) {
            struct sigaction old;
            /* Leave alone a signal someone chose to ignore (nohup, for one). */
            if (sigaction(signals[i], NULL, &old) == 0 && old.sa_handler == SIG_IGN)
                continue;
            struct sigaction action;
            memset(&action, 0, sizeof action);
            action.sa_handler = remove_temporaries_and_die;
            sigemptyset(&action.sa_mask);
            sigaction(signals[i], &action, NULL);
        }
        temporary_handlers_installed = 1;
    }
    pthread_mutex_unlock(&temporary_handlers_lock);
}

int onnx_fuse_track_temporary(const char *path)
{
    if (path == NULL)
        return -1;
    size_t length = strlen(path);
    if (length >= TEMPORARY_PATH_MAX)
        return -1;
    for (int i = 0; i < TEMPORARY_SLOTS; i++) {
        if (atomic_load_explicit(&temporary_state[i], memory_order_relaxed) != SLOT_FREE || !move_slot(i, SLOT_FREE, SLOT_WRITING))
            continue;
        memcpy(temporary_paths[i], path, length + 1);
        /* Sequentially consistent (a release would do): the path is complete before READY. */
        atomic_store(&temporary_state[i], SLOT_READY);
        return i;
    }
    return -1;
}

void onnx_fuse_untrack_temporary(int slot)
{
    /* A slot a signal handler took (DYING) stays taken: its process is about to die. */
    if (slot >= 0 && slot < TEMPORARY_SLOTS)
        move_slot(slot, SLOT_READY, SLOT_FREE);
}

/* LeakSanitizer's interface, present only when its runtime is linked in (weak: null otherwise). */
extern void __lsan_disable(void) __attribute__((weak));
extern void __lsan_enable(void) __attribute__((weak));

void onnx_fuse_leak_detection_off(void)
{
    if (__lsan_disable) __lsan_disable();
}

void onnx_fuse_leak_detection_on(void)
{
    if (__lsan_enable) __lsan_enable();
}
