/*
 * onnx_fuse_shim.h: the small C layer between libprotobuf-c and Swift.
 *
 * Swift cannot do three things cleanly here, so this shim does them:
 *   1. validate the wire format of an untrusted ModelProto before protobuf-c sees it
 *      (protobuf-c recurses without a depth limit, accepts some invalid tags, and cuts
 *      strings at NUL bytes), and lift TensorProto.raw_data payloads (those of a page or
 *      more, by the caller's choice) out of the bytes handed to protobuf_c_message_unpack, so
 *      that weights are never copied;
 *   2. give protobuf-c an arena allocator with a byte budget;
 *   3. pack a message tree straight into a file descriptor.
 *
 * Ownership: every pointer in an unpacked tree belongs to its arena and dies with
 * onnx_fuse_arena_destroy; raw_data pointers of lifted payloads point into the caller's
 * input bytes (or mapping, for onnx_fuse_load_fd), which must outlive the tree. Nothing
 * here frees the caller's memory or closes the caller's file descriptors.
 *
 * From Swift: size_t is Int, so SIZE_MAX is Int(bitPattern: UInt.max). The generated
 * descriptors (onnx__model_proto__descriptor, ...) are `let` constants in Swift, whose
 * address cannot be taken with `&`; `withUnsafePointer(to:)` may hand out a temporary copy
 * that dies with the closure while unpacked messages keep pointing at it. Take the real
 * address from an initialized message instead (onnx__model_proto__init(&m), then
 * m.base.descriptor), or use the generated onnx__model_proto__unpack/pack functions.
 */
#ifndef ONNX_FUSE_SHIM_H
#define ONNX_FUSE_SHIM_H

#include <stddef.h>
#include <stdint.h>
#include <protobuf-c/protobuf-c.h>
#include "onnx.pb-c.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---- arena ------------------------------------------------------------------------- */

/* A bump allocator with a budget. Freeing a single block is a no-op; destroy frees all.
 * Blocks start at 64 KiB and double up to 8 MiB; a request larger than a quarter of the
 * next block gets a block of its own. Not thread-safe. */
typedef struct onnx_fuse_arena onnx_fuse_arena;

/* A new arena that refuses to hand out more than `budget` bytes in all (SIZE_MAX: no
 * budget). NULL when out of memory. */
onnx_fuse_arena *onnx_fuse_arena_create(size_t budget);

/* The same for a tree that lives as long as the model decoded from it: blocks of 2 MiB or
 * more are mappings of their own in whole huge pages, asked for with MADV_HUGEPAGE (fewer
 * page faults, fewer TLB misses; small pages where the kernel gives no huge ones). */
onnx_fuse_arena *onnx_fuse_arena_create_for_tree(size_t budget);

/* Frees every block of the arena and the arena itself. NULL is allowed. */
void onnx_fuse_arena_destroy(onnx_fuse_arena *arena);

/* `size` zeroed bytes aligned to 16, or NULL when the budget or the memory is exhausted
 * (then onnx_fuse_arena_over_budget reports which). A size of 0 is served as 1 byte, so
 * the result is never NULL for lack of size. */
void *onnx_fuse_arena_alloc(onnx_fuse_arena *arena, size_t size);

/* 1 when an allocation was refused because the budget would have been exceeded. */
int onnx_fuse_arena_over_budget(const onnx_fuse_arena *arena);

/* Bytes handed out so far, each allocation rounded up to 16 (what the budget counts). */
size_t onnx_fuse_arena_used(const onnx_fuse_arena *arena);

/* A protobuf-c allocator view of the arena, valid as long as the arena. */
ProtobufCAllocator *onnx_fuse_arena_allocator(onnx_fuse_arena *arena);

/* ---- errors ------------------------------------------------------------------------ */

typedef enum {
    ONNX_FUSE_OK = 0,
    ONNX_FUSE_INVALID = 1,   /* the bytes are not a valid ModelProto */
    ONNX_FUSE_LIMIT = 2,     /* a limit was exceeded: nesting depth, allocation budget, size */
    ONNX_FUSE_NOMEM = 3,     /* malloc failed */
    ONNX_FUSE_IO = 4         /* a read or write failed; `sys_errno` says why */
} onnx_fuse_status;

typedef struct {
    onnx_fuse_status status;
    int sys_errno;           /* for ONNX_FUSE_IO (EIO when an input file ended early) */
    uint64_t offset;         /* byte offset in the input where the problem was found */
    /* Where: a field path such as "ModelProto.graph.node[3].attribute[0].name". Field names
     * come from the descriptors; [i] counts the occurrences of a repeated field in its
     * message (a packed run gets no index); an unknown field shows as its number, "#1234".
     * A path too long for the array keeps its innermost part and starts with "...". Errors
     * found after the wire pass (memory budget, protobuf-c) name only "ModelProto". */
    char path[512];
    /* What is wrong, one line, no trailing period. */
    char message[256];
} onnx_fuse_error;

