package wire

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
)

// This file holds the small subset of MessagePack that envelopes and
// contents need, written out by hand: appends that do not allocate beyond
// the buffer, and reads that never allocate more than the input holds, so a
// hostile frame cannot make the decoder reserve memory it was not sent.
// Arbitrary user values are left to github.com/vmihailenco/msgpack.

// errShort reports input that ends inside a value.
var errShort = errors.New("msgpack: input ends inside a value")

// maxDepth bounds nesting when skipping over values of unknown shape.
const maxDepth = 512

func appendMapHeader(b []byte, n int) []byte {
	switch {
	case n < 16:
		return append(b, 0x80|byte(n))
	case n <= math.MaxUint16:
		return append(b, 0xde, byte(n>>8), byte(n))
	default:
		return append(b, 0xdf, byte(n>>24), byte(n>>16), byte(n>>8), byte(n))
	}
}

func appendArrayHeader(b []byte, n int) []byte {
	switch {
	case n < 16:
		return append(b, 0x90|byte(n))
	case n <= math.MaxUint16:
		return append(b, 0xdc, byte(n>>8), byte(n))
	default:
		return append(b, 0xdd, byte(n>>24), byte(n>>16), byte(n>>8), byte(n))
	}
}

func appendStr(b []byte, s string) []byte {
	n := len(s)
	switch {
	case n < 32:
		b = append(b, 0xa0|byte(n))
	case n <= math.MaxUint8:
		b = append(b, 0xd9, byte(n))
	case n <= math.MaxUint16:
		b = append(b, 0xda, byte(n>>8), byte(n))
	default:
		b = append(b, 0xdb, byte(n>>24), byte(n>>16), byte(n>>8), byte(n))
	}
	return append(b, s...)
}

func appendBin(b []byte, p []byte) []byte {
	n := len(p)
	switch {
	case n <= math.MaxUint8:
		b = append(b, 0xc4, byte(n))
	case n <= math.MaxUint16:
		b = append(b, 0xc5, byte(n>>8), byte(n))
	default:
		b = append(b, 0xc6, byte(n>>24), byte(n>>16), byte(n>>8), byte(n))
	}
	return append(b, p...)
}

func appendUint(b []byte, v uint64) []byte {
	switch {
	case v < 128:
		return append(b, byte(v))
	case v <= math.MaxUint8:
		return append(b, 0xcc, byte(v))
	case v <= math.MaxUint16:
		return append(b, 0xcd, byte(v>>8), byte(v))
	case v <= math.MaxUint32:
		return append(b, 0xce, byte(v>>24), byte(v>>16), byte(v>>8), byte(v))
	default:
		return binary.BigEndian.AppendUint64(append(b, 0xcf), v)
	}
}

func appendInt(b []byte, v int64) []byte {
	if v >= 0 {
		return appendUint(b, uint64(v))
	}
	switch {
	case v >= -32:
		return append(b, byte(v))
	case v >= math.MinInt8:
		return append(b, 0xd0, byte(v))
	case v >= math.MinInt16:
		return append(b, 0xd1, byte(v>>8), byte(v))
	case v >= math.MinInt32:
		return append(b, 0xd2, byte(v>>24), byte(v>>16), byte(v>>8), byte(v))
	default:
		return binary.BigEndian.AppendUint64(append(b, 0xd3), uint64(v))
	}
}

func appendBool(b []byte, v bool) []byte {
	if v {
		return append(b, 0xc3)
	}
	return append(b, 0xc2)
}

func appendNil(b []byte) []byte { return append(b, 0xc0) }

func appendFloat64(b []byte, v float64) []byte {
	return binary.BigEndian.AppendUint64(append(b, 0xcb), math.Float64bits(v))
}

func appendExt(b []byte, typ int8, data []byte) []byte {
	n := len(data)
	switch n {
	case 1:
		b = append(b, 0xd4, byte(typ))
	case 2:
		b = append(b, 0xd5, byte(typ))
	case 4:
		b = append(b, 0xd6, byte(typ))
	case 8:
		b = append(b, 0xd7, byte(typ))
	case 16:
		b = append(b, 0xd8, byte(typ))
	default:
		switch {
		case n <= math.MaxUint8:
			b = append(b, 0xc7, byte(n), byte(typ))
		case n <= math.MaxUint16:
			b = append(b, 0xc8, byte(n>>8), byte(n), byte(typ))
		default:
			b = append(b, 0xc9, byte(n>>24), byte(n>>16), byte(n>>8), byte(n), byte(typ))
		}
	}
	return append(b, data...)
}

