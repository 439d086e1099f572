package cell

import (
	"fmt"
	"sort"

	"go.starlark.net/starlark"
)

// ToStarlark converts a Go value, as wire.Value.Decode gives them, to a
// Starlark value: nil is None; bools, integers, floats, strings and []byte
// map to their Starlark kinds; numeric slices become arrays over the same
// memory; []any becomes a list and a map with string keys a dict.
func ToStarlark(v any) (starlark.Value, error) {
	switch v := v.(type) {
	case nil:
		return starlark.None, nil
	case starlark.Value:
		return v, nil
	case bool:
		return starlark.Bool(v), nil
	case int:
		return starlark.MakeInt(v), nil
	case int8:
		return starlark.MakeInt64(int64(v)), nil
	case int16:
		return starlark.MakeInt64(int64(v)), nil
	case int32:
		return starlark.MakeInt64(int64(v)), nil
	case int64:
		return starlark.MakeInt64(v), nil
	case uint8:
		return starlark.MakeUint64(uint64(v)), nil
	case uint16:
		return starlark.MakeUint64(uint64(v)), nil
	case uint32:
		return starlark.MakeUint64(uint64(v)), nil
	case uint64:
		return starlark.MakeUint64(v), nil
	case uint:
		return starlark.MakeUint64(uint64(v)), nil
	case float32:
		return starlark.Float(v), nil
	case float64:
		return starlark.Float(v), nil
	case string:
		return starlark.String(v), nil
	case []byte:
		return starlark.Bytes(v), nil
	case []any:
		l := make([]starlark.Value, len(v))
		for i, x := range v {
			sv, err := ToStarlark(x)
			if err != nil {
				return nil, fmt.Errorf("item %d: %w", i, err)
			}
			l[i] = sv
		}
		return starlark.NewList(l), nil
	case map[string]any:
		d := starlark.NewDict(len(v))
		keys := make([]string, 0, len(v))
		for k := range v {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			sv, err := ToStarlark(v[k])
			if err != nil {
				return nil, fmt.Errorf("key %q: %w", k, err)
			}
			d.SetKey(starlark.String(k), sv)
		}
		return d, nil
	}
	if a, ok := newArray(v); ok {
		return a, nil
	}
	return nil, fmt.Errorf("a Go %T has no Starlark form", v)
}

// FromStarlark converts a Starlark value to the Go value that travels to
// clients: None is nil, an int is int64 (or uint64, or an error if larger),
// a float float64, lists and tuples []any, a dict with string keys
// map[string]any, a set []any in its order, and an array its Go slice (not a
// copy).
func FromStarlark(v starlark.Value) (any, error) {
	switch v := v.(type) {
	case starlark.NoneType:
		return nil, nil
	case starlark.Bool:
		return bool(v), nil
	case starlark.Int:
		if i, ok := v.Int64(); ok {
			return i, nil
		}
		if u, ok := v.Uint64(); ok {
			return u, nil
		}
		return nil, fmt.Errorf("the int %v does not fit 64 bits", v.BigInt().Text(10))
	case starlark.Float:
		return float64(v), nil
	case starlark.String:
		return string(v), nil
	case starlark.Bytes:
		return []byte(v), nil
	case goValuer:
		return v.goValue(), nil
	case *starlark.List:
		return fromIterable(v, v.Len())
	case starlark.Tuple:
		return fromIterable(v, v.Len())
	case *starlark.Set:
		return fromIterable(v, v.Len())
	case *starlark.Dict:
		out := make(map[string]any, v.Len())
		for _, item := range v.Items() {
			k, ok := item[0].(starlark.String)
			if !ok {
				return nil, fmt.Errorf("a dict key must be a string to leave the engine, not %s", item[0].Type())
			}
			x, err := FromStarlark(item[1])
			if err != nil {
				return nil, fmt.Errorf("key %q: %w", string(k), err)
			}
			out[string(k)] = x
		}
		return out, nil
	}
	return nil, fmt.Errorf("a Starlark %s cannot leave the engine", v.Type())
}

func fromIterable(it starlark.Iterable, n int) ([]any, error) {
	out := make([]any, 0, n)
	iter := it.Iterate()
	defer iter.Done()
	var x starlark.Value
	for iter.Next(&x) {
		g, err := FromStarlark(x)
		if err != nil {
			return nil, fmt.Errorf("item %d: %w", len(out), err)
		}
		out = append(out, g)
	}
	return out, nil
}

// Opaque is a Go value without a Starlark form, such as a pushed value of
// a type cells do not know: cells can hold it and pass it to registered
// functions, and pull returns it unchanged, but cells cannot look inside.
type Opaque struct {
	V   any
	Why string // why it has no Starlark form
}

var _ goValuer = (*Opaque)(nil)

func (o *Opaque) goValue() any          { return o.V }
func (o *Opaque) String() string        { return "<opaque: " + o.Why + ">" }
func (o *Opaque) Type() string          { return "opaque" }
func (o *Opaque) Freeze()               {}
func (o *Opaque) Truth() starlark.Bool  { return true }
func (o *Opaque) Hash() (uint32, error) { return 0, fmt.Errorf("unhashable type: opaque") }
