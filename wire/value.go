package wire

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"reflect"
	"sync"

	"github.com/vmihailenco/msgpack/v5"
)

// MessagePack extension types that may stand at the top of a value.
const (
	extArray int8 = 1 // [buffer index, dtype, shape]: an Array whose data is a buffer
	extRef   int8 = 2 // a name in the engine's namespace (Ref)
)

// Ref names a variable in an engine's namespace. Passed as an argument of
// an apply request, it makes the engine pass that variable's value.
type Ref string

// Value is one encoded value: MessagePack bytes that may refer to one of
// the message's buffers (an Array). Values in contents are decoded lazily,
// by the side that knows what Go type it wants.
type Value struct {
	Raw     []byte
	Buffers [][]byte // the buffers of the message Raw came from
}

// AppendValue appends the encoding of v to b. Numeric slices and Arrays are
// appended to *bufs as raw frames (viewing the slice's memory: it must not
// change until the message is sent); everything else is MessagePack.
func AppendValue(b []byte, bufs *[][]byte, v any) ([]byte, error) {
	switch v := v.(type) {
	case nil:
		return appendNil(b), nil
	case string:
		return appendStr(b, v), nil
	case bool:
		return appendBool(b, v), nil
	case int:
		return appendInt(b, int64(v)), nil
	case int64:
		return appendInt(b, v), nil
	case float64:
		return appendFloat64(b, v), nil
	case Ref:
		return appendExt(b, extRef, []byte(v)), nil
	case Value:
		return appendRaw(b, bufs, v)
	case Array:
		return appendArray(b, bufs, v)
	case *Array:
		return appendArray(b, bufs, *v)
	case []float64:
		return appendArray(b, bufs, Array{DType: Float64, Shape: []int{len(v)}, Data: bytesOf(v)})
	case []byte:
		return appendArray(b, bufs, Array{DType: Uint8, Shape: []int{len(v)}, Data: v})
	}
	rv := reflect.ValueOf(v)
	if rv.Kind() == reflect.Slice {
		if dt := dtypeOfKind(rv.Type().Elem().Kind()); dt != "" {
			return appendArray(b, bufs, Array{DType: dt, Shape: []int{rv.Len()}, Data: sliceBytes(rv)})
		}
	}
	return msgpackAppend(b, v)
}

func appendArray(b []byte, bufs *[][]byte, a Array) ([]byte, error) {
	if !littleEndian {
		return b, errBigEndian
	}
	if err := a.check(); err != nil {
		return b, err
	}
	hdr := appendArrayHeader(make([]byte, 0, 16+4*len(a.Shape)), 3)
	hdr = appendUint(hdr, uint64(len(*bufs)))
	hdr = appendStr(hdr, string(a.DType))
	hdr = appendArrayHeader(hdr, len(a.Shape))
	for _, d := range a.Shape {
		hdr = appendUint(hdr, uint64(d))
	}
	*bufs = append(*bufs, a.Data)
	return appendExt(b, extArray, hdr), nil
}

// appendRaw appends an already encoded value, renumbering the buffer it
// refers to, if any, into *bufs.
func appendRaw(b []byte, bufs *[][]byte, v Value) ([]byte, error) {
	a, ok, err := v.array()
	if err != nil {
		return b, err
	}
	if ok {
		return appendArray(b, bufs, a)
	}
	return append(b, v.Raw...), nil
}

// sliceWriter lets a msgpack.Encoder append to a byte slice.
type sliceWriter struct{ b []byte }

func (w *sliceWriter) Write(p []byte) (int, error) {
	w.b = append(w.b, p...)
	return len(p), nil
}

func (w *sliceWriter) WriteByte(c byte) error {
	w.b = append(w.b, c)
	return nil
}

type encoderState struct {
	w   sliceWriter
	enc *msgpack.Encoder
}

var encoders = sync.Pool{New: func() any {
	s := new(encoderState)
	s.enc = msgpack.NewEncoder(&s.w)
	s.enc.UseCompactInts(true)
	return s
}}