// need returns an error unless b holds at least n bytes.
func need(b []byte, n int) error {
	if n < 0 || len(b) < n {
		return errShort
	}
	return nil
}

func typeErr(want string, c byte) error {
	return fmt.Errorf("msgpack: want %s, found %s", want, kindOf(c))
}

// kindOf names the msgpack family of a leading byte, for error messages.
func kindOf(c byte) string {
	switch {
	case c <= 0x7f || c >= 0xe0 || (c >= 0xcc && c <= 0xd3):
		return "integer"
	case c >= 0x80 && c <= 0x8f, c == 0xde, c == 0xdf:
		return "map"
	case c >= 0x90 && c <= 0x9f, c == 0xdc, c == 0xdd:
		return "array"
	case c >= 0xa0 && c <= 0xbf, c == 0xd9, c == 0xda, c == 0xdb:
		return "string"
	case c == 0xc0:
		return "nil"
	case c == 0xc2, c == 0xc3:
		return "bool"
	case c >= 0xc4 && c <= 0xc6:
		return "binary"
	case c == 0xca, c == 0xcb:
		return "float"
	case c >= 0xc7 && c <= 0xc9, c >= 0xd4 && c <= 0xd8:
		return "extension"
	default:
		return fmt.Sprintf("invalid byte 0x%02x", c)
	}
}

func readMapHeader(b []byte) (int, []byte, error) {
	if err := need(b, 1); err != nil {
		return 0, b, err
	}
	c := b[0]
	switch {
	case c >= 0x80 && c <= 0x8f:
		return int(c & 0x0f), b[1:], nil
	case c == 0xde:
		if err := need(b, 3); err != nil {
			return 0, b, err
		}
		return int(binary.BigEndian.Uint16(b[1:])), b[3:], nil
	case c == 0xdf:
		if err := need(b, 5); err != nil {
			return 0, b, err
		}
		return int(binary.BigEndian.Uint32(b[1:])), b[5:], nil
	}
	return 0, b, typeErr("map", c)
}

func readArrayHeader(b []byte) (int, []byte, error) {
	if err := need(b, 1); err != nil {
		return 0, b, err
	}
	c := b[0]
	switch {
	case c >= 0x90 && c <= 0x9f:
		return int(c & 0x0f), b[1:], nil
	case c == 0xdc:
		if err := need(b, 3); err != nil {
			return 0, b, err
		}
		return int(binary.BigEndian.Uint16(b[1:])), b[3:], nil
	case c == 0xdd:
		if err := need(b, 5); err != nil {
			return 0, b, err
		}
		return int(binary.BigEndian.Uint32(b[1:])), b[5:], nil
	}
	return 0, b, typeErr("array", c)
}

// readStrBytes returns the bytes of a string without copying them.
func readStrBytes(b []byte) ([]byte, []byte, error) {
	if err := need(b, 1); err != nil {
		return nil, b, err
	}
	c := b[0]
	var n, h int
	switch {
	case c >= 0xa0 && c <= 0xbf:
		n, h = int(c&0x1f), 1
	case c == 0xd9:
		if err := need(b, 2); err != nil {
			return nil, b, err
		}
		n, h = int(b[1]), 2
	case c == 0xda:
		if err := need(b, 3); err != nil {
			return nil, b, err
		}
		n, h = int(binary.BigEndian.Uint16(b[1:])), 3
	case c == 0xdb:
		if err := need(b, 5); err != nil {
			return nil, b, err
		}
		n, h = int(binary.BigEndian.Uint32(b[1:])), 5
	default:
		return nil, b, typeErr("string", c)
	}
	if err := need(b, h+n); err != nil {
		return nil, b, err
	}
	return b[h : h+n : h+n], b[h+n:], nil
}

func readStr(b []byte) (string, []byte, error) {
	s, rest, err := readStrBytes(b)
	return string(s), rest, err
}

