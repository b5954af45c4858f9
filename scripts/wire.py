"""Raw protobuf wire encoding, for the fixture generators: what the python protobuf API
refuses to build (unknown fields, 10,000-level nesting, NUL bytes in strings)."""


def varint(value: int) -> bytes:
    """A base-128 varint; a negative value as its 64-bit two's complement (ten bytes)."""
    value &= (1 << 64) - 1
    out = bytearray()
    while True:
        b = value & 0x7F
        value >>= 7
        if value:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def field_varint(field: int, value: int) -> bytes:
    """Field `field` as a varint (wire type 0)."""
    return varint(field << 3 | 0) + varint(value)


def field_bytes(field: int, payload: bytes) -> bytes:
    """Field `field` as a length-delimited value (wire type 2)."""
    return varint(field << 3 | 2) + varint(len(payload)) + payload


def field_fixed32(field: int, value: int) -> bytes:
    """Field `field` as four little-endian bytes (wire type 5)."""
    return varint(field << 3 | 5) + value.to_bytes(4, "little")


def field_fixed64(field: int, value: int) -> bytes:
    """Field `field` as eight little-endian bytes (wire type 1)."""
    return varint(field << 3 | 1) + value.to_bytes(8, "little")
