/* Umbrella header of the CONNX module: the protoc-c output for proto/onnx.proto and the
 * onnx_fuse_ shim over it. Only ONNXFuseProto imports this module. */
#ifndef CONNX_H
#define CONNX_H
#include "onnx.pb-c.h"
#include "onnx_fuse_shim.h"
#endif