// readBin returns the bytes of a binary value without copying them.
func readBin(b []byte) ([]byte, []byte, error) {
	if err := need(b, 1); err != nil {
		return nil, b, err
	}
	c := b[0]
	var n, h int
	switch c {
	case 0xc4:
		if err := need(b, 2); err != nil {
			return nil, b, err
		}
		n, h = int(b[1]), 2
	case 0xc5:
		if err := need(b, 3); err != nil {
			return nil, b, err
		}
		n, h = int(binary.BigEndian.Uint16(b[1:])), 3
	case 0xc6:
		if err := need(b, 5); err != nil {
			return nil, b, err
		}
		n, h = int(binary.BigEndian.Uint32(b[1:])), 5
	default:
		return nil, b, typeErr("binary", c)
	}
	if err := need(b, h+n); err != nil {
		return nil, b, err
	}
	return b[h : h+n : h+n], b[h+n:], nil
}

// readInt reads any msgpack integer that fits an int64.
func readInt(b []byte) (int64, []byte, error) {
	if err := need(b, 1); err != nil {
		return 0, b, err
	}
	c := b[0]
	switch {
	case c <= 0x7f:
		return int64(c), b[1:], nil
	case c >= 0xe0:
		return int64(int8(c)), b[1:], nil
	}
	var size int
	switch c {
	case 0xcc, 0xd0:
		size = 1
	case 0xcd, 0xd1:
		size = 2
	case 0xce, 0xd2:
		size = 4
	case 0xcf, 0xd3:
		size = 8
	default:
		return 0, b, typeErr("integer", c)
	}
	if err := need(b, 1+size); err != nil {
		return 0, b, err
	}
	p := b[1 : 1+size]
	rest := b[1+size:]
	switch c {
	case 0xcc:
		return int64(p[0]), rest, nil
	case 0xcd:
		return int64(binary.BigEndian.Uint16(p)), rest, nil
	case 0xce:
		return int64(binary.BigEndian.Uint32(p)), rest, nil
	case 0xcf:
		v := binary.BigEndian.Uint64(p)
		if v > math.MaxInt64 {
			return 0, b, errors.New("msgpack: integer overflows int64")
		}
		return int64(v), rest, nil
	case 0xd0:
		return int64(int8(p[0])), rest, nil
	case 0xd1:
		return int64(int16(binary.BigEndian.Uint16(p))), rest, nil
	case 0xd2:
		return int64(int32(binary.BigEndian.Uint32(p))), rest, nil
	default:
		return int64(binary.BigEndian.Uint64(p)), rest, nil
	}
}

// readUint reads a non-negative msgpack integer.
func readUint(b []byte) (uint64, []byte, error) {
	if err := need(b, 1); err != nil {
		return 0, b, err
	}
	if b[0] == 0xcf {
		if err := need(b, 9); err != nil {
			return 0, b, err
		}
		return binary.BigEndian.Uint64(b[1:]), b[9:], nil
	}
	v, rest, err := readInt(b)
	if err != nil {
		return 0, b, err
	}
	if v < 0 {
		return 0, b, errors.New("msgpack: negative integer where an unsigned one is required")
	}
	return uint64(v), rest, nil
}

func readBool(b []byte) (bool, []byte, error) {
	if err := need(b, 1); err != nil {
		return false, b, err
	}
	switch b[0] {
	case 0xc2:
		return false, b[1:], nil
	case 0xc3:
		return true, b[1:], nil
	}
	return false, b, typeErr("bool", b[0])
}

// isNil reports whether b starts with a nil value.
func isNil(b []byte) bool { return len(b) > 0 && b[0] == 0xc0 }

// readExt reads an extension's type and returns its data without copying.
func readExt(b []byte) (int8, []byte, []byte, error) {
	if err := need(b, 2); err != nil {
		return 0, nil, b, err
	}
	c := b[0]
	var n, h int
	switch c {
	case 0xd4, 0xd5, 0xd6, 0xd7, 0xd8:
		n, h = 1<<(c-0xd4), 2
	case 0xc7:
		if err := need(b, 3); err != nil {
			return 0, nil, b, err
		}
		n, h = int(b[1]), 3
	case 0xc8:
		if err := need(b, 4); err != nil {
			return 0, nil, b, err
		}
		n, h = int(binary.BigEndian.Uint16(b[1:])), 4
	case 0xc9:
		if err := need(b, 6); err != nil {
			return 0, nil, b, err
		}
		n, h = int(binary.BigEndian.Uint32(b[1:])), 6
	default:
		return 0, nil, b, typeErr("extension", c)
	}
	if err := need(b, h+n); err != nil {
		return 0, nil, b, err
	}
	return int8(b[h-1]), b[h : h+n : h+n], b[h+n:], nil
}

