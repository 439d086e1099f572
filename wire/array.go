package wire

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math/bits"
	"reflect"
	"unsafe"
)

// DType names the element type of an Array. The names are NumPy's.
type DType string

// The element types an Array can hold. Elements are little-endian.
const (
	Float64    DType = "float64"
	Float32    DType = "float32"
	Int64      DType = "int64"
	Int32      DType = "int32"
	Int16      DType = "int16"
	Int8       DType = "int8"
	Uint64     DType = "uint64"
	Uint32     DType = "uint32"
	Uint16     DType = "uint16"
	Uint8      DType = "uint8"
	Complex128 DType = "complex128"
	Complex64  DType = "complex64"
)

// Size returns the bytes per element, or 0 for an unknown DType.
func (d DType) Size() int {
	switch d {
	case Float64, Int64, Uint64, Complex64:
		return 8
	case Float32, Int32, Uint32:
		return 4
	case Int16, Uint16:
		return 2
	case Int8, Uint8:
		return 1
	case Complex128:
		return 16
	}
	return 0
}

// dtypeOfKind returns the DType whose elements a Go kind holds, or "".
// Plain int and uint map to their 64-bit forms on 64-bit platforms.
func dtypeOfKind(k reflect.Kind) DType {
	switch k {
	case reflect.Float64:
		return Float64
	case reflect.Float32:
		return Float32
	case reflect.Int64:
		return Int64
	case reflect.Int32:
		return Int32
	case reflect.Int16:
		return Int16
	case reflect.Int8:
		return Int8
	case reflect.Uint64:
		return Uint64
	case reflect.Uint32:
		return Uint32
	case reflect.Uint16:
		return Uint16
	case reflect.Uint8:
		return Uint8
	case reflect.Complex128:
		return Complex128
	case reflect.Complex64:
		return Complex64
	case reflect.Int:
		if bits.UintSize == 64 {
			return Int64
		}
	case reflect.Uint:
		if bits.UintSize == 64 {
			return Uint64
		}
	}
	return ""
}

// Number is the set of element types a typed slice view of an Array can have.
type Number interface {
	~float64 | ~float32 | ~int64 | ~int32 | ~int16 | ~int8 |
		~uint64 | ~uint32 | ~uint16 | ~uint8 | ~complex128 | ~complex64 | ~int | ~uint
}

// Array is a dense numeric array in row-major order whose data travels as
// one raw little-endian frame. A one-dimensional Go slice of numbers is
// sent as an Array of one dimension without being wrapped.
type Array struct {
	DType DType
	Shape []int
	Data  []byte
}

// ArrayOf returns an Array that views s without copying. With no shape,
// the array has one dimension of len(s).
func ArrayOf[T Number](s []T, shape ...int) (Array, error) {
	dt := dtypeOfKind(reflect.TypeFor[T]().Kind())
	if dt == "" {
		return Array{}, fmt.Errorf("wire: no array element type for %s", reflect.TypeFor[T]())
	}
	if len(shape) == 0 {
		shape = []int{len(s)}
	}
	a := Array{DType: dt, Shape: shape, Data: bytesOf(s)}
	if err := a.check(); err != nil {
		return Array{}, err
	}
	return a, nil
}

// SliceOf returns the elements of a as a []T, which must match a's DType.
// It views a.Data without copying when the data is suitably aligned.
func SliceOf[T Number](a Array) ([]T, error) {
	t := reflect.TypeFor[T]()
	if dtypeOfKind(t.Kind()) != a.DType {
		return nil, fmt.Errorf("wire: %s array does not fit []%s", a.DType, t)
	}
	v, err := sliceView(a, reflect.SliceOf(t))
	if err != nil {
		return nil, err
	}
	return v.Interface().([]T), nil
}

// Len returns the number of elements.
func (a Array) Len() int {
	if s := a.DType.Size(); s > 0 {
		return len(a.Data) / s
	}
	return 0
}

