#!/usr/bin/env python3
"""Writes Sources/ONNXFuseOps/Generated/OperatorSchemaTable.swift from the onnx package's schemas.

    .venv/bin/python scripts/gen-schemas.py [OUTPUT]

Every schema of the domains "" (ai.onnx) and "ai.onnx.ml" in
onnx.defs.get_all_schemas_with_history(), every version, deprecated ones included, goes into
one raw string literal in a line-based text format that Sources/ONNXFuseOps/OperatorSchema.swift
parses at first use (a Swift array literal of structs this size takes minutes to type-check).
The output depends only on the onnx version: schemas are sorted by (domain, name, since_version),
attributes by name; inputs, outputs and type constraints keep their declared order.
Use scripts/gen-schemas (or scripts/gen-schemas --check) rather than running this directly.
"""
import os
import struct
import sys

import onnx
from onnx import defs

DOMAINS = ("", "ai.onnx.ml")
DEFAULT_OUTPUT = os.path.join(
    os.path.dirname(os.path.abspath(__file__)), "..",
    "Sources", "ONNXFuseOps", "Generated", "OperatorSchemaTable.swift")

SEPARATOR = "|"
OPTION_NAMES = {
    defs.OpSchema.FormalParameterOption.Single: "single",
    defs.OpSchema.FormalParameterOption.Optional: "optional",
    defs.OpSchema.FormalParameterOption.Variadic: "variadic",
}
# AttributeProto.AttributeType numbers whose defaults the table encodes.
FLOAT, INT, STRING, FLOATS, INTS, STRINGS = 1, 2, 3, 6, 7, 8
ENCODED_DEFAULT_TYPES = {FLOAT, INT, STRING, FLOATS, INTS, STRINGS}

FORMAT_DESCRIPTION = """\
// Format: one record a line, fields separated by "|". Each schema starts with an `op` line; the
// lines after it, up to the next `op`, describe it:
//   op|NAME|DOMAIN|SINCE_VERSION|FLAGS|MIN_INPUTS|MAX_INPUTS|MIN_OUTPUTS|MAX_OUTPUTS
//       FLAGS: "-", or letters: d = deprecated, f = has a function body,
//       c = has a context-dependent function body. 2147483647 means unbounded.
//   in|NAME|TYPE|OPTION|HOMOGENEOUS|MIN_ARITY      an input, in declared order
//   out|NAME|TYPE|OPTION|HOMOGENEOUS|MIN_ARITY     an output, in declared order
//       TYPE: a type string ("tensor(int64)") or a type-constraint name ("T");
//       OPTION: single, optional or variadic; HOMOGENEOUS: 1 or 0.
//   attr|NAME|TYPE_NUMBER|REQUIRED                 an attribute without a default value
//   attr|NAME|TYPE_NUMBER|REQUIRED|=|VALUE...      an attribute with a default value, one field
//       per value (none for an empty list). TYPE_NUMBER is the AttributeProto.AttributeType
//       number; floats are the shortest decimal that reads back as the same Float.
//   tc|NAME|ALLOWED_TYPE...                        a type constraint, in declared order
// Defaults are encoded for float, int, string and lists of those; defaults of other types
// (tensors, graphs, ...) are left out and read as "no default" (onnx {version} has {omitted}).
"""


def fail(message):
    sys.stderr.write("gen-schemas.py: %s\n" % message)
    sys.exit(1)


def field(text):
    """A field of the table: text that cannot break the record or the Swift literal."""
    text = str(text)
    if SEPARATOR in text or "\n" in text or "\r" in text or '"""#' in text:
        fail("cannot encode %r in the table" % text)
    return text


def record(*fields):
    return SEPARATOR.join(field(f) for f in fields)


def shortest_float32(value):
    """The shortest decimal string that rounds back to the same float32 bits."""
    bits = struct.pack("<f", value)
    for precision in range(1, 10):
        text = "%.*g" % (precision, value)
        try:
            if struct.pack("<f", float(text)) == bits:
                return text
        except OverflowError:  # rounds beyond the largest float32
            pass
    return "%.9g" % value