// msgpackAppend appends the MessagePack encoding of v, by reflection.
func msgpackAppend(b []byte, v any) ([]byte, error) {
	s := encoders.Get().(*encoderState)
	s.w.b = b
	err := s.enc.Encode(v)
	b = s.w.b
	s.w.b = nil
	encoders.Put(s)
	if err != nil {
		return b, fmt.Errorf("wire: cannot encode %T: %w", v, err)
	}
	return b, nil
}

var decoders = sync.Pool{New: func() any {
	d := msgpack.NewDecoder(nil)
	d.UseLooseInterfaceDecoding(true)
	return d
}}

// msgpackDecode decodes raw into rv by reflection. The input is first
// walked with skip, which checks that every container's length fits the
// input, so that the decoder never sizes an allocation by a hostile count.
func msgpackDecode(raw []byte, rv reflect.Value) error {
	if rest, err := skip(raw); err != nil {
		return err
	} else if len(rest) != 0 {
		return fmt.Errorf("%d bytes after the value", len(rest))
	}
	d := decoders.Get().(*msgpack.Decoder)
	r := bytes.NewReader(raw)
	d.Reset(r)
	d.UseLooseInterfaceDecoding(true)
	d.SetMapDecoder(decodeAnyMap)
	err := d.DecodeValue(rv)
	if err == nil && r.Len() != 0 {
		err = fmt.Errorf("%d bytes after the value", r.Len())
	}
	d.Reset(nil)
	decoders.Put(d)
	return err
}

// decodeAnyMap decodes a map into an interface: a map[string]any when
// every key is a string (as for structs and most maps), else a
// map[any]any, such as for a Go map[int]string.
func decodeAnyMap(d *msgpack.Decoder) (any, error) {
	n, err := d.DecodeMapLen()
	if err != nil || n == -1 {
		return nil, err
	}
	keys, vals := make([]any, n), make([]any, n)
	strs := true
	for i := range n {
		if keys[i], err = d.DecodeInterfaceLoose(); err != nil {
			return nil, err
		}
		if vals[i], err = d.DecodeInterfaceLoose(); err != nil {
			return nil, err
		}
		if _, ok := keys[i].(string); !ok {
			strs = false
			if keys[i] != nil && !reflect.TypeOf(keys[i]).Comparable() {
				return nil, fmt.Errorf("a map key of type %T cannot be a Go map key", keys[i])
			}
		}
	}
	if strs {
		m := make(map[string]any, n)
		for i, k := range keys {
			m[k.(string)] = vals[i]
		}
		return m, nil
	}
	m := make(map[any]any, n)
	for i, k := range keys {
		m[k] = vals[i]
	}
	return m, nil
}

// Ref reports whether v is a namespace reference, and its name.
func (v Value) Ref() (string, bool) {
	if len(v.Raw) == 0 || !isExtStart(v.Raw[0]) {
		return "", false
	}
	t, data, rest, err := readExt(v.Raw)
	if err != nil || t != extRef || len(rest) != 0 {
		return "", false
	}
	return string(data), true
}