/* ---- loading ----------------------------------------------------------------------- */

/* What the loader lifts by default (`lift_min`): TensorProto.raw_data payloads of at least
 * a page are pointed at in place, smaller ones copied with the structure. A small constant
 * read through a mapping maps the page-cache folio around it (up to 2 MiB of a freshly
 * written file): the thousands of small constants that shape inference and rules read would
 * bring most of a large file into the process, where copying them costs their own size. */
#define ONNX_FUSE_LIFT_MIN 4096

/* NULL limits mean { 100, SIZE_MAX, 0, 0 }. max_depth also bounds protobuf-c's own recursion
 * (it unpacks sub-messages recursively), so keep it modest; 0 rejects every input. */
typedef struct {
    size_t max_depth;        /* deepest message nesting accepted; the ModelProto is depth 1 (100) */
    size_t unpack_budget;    /* bytes protobuf-c may allocate for the unpacked tree, plus: */
    size_t unpack_budget_per_byte; /* this many per byte of structure (the input without the
                                    * lifted raw_data payloads): lifted payloads do not raise it */
    size_t lift_min;         /* raw_data payloads of at least this many bytes are lifted, smaller
                              * ones copied (the Swift loader passes ONNX_FUSE_LIFT_MIN); 0 or 1
                              * lifts every non-empty one */
} onnx_fuse_load_limits;

typedef struct {
    Onnx__ModelProto *model; /* allocated in `arena` */
    onnx_fuse_arena *arena;  /* owns the tree; the caller destroys it */
    size_t message_count;    /* messages seen by the wire pass, the root included */
    size_t lifted_count;     /* raw_data payloads lifted out (not copied) */
    uint64_t lifted_bytes;   /* their total size */
} onnx_fuse_loaded;

/*
 * Validates `data` (a serialized ModelProto of `len` bytes) and unpacks it.
 *
 * The wire pass walks the bytes once without recursion and rejects: nesting deeper than
 * limits->max_depth, field number 0 or above 2^29-1, wire types 3, 4, 6 and 7, a wire type
 * that does not fit a known field, varints longer than 10 bytes, lengths past the end of
 * the enclosing message, a NUL byte or invalid UTF-8 in a string field, and a TensorProto
 * with raw_data more than once. Each non-empty TensorProto.raw_data of at least
 * limits->lift_min bytes is lifted out (smaller ones are unpacked as protobuf-c does, a copy): the
 * bytes passed to protobuf_c_message_unpack carry a marker instead, and after unpack the
 * tensor's raw_data points at the payload inside `data` again (no copy).
 *
 * Details of the wire pass:
 *   - the marker is an unknown varint field numbered 536870911 (2^29-1) holding an index
 *     into a table of lifted payloads; a TensorProto that itself carries field 536870911 is
 *     rejected (elsewhere that number is an ordinary unknown field and is kept);
 *   - unknown fields are checked as wire data only (key, varint, length) and never entered;
 *   - keys and lengths may be non-minimal varints (up to 10 bytes) as protobuf allows: the
 *     copy for protobuf-c re-encodes them, since protobuf-c reads at most 5 bytes;
 *   - a packed repeated scalar must hold whole values (a multiple of 4 or 8 bytes, complete
 *     varints); repeated scalars are accepted packed and unpacked whatever the .proto says;
 *   - a string, bytes or packed field (raw_data excepted) or a message (without its lifted
 *     raw_data) longer than 2^31-1 bytes is ONNX_FUSE_LIMIT: protobuf-c cannot read it.
 * After unpacking, ONNX_FUSE_LIMIT "unpacking needs more than N bytes of memory" when the
 * budget ran out, ONNX_FUSE_INVALID "protobuf-c could not unpack the message" otherwise.
 * One more rejection comes from protobuf-c's merge semantics: a singular TensorProto field
 * (AttributeProto.t, SparseTensorProto.values, ...) given twice is merged by protobuf-c,
 * which keeps only the later occurrence's unknown fields; if the earlier one carried
 * non-empty raw_data, a lifted payload would be lost silently (and a copied one kept where
 * other readers take a later empty raw_data), so the load fails with ONNX_FUSE_INVALID
 * instead, whatever the payload's size: in the wire pass at the second occurrence, or after
 * unpacking ("ModelProto") when a message around the tensor was given twice.
 *
 * Empty input (len 0, data may be NULL) is a valid, empty ModelProto. `err` may be NULL.
 * Returns ONNX_FUSE_OK and fills `out`, or fills `err` (status, offset, path, message),
 * zeroes `out` and leaves nothing allocated.
 */