def default_fields(attribute):
    """The fields after REQUIRED: [] for no (encodable) default, else ["=", values...]."""
    proto = attribute.default_value
    if proto.type == 0:
        return []
    if proto.type != int(attribute.type):
        fail("attribute %s: default of type %d, declared %d" % (attribute.name, proto.type, int(attribute.type)))
    if proto.type == FLOAT:
        return ["=", shortest_float32(proto.f)]
    if proto.type == INT:
        return ["=", str(proto.i)]
    if proto.type == STRING:
        return ["=", proto.s.decode("utf-8")]
    if proto.type == FLOATS:
        return ["="] + [shortest_float32(v) for v in proto.floats]
    if proto.type == INTS:
        return ["="] + [str(v) for v in proto.ints]
    if proto.type == STRINGS:
        return ["="] + [s.decode("utf-8") for s in proto.strings]
    return []


def parameter_record(kind, parameter):
    return record(kind, parameter.name, parameter.type_str, OPTION_NAMES[parameter.option],
                  int(parameter.is_homogeneous), parameter.min_arity)


def schema_records(schema):
    flags = ("d" if schema.deprecated else "") \
        + ("f" if schema.has_function else "") \
        + ("c" if schema.has_context_dependent_function else "")
    yield record("op", schema.name, schema.domain, schema.since_version, flags or "-",
                 schema.min_input, schema.max_input, schema.min_output, schema.max_output)
    for parameter in schema.inputs:
        yield parameter_record("in", parameter)
    for parameter in schema.outputs:
        yield parameter_record("out", parameter)
    for name in sorted(schema.attributes):
        attribute = schema.attributes[name]
        yield record("attr", name, int(attribute.type), int(attribute.required), *default_fields(attribute))
    for constraint in schema.type_constraints:
        yield record("tc", constraint.type_param_str, *constraint.allowed_type_strs)


def main(argv):
    if len(argv) > 2 or (len(argv) == 2 and argv[1].startswith("-")):
        fail("usage: gen-schemas.py [OUTPUT]")
    output = argv[1] if len(argv) == 2 else DEFAULT_OUTPUT

    schemas = sorted(
        (s for s in defs.get_all_schemas_with_history() if s.domain in DOMAINS),
        key=lambda s: (s.domain, s.name, s.since_version))
    keys = [(s.domain, s.name, s.since_version) for s in schemas]
    if len(set(keys)) != len(keys):
        fail("two schemas share a (domain, name, since_version)")

    omitted = sum(1 for s in schemas for a in s.attributes.values()
                  if a.default_value.type != 0 and a.default_value.type not in ENCODED_DEFAULT_TYPES)
    omitted_text = "none" if omitted == 0 else "%d" % omitted
    lines = [line for s in schemas for line in schema_records(s)]
    counts = {d: sum(1 for s in schemas if s.domain == d) for d in DOMAINS}

    text = (
        "// Generated by scripts/gen-schemas from onnx %s (onnx.defs.get_all_schemas_with_history()).\n"
        "// Do not edit: run scripts/gen-schemas. scripts/gen-schemas --check tells whether it is current.\n"
        "//\n"
        "// %d schemas: %d of the domain \"\" (ai.onnx), %d of \"ai.onnx.ml\", every version.\n"
        "//\n" % (onnx.__version__, len(schemas), counts[""], counts["ai.onnx.ml"])
        + FORMAT_DESCRIPTION.format(version=onnx.__version__, omitted=omitted_text)
        + "\n"
        "/// The table that `OperatorSchemas` parses at first use (see the comment above for its format).\n"
        "enum GeneratedOperatorSchemaTable {\n"
        "    /// The version of the onnx package the table comes from.\n"
        "    static let onnxVersion = \"%s\"\n"
        "    /// The number of schemas in `text`.\n"
        "    static let schemaCount = %d\n"
        "    /// The records, one a line.\n"
        "    static let text = #\"\"\"\n"
        "%s\n"
        "\"\"\"#\n"
        "}\n" % (onnx.__version__, len(schemas), "\n".join(lines)))

    os.makedirs(os.path.dirname(os.path.abspath(output)), exist_ok=True)
    with open(output, "w", encoding="utf-8", newline="\n") as f:
        f.write(text)


if __name__ == "__main__":
    main(sys.argv)
