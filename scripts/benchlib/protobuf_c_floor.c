/* The floor of a load + save through protobuf-c (docs/design/compact-core.md): read the file,
 * unpack the whole ModelProto, pack it back, write it; no validation, no IR, no fsync. Prints
 * the time of each step. Build and run from the repository's root:
 *
 *   cc -O2 -ISources/CONNX/include $(pkg-config --cflags libprotobuf-c) -o /tmp/protobuf_c_floor \
 *       scripts/benchlib/protobuf_c_floor.c Sources/CONNX/onnx.pb-c.c $(pkg-config --libs libprotobuf-c)
 *   /tmp/protobuf_c_floor MODEL.onnx OUT.onnx
 */
#define _POSIX_C_SOURCE 200809L

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "onnx.pb-c.h"

static double seconds(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

int main(int argc, char **argv)
{
    if (argc != 3) {
        fprintf(stderr, "usage: %s MODEL.onnx OUT.onnx\n", argv[0]);
        return 2;
    }
    double start = seconds();
    int fd = open(argv[1], O_RDONLY);
    struct stat st;
    if (fd < 0 || fstat(fd, &st) != 0) {
        perror(argv[1]);
        return 1;
    }
    size_t size = (size_t)st.st_size, got = 0;
    uint8_t *input = malloc(size > 0 ? size : 1);
    while (got < size) {
        ssize_t n = read(fd, input + got, size - got);
        if (n <= 0) {
            perror(argv[1]);
            return 1;
        }
        got += (size_t)n;
    }
    close(fd);
    double read_done = seconds();
    Onnx__ModelProto *model = onnx__model_proto__unpack(NULL, size, input);
    if (model == NULL) {
        fprintf(stderr, "%s: protobuf-c could not unpack it\n", argv[1]);
        return 1;
    }
    double unpacked = seconds();
    size_t packed_size = onnx__model_proto__get_packed_size(model);
    uint8_t *output = malloc(packed_size > 0 ? packed_size : 1);
    onnx__model_proto__pack(model, output);
    double packed = seconds();
    int out = open(argv[2], O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (out < 0 || write(out, output, packed_size) != (ssize_t)packed_size || close(out) != 0) {
        perror(argv[2]);
        return 1;
    }
    double written = seconds();
    printf("read %.1f ms, unpack %.1f ms, size and pack %.1f ms, write %.1f ms; %.1f ms in all\n",
           (read_done - start) * 1e3, (unpacked - read_done) * 1e3, (packed - unpacked) * 1e3,
           (written - packed) * 1e3, (written - start) * 1e3);
    return 0;
}