onnx_fuse_status onnx_fuse_load(const uint8_t *data, size_t len,
                                const onnx_fuse_load_limits *limits,
                                onnx_fuse_loaded *out, onnx_fuse_error *err);

/*
 * onnx_fuse_load(mapping, len, ...) for a model file open at `fd`, without touching the
 * mapping: the wire pass reads the file with pread, so no page of the mapping (which the
 * kernel may map in whole folios of up to 2 MiB around a touched byte) enters the process.
 * Everything else is as onnx_fuse_load: the same checks, the same errors (status, offset,
 * path, message), the same tree, and each lifted raw_data points at `mapping + offset`,
 * the payload's offset in the file.
 *
 * `mapping` must be a read-only mapping of bytes [0, len) of the file at `fd`, kept alive
 * (and the file unchanged) by the caller as long as the tree; `mapping` is only used to
 * compute raw_data pointers, never read here. The caller keeps `fd` and `mapping`; nothing
 * here closes or unmaps them, and `fd` is not needed after the call (pread does not move
 * its offset). Empty input (len 0, mapping may be NULL) reads nothing.
 *
 * The file is read forward, each byte at most once, through a window of at most 256 KiB;
 * a string, bytes or packed field of 64 KiB or more that the window does not hold is read
 * straight into the copy handed to protobuf-c. Lifted raw_data payloads are stepped over,
 * not read: the window only reads ahead of the bytes the pass needs (512 bytes after each
 * payload stepped over, doubling while the structure goes on). Of a payload, at most that
 * read-ahead is read and none is needed: a file cut where its trailing payload starts
 * still loads.
 *
 * More errors than onnx_fuse_load: ONNX_FUSE_IO with `sys_errno` when a read fails (a bad
 * `fd`: EBADF), and ONNX_FUSE_IO with EIO when the file ends before `len` bytes (it
 * shrank); `offset` is the first byte that could not be read, `path` where in the model
 * the pass was. (A damaged model in a file that also fails to read may report either.)
 */
onnx_fuse_status onnx_fuse_load_fd(int fd, const uint8_t *mapping, size_t len,
                                   const onnx_fuse_load_limits *limits,
                                   onnx_fuse_loaded *out, onnx_fuse_error *err);

/* Unpacks `len` bytes of a message of type `descriptor` (already trusted, such as bytes this
 * library packed) into `arena`. NULL on failure. */
ProtobufCMessage *onnx_fuse_unpack_trusted(const ProtobufCMessageDescriptor *descriptor,
                                           const uint8_t *data, size_t len,
                                           onnx_fuse_arena *arena);

/* The ModelProto descriptor by address (Swift would copy the global when taking `&`). */
const ProtobufCMessageDescriptor *onnx_fuse_model_descriptor(void);

/* ---- saving ------------------------------------------------------------------------ */

/* The size protobuf_c_message_pack would produce. */
size_t onnx_fuse_packed_size(const ProtobufCMessage *message);

/*
 * Packs `message` into the file descriptor `fd` through a 1 MiB buffer; appends of 256 KiB
 * or more (payloads) are written straight from where they are (for example a mapped input
 * file) after flushing the buffer. Retries short writes and EINTR. Returns ONNX_FUSE_OK and
 * the bytes written in `*written`, or ONNX_FUSE_IO with err->sys_errno (the first error;
 * later appends are dropped) and the bytes written before it in `*written` and err->offset.
 * ONNX_FUSE_NOMEM if the buffer cannot be allocated. `written` and `err` may be NULL.
 * Does not fsync or close `fd`.
 */
onnx_fuse_status onnx_fuse_pack_to_fd(const ProtobufCMessage *message, int fd,
                                      uint64_t *written, onnx_fuse_error *err);

/* A read-only mapping of the file open at `fd`: payloads inside [base, base + len) can be
 * copied from the file by the kernel (copy_file_range) instead of through user memory, so
 * their pages never enter the process. */
typedef struct {
    const uint8_t *base;
    size_t len;
    int fd;
    /* Set for a source of computed bytes (fd is then -1): [base, base + len) is reserved
     * address space that is never read, and a payload inside it is made by calling
     * produce(context, offset, n, emit, sink), one payload at a time, which makes the n bytes
     * at `offset` in order and passes them to emit(sink, bytes, len) a piece at a time, pieces
     * of any size (0, or an errno that fails the write; a producer stops at emit's first
     * errno and returns it). The saver writes each piece before the next is made, or hands it
     * to a second thread that writes while the rest is made. */
    int (*produce)(void *context, size_t offset, size_t n,
                   int (*emit)(void *sink, const uint8_t *bytes, size_t len), void *sink);
    void *context;
} onnx_fuse_mapped_source;