// skip returns the input after one complete value of any type. It walks
// nested containers without recursion and refuses nesting beyond maxDepth.
func skip(b []byte) ([]byte, error) {
	pending := 1 // values still to skip at the current point
	var stack []int
	for pending > 0 {
		if len(b) == 0 {
			return b, errShort
		}
		c := b[0]
		pending--
		var n, h int // payload bytes and header bytes of a scalar
		children := 0
		switch {
		case c <= 0x7f, c >= 0xe0, c == 0xc0, c == 0xc2, c == 0xc3:
			h = 1
		case c >= 0x80 && c <= 0x8f:
			h, children = 1, 2*int(c&0x0f)
		case c >= 0x90 && c <= 0x9f:
			h, children = 1, int(c&0x0f)
		case c >= 0xa0 && c <= 0xbf:
			h, n = 1, int(c&0x1f)
		case c == 0xcc, c == 0xd0:
			h = 2
		case c == 0xcd, c == 0xd1:
			h = 3
		case c == 0xce, c == 0xd2, c == 0xca:
			h = 5
		case c == 0xcf, c == 0xd3, c == 0xcb:
			h = 9
		case c == 0xd4, c == 0xd5, c == 0xd6, c == 0xd7, c == 0xd8:
			h = 2 + 1<<(c-0xd4)
		case c == 0xc4, c == 0xd9:
			if err := need(b, 2); err != nil {
				return b, err
			}
			h, n = 2, int(b[1])
		case c == 0xc5, c == 0xda:
			if err := need(b, 3); err != nil {
				return b, err
			}
			h, n = 3, int(binary.BigEndian.Uint16(b[1:]))
		case c == 0xc6, c == 0xdb:
			if err := need(b, 5); err != nil {
				return b, err
			}
			h, n = 5, int(binary.BigEndian.Uint32(b[1:]))
		case c == 0xc7:
			if err := need(b, 2); err != nil {
				return b, err
			}
			h, n = 3, int(b[1])
		case c == 0xc8:
			if err := need(b, 3); err != nil {
				return b, err
			}
			h, n = 4, int(binary.BigEndian.Uint16(b[1:]))
		case c == 0xc9:
			if err := need(b, 5); err != nil {
				return b, err
			}
			h, n = 6, int(binary.BigEndian.Uint32(b[1:]))
		case c == 0xdc:
			if err := need(b, 3); err != nil {
				return b, err
			}
			h, children = 3, int(binary.BigEndian.Uint16(b[1:]))
		case c == 0xdd:
			if err := need(b, 5); err != nil {
				return b, err
			}
			h, children = 5, int(binary.BigEndian.Uint32(b[1:]))
		case c == 0xde:
			if err := need(b, 3); err != nil {
				return b, err
			}
			h, children = 3, 2*int(binary.BigEndian.Uint16(b[1:]))
		case c == 0xdf:
			if err := need(b, 5); err != nil {
				return b, err
			}
			h, children = 5, 2*int(binary.BigEndian.Uint32(b[1:]))
		default:
			return b, fmt.Errorf("msgpack: invalid byte 0x%02x", c)
		}
		if err := need(b, h+n); err != nil {
			return b, err
		}
		b = b[h+n:]
		if children > 0 {
			// Every child needs at least one byte: a count beyond the input is
			// corrupt, and checking it here keeps the walk linear.
			if children > len(b) {
				return b, errShort
			}
			if len(stack) >= maxDepth {
				return b, errors.New("msgpack: values nested too deeply")
			}
			stack = append(stack, pending)
			pending = children
		}
		for pending == 0 && len(stack) > 0 {
			pending = stack[len(stack)-1]
			stack = stack[:len(stack)-1]
		}
	}
	return b, nil
}

// readRaw returns one complete value of any type, without copying.
func readRaw(b []byte) ([]byte, []byte, error) {
	rest, err := skip(b)
	if err != nil {
		return nil, b, err
	}
	n := len(b) - len(rest)
	return b[:n:n], rest, nil
}
