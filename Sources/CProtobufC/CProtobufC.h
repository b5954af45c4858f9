/* The system libprotobuf-c (Debian: libprotobuf-c-dev), as one Swift module. */
#include <protobuf-c/protobuf-c.h>