/* A new anonymous in-memory file (memfd_create, close-on-exec), for a model read from or
 * written to bytes; -1 with errno set when it cannot be made. */
int onnx_fuse_memory_file(const char *name);

/* Copies the first `len` bytes of the regular file open at `src` (from offset 0, whatever its
 * position) to the current position of `dst`, in the kernel where it can (copy_file_range,
 * or sendfile between file systems), else through a buffer. 0; EIO when `src` ends before `len` bytes (it changed); or the errno. */
int onnx_fuse_copy_file(int dst, int src, uint64_t len);

/* Reserves `size` bytes of disk for the file open at `fd` from offset 0 on, without changing its
 * size (fallocate with FALLOC_FL_KEEP_SIZE). 0, or the errno. */
int onnx_fuse_preallocate(int fd, uint64_t size);

/* onnx_fuse_pack_to_fd, taking the bytes that lie inside one of `sources` from the file
 * rather than through its mapping: payloads of 64 KiB or more by copy_file_range (between
 * file systems by sendfile; where the kernel cannot, through a read window), smaller ones
 * through a pread window. The mapping's pages are never touched, so weights never enter the process. */
onnx_fuse_status onnx_fuse_pack_to_fd_from(const ProtobufCMessage *message, int fd,
                                           const onnx_fuse_mapped_source *sources, size_t n_sources,
                                           uint64_t *written, onnx_fuse_error *err);

/* Bytes for onnx_fuse_write_segments: `len` bytes at `data`, to go at `offset` of the file. */
typedef struct {
    const uint8_t *data;
    size_t len;
    uint64_t offset;
} onnx_fuse_segment;

/* Writes `segments` (in increasing, non-overlapping offset order) to `fd` from its current
 * position, zero-filling the gaps between them; bytes inside one of `sources` are copied from
 * the file, never through its mapping, as in onnx_fuse_pack_to_fd_from. Returns ONNX_FUSE_OK
 * and the bytes written, or ONNX_FUSE_IO (EINVAL for overlapping segments). */
onnx_fuse_status onnx_fuse_write_segments(int fd, const onnx_fuse_segment *segments, size_t n_segments,
                                          const onnx_fuse_mapped_source *sources, size_t n_sources,
                                          uint64_t *written, onnx_fuse_error *err);

/* Writes `len` bytes at `data` to `fd`, retrying short writes and EINTR. 0 or an errno
 * (EIO if write makes no progress without an error). */
int onnx_fuse_write_all(int fd, const void *data, size_t len);

/* ---- the process's allocator --------------------------------------------------------- */

/* Asks the C allocator (glibc's; elsewhere nothing happens) to serve blocks up to
 * `mmap_threshold` bytes from its heap rather than fresh mappings, and to keep up to
 * `trim_threshold` freed bytes for reuse. Process-wide: for a command, not a library. */
void onnx_fuse_keep_freed_memory(size_t mmap_threshold, size_t trim_threshold);

/* The processors this process may run on: its affinity mask (which a container or `taskset`
 * narrows) where the system has one, else those online; at least 1. */
int onnx_fuse_usable_processors(void);

/* ---- temporary files on interruption ----------------------------------------------- */

/* Installs handlers of SIGINT, SIGTERM, SIGHUP, SIGQUIT and SIGBUS (a mapped input file
 * shortened under the process) that remove the tracked temporary files and then die of the
 * signal; a signal whose handler is SIG_IGN stays ignored. Process-wide and replacing the
 * host's handlers, so only a program that asks for it gets it (the command does); idempotent. */
void onnx_fuse_remove_temporaries_on_signals(void);

/* Remembers `path` (a temporary output file) so that the signals above, once
 * onnx_fuse_remove_temporaries_on_signals has installed their handlers, remove it before the
 * process dies. At most 64 paths at once; returns a slot, or -1 when none is free (the file is
 * then simply not cleaned up on a signal). The path is copied. Lock-free, and safe from any
 * number of threads at once, also while a signal handler runs. */
int onnx_fuse_track_temporary(const char *path);

/* Forgets the path in `slot` (after a rename or unlink). -1 is allowed. */
void onnx_fuse_untrack_temporary(int slot);

/* Leak detection off, then on again, for the allocations of the calling thread in between, when
 * the process runs under LeakSanitizer (AddressSanitizer's leak check); nothing otherwise.
 * Swift keeps an indirect enum's case in spare bits of its pointers, which LeakSanitizer does
 * not follow: the expression trees of rules that a global holds read as leaked at exit. Calls
 * nest. */
void onnx_fuse_leak_detection_off(void);
void onnx_fuse_leak_detection_on(void);

#ifdef __cplusplus
}
#endif

#endif /* ONNX_FUSE_SHIM_H */