// check reports whether the shape and data of a agree.
func (a Array) check() error {
	size := a.DType.Size()
	if size == 0 {
		return fmt.Errorf("wire: unknown array dtype %q", a.DType)
	}
	if len(a.Shape) > maxDims {
		return fmt.Errorf("wire: array has %d dimensions, at most %d allowed", len(a.Shape), maxDims)
	}
	n := uint64(1)
	for _, d := range a.Shape {
		if d < 0 {
			return fmt.Errorf("wire: negative array dimension %d", d)
		}
		hi, lo := bits.Mul64(n, uint64(d))
		if hi != 0 || lo > uint64(len(a.Data)) {
			return fmt.Errorf("wire: array shape %v does not match %d bytes of %s", a.Shape, len(a.Data), a.DType)
		}
		n = lo
	}
	if n*uint64(size) != uint64(len(a.Data)) {
		return fmt.Errorf("wire: array shape %v does not match %d bytes of %s", a.Shape, len(a.Data), a.DType)
	}
	return nil
}

// maxDims bounds the number of dimensions of an array.
const maxDims = 32

var littleEndian = binary.NativeEndian.Uint16([]byte{1, 0}) == 1

// errBigEndian is returned for arrays on big-endian hosts, which would need byte swapping.
var errBigEndian = errors.New("wire: raw arrays need a little-endian host")

// bytesOf views the memory of a slice of numbers as bytes.
func bytesOf[T any](s []T) []byte {
	if len(s) == 0 {
		return []byte{}
	}
	return unsafe.Slice((*byte)(unsafe.Pointer(unsafe.SliceData(s))), len(s)*int(unsafe.Sizeof(s[0])))
}

// sliceBytes views the memory of a reflected slice of numbers as bytes.
func sliceBytes(v reflect.Value) []byte {
	n := v.Len() * int(v.Type().Elem().Size())
	if n == 0 {
		return []byte{}
	}
	return unsafe.Slice((*byte)(v.UnsafePointer()), n)
}

// sliceView returns a's data as a value of slice type st, without copying
// when the data is aligned for the element type.
func sliceView(a Array, st reflect.Type) (reflect.Value, error) {
	if !littleEndian {
		return reflect.Value{}, errBigEndian
	}
	et := st.Elem()
	size := int(et.Size())
	if size != a.DType.Size() || len(a.Data)%size != 0 {
		return reflect.Value{}, fmt.Errorf("wire: %d bytes of %s do not fit %s", len(a.Data), a.DType, st)
	}
	n := len(a.Data) / size
	if n == 0 {
		return reflect.MakeSlice(st, 0, 0), nil
	}
	data := a.Data
	if uintptr(unsafe.Pointer(unsafe.SliceData(data)))%uintptr(et.Align()) != 0 {
		aligned := bytesOf(make([]uint64, (len(data)+7)/8)) // 8-byte aligned: enough for every dtype
		data = aligned[:copy(aligned, data)]
	}
	return reflect.SliceAt(et, unsafe.Pointer(unsafe.SliceData(data)), n), nil
}

// ArrayView returns an Array that views s, a slice of numbers, without
// copying. With no shape, the array has one dimension of len(s).
func ArrayView(s any, shape ...int) (Array, error) {
	v := reflect.ValueOf(s)
	if v.Kind() != reflect.Slice {
		return Array{}, fmt.Errorf("wire: an array views a slice of numbers, not %T", s)
	}
	dt := dtypeOfKind(v.Type().Elem().Kind())
	if dt == "" {
		return Array{}, fmt.Errorf("wire: no array element type for %s", v.Type().Elem())
	}
	if len(shape) == 0 {
		shape = []int{v.Len()}
	}
	a := Array{DType: dt, Shape: shape, Data: sliceBytes(v)}
	if err := a.check(); err != nil {
		return Array{}, err
	}
	return a, nil
}