// array decodes v as an Array if it is one.
func (v Value) array() (Array, bool, error) {
	if len(v.Raw) == 0 || !isExtStart(v.Raw[0]) {
		return Array{}, false, nil
	}
	t, data, rest, err := readExt(v.Raw)
	if err != nil {
		return Array{}, false, err
	}
	if t != extArray {
		return Array{}, false, nil
	}
	if len(rest) != 0 {
		return Array{}, false, fmt.Errorf("wire: %d bytes after an array reference", len(rest))
	}
	n, data, err := readArrayHeader(data)
	if err == nil && n != 3 {
		err = fmt.Errorf("array reference has %d fields, want 3", n)
	}
	var idx uint64
	var dt string
	var dims int
	if err == nil {
		idx, data, err = readUint(data)
	}
	if err == nil {
		dt, data, err = readStr(data)
	}
	if err == nil {
		dims, data, err = readArrayHeader(data)
		if err == nil && dims > maxDims {
			err = fmt.Errorf("array has %d dimensions, at most %d allowed", dims, maxDims)
		}
	}
	var shape []int
	for i := 0; err == nil && i < dims; i++ {
		var d uint64
		d, data, err = readUint(data)
		if d > 1<<53 {
			err = fmt.Errorf("array dimension %d too large", d)
		}
		shape = append(shape, int(d))
	}
	if err == nil && len(data) != 0 {
		err = errors.New("trailing bytes in array reference")
	}
	if err == nil && idx >= uint64(len(v.Buffers)) {
		err = fmt.Errorf("array refers to buffer %d of %d", idx, len(v.Buffers))
	}
	if err != nil {
		return Array{}, false, fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	a := Array{DType: DType(dt), Shape: shape, Data: v.Buffers[idx]}
	if err := a.check(); err != nil {
		return Array{}, false, fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	return a, true, nil
}

func isExtStart(c byte) bool { return (c >= 0xd4 && c <= 0xd8) || (c >= 0xc7 && c <= 0xc9) }

// Detach returns a copy of v that holds only the buffer it refers to, so
// that keeping it does not keep the rest of its message alive.
func (v Value) Detach() (Value, error) {
	a, ok, err := v.array()
	if err != nil {
		return Value{}, err
	}
	raw := append([]byte(nil), v.Raw...)
	if !ok {
		return Value{Raw: raw}, nil
	}
	var bufs [][]byte
	raw, err = appendArray(nil, &bufs, a)
	return Value{Raw: raw, Buffers: bufs}, err
}

// Array returns v as an Array if it is one.
func (v Value) Array() (Array, bool, error) { return v.array() }

// Decode decodes v into the natural Go value: nil, bool, int64, uint64,
// float64, string, []byte, []any, map[string]any (map[any]any for a map
// with keys that are not all strings); a one-dimensional array
// becomes a typed slice such as []float64 and a larger one an Array.
func (v Value) Decode() (any, error) {
	var out any
	err := v.DecodeValue(reflect.ValueOf(&out).Elem())
	return out, err
}

// DecodeInto decodes v into the value ptr points to.
func (v Value) DecodeInto(ptr any) error {
	rv := reflect.ValueOf(ptr)
	if rv.Kind() != reflect.Pointer || rv.IsNil() {
		return fmt.Errorf("wire: DecodeInto needs a non-nil pointer, got %T", ptr)
	}
	return v.DecodeValue(rv.Elem())
}

var arrayType = reflect.TypeFor[Array]()

// DecodeValue decodes v into dst, which must be settable.
func (v Value) DecodeValue(dst reflect.Value) error {
	if _, ok := v.Ref(); ok {
		return errors.New("wire: a namespace reference can only be resolved on an engine")
	}
	if done, err := decodeScalar(v.Raw, dst); done || err != nil {
		return err
	}
	a, ok, err := v.array()
	if err != nil {
		return err
	}
	if !ok {
		if err := msgpackDecode(v.Raw, dst); err != nil {
			if len(v.Raw) > 0 && !fits(v.Raw[0], dst.Type()) {
				return fmt.Errorf("wire: cannot decode %s into %s", withArticle(kindOf(v.Raw[0])), dst.Type())
			}
			return fmt.Errorf("wire: cannot decode into %s: %w", dst.Type(), err)
		}
		if dst.Kind() == reflect.Interface && !dst.IsNil() {
			dst.Set(reflect.ValueOf(normalize(dst.Interface())))
		}
		return nil
	}
	switch {
	case dst.Type() == arrayType:
		dst.Set(reflect.ValueOf(a))
		return nil
	case dst.Kind() == reflect.Interface && dst.NumMethod() == 0:
		if len(a.Shape) != 1 {
			dst.Set(reflect.ValueOf(a))
			return nil
		}
		s, err := sliceView(a, reflect.SliceOf(elemTypeOf(a.DType)))
		if err != nil {
			return err
		}
		dst.Set(s)
		return nil
	case dst.Kind() == reflect.Slice && dtypeOfKind(dst.Type().Elem().Kind()) == a.DType:
		s, err := sliceView(a, dst.Type())
		if err != nil {
			return err
		}
		dst.Set(s)
		return nil
	case dst.Kind() == reflect.Pointer:
		if dst.IsNil() {
			dst.Set(reflect.New(dst.Type().Elem()))
		}
		return v.DecodeValue(dst.Elem())
	}
	return fmt.Errorf("wire: cannot decode a %s array of shape %v into %s", a.DType, a.Shape, dst.Type())
}

func elemTypeOf(d DType) reflect.Type {
	switch d {
	case Float64:
		return reflect.TypeFor[float64]()
	case Float32:
		return reflect.TypeFor[float32]()
	case Int64:
		return reflect.TypeFor[int64]()
	case Int32:
		return reflect.TypeFor[int32]()
	case Int16:
		return reflect.TypeFor[int16]()
	case Int8:
		return reflect.TypeFor[int8]()
	case Uint64:
		return reflect.TypeFor[uint64]()
	case Uint32:
		return reflect.TypeFor[uint32]()
	case Uint16:
		return reflect.TypeFor[uint16]()
	case Uint8:
		return reflect.TypeFor[uint8]()
	case Complex128:
		return reflect.TypeFor[complex128]()
	case Complex64:
		return reflect.TypeFor[complex64]()
	}
	return nil
}

// ValueList reads a MessagePack array of values from raw.
func ValueList(raw []byte, bufs [][]byte) ([]Value, error) {
	n, b, err := readArrayHeader(raw)
	if err != nil {
		return nil, fmt.Errorf("%w: value list: %v", ErrMalformed, err)
	}
	if n > len(b) {
		return nil, fmt.Errorf("%w: value list of %d in %d bytes", ErrMalformed, n, len(b))
	}
	out := make([]Value, n)
	for i := range out {
		var r []byte
		if r, b, err = readRaw(b); err != nil {
			return nil, fmt.Errorf("%w: value %d: %v", ErrMalformed, i, err)
		}
		out[i] = Value{Raw: r, Buffers: bufs}
	}
	if len(b) != 0 {
		return nil, fmt.Errorf("%w: bytes after the value list", ErrMalformed)
	}
	return out, nil
}

// normalize makes integers decoded into interfaces int64 whenever they
// fit: MessagePack writes non-negative integers in unsigned forms, which
// the decoder turns into uint64.
func normalize(v any) any {
	switch v := v.(type) {
	case uint64:
		if v <= math.MaxInt64 {
			return int64(v)
		}
	case []any:
		for i, x := range v {
			v[i] = normalize(x)
		}
	case map[string]any:
		for k, x := range v {
			v[k] = normalize(x)
		}
	case map[any]any:
		for k, x := range v {
			v[k] = normalize(x)
		}
	}
	return v
}

// fits reports whether a MessagePack value starting with c can decode
// into a Go value of type t at all; it is for error messages.
func fits(c byte, t reflect.Type) bool {
	k := t.Kind()
	if k == reflect.Interface || k == reflect.Pointer {
		return true
	}
	switch kindOf(c) {
	case "integer":
		return k >= reflect.Int && k <= reflect.Float64
	case "float":
		return k == reflect.Float32 || k == reflect.Float64
	case "string", "binary":
		return k == reflect.String || (k == reflect.Slice && t.Elem().Kind() == reflect.Uint8)
	case "bool":
		return k == reflect.Bool
	case "map":
		return k == reflect.Map || k == reflect.Struct
	case "array":
		return k == reflect.Slice || k == reflect.Array || k == reflect.Struct
	case "nil":
		return k == reflect.Slice || k == reflect.Map
	}
	return true
}

func withArticle(kind string) string {
	switch kind {
	case "integer", "array", "extension", "invalid":
		return "an " + kind
	case "nil":
		return kind
	}
	return "a " + kind
}

// decodeScalar decodes a MessagePack integer, float, string, bool or nil
// into a destination of a matching basic kind (or an empty interface)
// directly, the common case of arguments, map items and results. It
// reports done=false, leaving dst alone, for anything else.
func decodeScalar(raw []byte, dst reflect.Value) (done bool, err error) {
	if len(raw) == 0 {
		return false, nil
	}
	k := dst.Kind()
	iface := k == reflect.Interface && dst.NumMethod() == 0
	c := raw[0]
	switch {
	case c <= 0x7f || c >= 0xe0 || (c >= 0xcc && c <= 0xd3): // integer
		if c == 0xcf {
			if u, rest, err := readUint(raw); err == nil && len(rest) == 0 && u > math.MaxInt64 {
				switch {
				case iface:
					dst.Set(reflect.ValueOf(u))
				case k >= reflect.Uint && k <= reflect.Uint64 && !dst.OverflowUint(u):
					dst.SetUint(u)
				case k == reflect.Float64 || k == reflect.Float32:
					dst.SetFloat(float64(u))
				default:
					return false, nil
				}
				return true, nil
			}
		}
		i, rest, err := readInt(raw)
		if err != nil || len(rest) != 0 {
			return false, nil
		}
		switch {
		case iface:
			dst.Set(reflect.ValueOf(i))
		case k >= reflect.Int && k <= reflect.Int64:
			if dst.OverflowInt(i) {
				return true, fmt.Errorf("wire: %d overflows %s", i, dst.Type())
			}
			dst.SetInt(i)
		case k >= reflect.Uint && k <= reflect.Uintptr:
			if i < 0 || dst.OverflowUint(uint64(i)) {
				return true, fmt.Errorf("wire: %d overflows %s", i, dst.Type())
			}
			dst.SetUint(uint64(i))
		case k == reflect.Float64 || k == reflect.Float32:
			dst.SetFloat(float64(i))
		default:
			return false, nil
		}
		return true, nil
	case c == 0xcb || c == 0xca: // float
		var f float64
		if c == 0xcb {
			if len(raw) != 9 {
				return false, nil
			}
			f = math.Float64frombits(binary.BigEndian.Uint64(raw[1:]))
		} else {
			if len(raw) != 5 {
				return false, nil
			}
			f = float64(math.Float32frombits(binary.BigEndian.Uint32(raw[1:])))
		}
		switch {
		case iface:
			dst.Set(reflect.ValueOf(f))
		case k == reflect.Float64 || k == reflect.Float32:
			dst.SetFloat(f)
		default:
			return false, nil
		}
		return true, nil
	case (c >= 0xa0 && c <= 0xbf) || c == 0xd9 || c == 0xda || c == 0xdb: // string
		b, rest, err := readStrBytes(raw)
		if err != nil || len(rest) != 0 {
			return false, nil
		}
		switch {
		case iface:
			dst.Set(reflect.ValueOf(string(b)))
		case k == reflect.String:
			dst.SetString(string(b))
		default:
			return false, nil
		}
		return true, nil
	case c == 0xc2 || c == 0xc3: // bool
		if len(raw) != 1 {
			return false, nil
		}
		switch {
		case iface:
			dst.Set(reflect.ValueOf(c == 0xc3))
		case k == reflect.Bool:
			dst.SetBool(c == 0xc3)
		default:
			return false, nil
		}
		return true, nil
	case c == 0xc0: // nil
		if len(raw) != 1 {
			return false, nil
		}
		switch k {
		case reflect.Interface, reflect.Pointer, reflect.Slice, reflect.Map:
			dst.SetZero()
			return true, nil
		}
	}
	return false, nil
}
