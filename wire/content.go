package wire

import (
	"bytes"
	"fmt"

	"github.com/vmihailenco/msgpack/v5"
)

// Content schemas. Work requests and task replies, the hot path, are
// encoded by hand; control messages are structs encoded by reflection.

// readFields walks a MessagePack map, handing each key and the input at
// its value to field, which returns the input after the value. Unknown
// keys are for field to refuse.
func readFields(what string, raw []byte, field func(key string, b []byte) ([]byte, error)) error {
	n, b, err := readMapHeader(raw)
	if err != nil {
		return fmt.Errorf("%w: %s content: %v", ErrMalformed, what, err)
	}
	if n > len(b)/2 {
		return fmt.Errorf("%w: %s content of %d fields in %d bytes", ErrMalformed, what, n, len(b))
	}
	seen := make(map[string]bool, n)
	for range n {
		var kb []byte
		if kb, b, err = readStrBytes(b); err != nil {
			return fmt.Errorf("%w: %s content key: %v", ErrMalformed, what, err)
		}
		key := string(kb)
		if seen[key] {
			return fmt.Errorf("%w: %s content field %q appears twice", ErrMalformed, what, key)
		}
		seen[key] = true
		if b, err = field(key, b); err != nil {
			return fmt.Errorf("%w: %s content field %q: %v", ErrMalformed, what, key, err)
		}
	}
	if len(b) != 0 {
		return fmt.Errorf("%w: %d bytes after the %s content", ErrMalformed, len(b), what)
	}
	return nil
}

func unknownField(key string) error { return fmt.Errorf("unknown field %q", key) }

func appendValues(b []byte, bufs *[][]byte, vs []any) ([]byte, error) {
	b = appendArrayHeader(b, len(vs))
	for i, v := range vs {
		var err error
		if b, err = AppendValue(b, bufs, v); err != nil {
			return nil, fmt.Errorf("value %d: %w", i, err)
		}
	}
	return b, nil
}

func readValues(b []byte, bufs [][]byte) ([]Value, []byte, error) {
	raw, rest, err := readRaw(b)
	if err != nil {
		return nil, b, err
	}
	vs, err := ValueList(raw, bufs)
	return vs, rest, err
}

// EncodeApply returns the content and buffers of an Apply request that
// calls fn with args.
func EncodeApply(fn string, args []any) ([]byte, [][]byte, error) {
	var bufs [][]byte
	b := appendMapHeader(make([]byte, 0, 32+len(fn)), 2)
	b = appendStr(b, "f")
	b = appendStr(b, fn)
	b = appendStr(b, "a")
	b, err := appendValues(b, &bufs, args)
	if err != nil {
		return nil, nil, fmt.Errorf("argument: %w", err)
	}
	return b, bufs, nil
}

// DecodeApply reads an Apply request.
func DecodeApply(m *Message) (fn string, args []Value, err error) {
	return decodeCall(m, "apply", "a")
}

// decodeCall reads a function name under "f" and a list of values under
// listKey: the content of Apply and Map requests.
func decodeCall(m *Message, what, listKey string) (fn string, vals []Value, err error) {
	err = readFields(what, m.Content, func(key string, b []byte) ([]byte, error) {
		var rest []byte
		var err error
		switch key {
		case "f":
			fn, rest, err = readStr(b)
		case listKey:
			vals, rest, err = readValues(b, m.Buffers)
		default:
			return b, unknownField(key)
		}
		return rest, err
	})
	if err == nil && fn == "" {
		err = fmt.Errorf("%w: %s names no function", ErrMalformed, what)
	}
	return fn, vals, err
}

// EncodeMap returns the content and buffers of a Map request that calls
// fn once for each item.
func EncodeMap(fn string, items []any) ([]byte, [][]byte, error) {
	var bufs [][]byte
	b := appendMapHeader(make([]byte, 0, 32+len(fn)+9*len(items)), 2)
	b = appendStr(b, "f")
	b = appendStr(b, fn)
	b = appendStr(b, "i")
	b, err := appendValues(b, &bufs, items)
	if err != nil {
		return nil, nil, fmt.Errorf("map item: %w", err)
	}
	return b, bufs, nil
}

// DecodeMap reads a Map request.
func DecodeMap(m *Message) (fn string, items []Value, err error) {
	return decodeCall(m, "map", "i")
}

// EncodePush returns the content and buffers of a Push request that
// assigns values[i] to names[i].
func EncodePush(names []string, values []any) ([]byte, [][]byte, error) {
	if len(names) != len(values) {
		return nil, nil, fmt.Errorf("wire: %d names for %d values", len(names), len(values))
	}
	var bufs [][]byte
	b := appendMapHeader(nil, 1)
	b = appendStr(b, "ns")
	b = appendMapHeader(b, len(names))
	for i, name := range names {
		if name == "" {
			return nil, nil, fmt.Errorf("wire: push of an empty name")
		}
		b = appendStr(b, name)
		var err error
		if b, err = AppendValue(b, &bufs, values[i]); err != nil {
			return nil, nil, fmt.Errorf("variable %q: %w", name, err)
		}
	}
	return b, bufs, nil
}

// DecodePush reads a Push request.
func DecodePush(m *Message) (names []string, values []Value, err error) {
	err = readFields("push", m.Content, func(key string, b []byte) ([]byte, error) {
		if key != "ns" {
			return b, unknownField(key)
		}
		n, b, err := readMapHeader(b)
		if err != nil {
			return b, err
		}
		if n > len(b) {
			return b, fmt.Errorf("%d names in %d bytes", n, len(b))
		}
		for range n {
			var name string
			var raw []byte
			if name, b, err = readStr(b); err != nil {
				return b, err
			}
			if name == "" {
				return b, fmt.Errorf("empty variable name")
			}
			if raw, b, err = readRaw(b); err != nil {
				return b, fmt.Errorf("variable %q: %v", name, err)
			}
			names = append(names, name)
			values = append(values, Value{Raw: raw, Buffers: m.Buffers})
		}
		return b, nil
	})
	return names, values, err
}

// EncodePull returns the content of a Pull request for names.
func EncodePull(names []string) []byte {
	b := appendMapHeader(nil, 1)
	b = appendStr(b, "n")
	b = appendArrayHeader(b, len(names))
	for _, n := range names {
		b = appendStr(b, n)
	}
	return b
}

// DecodePull reads a Pull request.
func DecodePull(m *Message) (names []string, err error) {
	err = readFields("pull", m.Content, func(key string, b []byte) ([]byte, error) {
		if key != "n" {
			return b, unknownField(key)
		}
		n, b, err := readArrayHeader(b)
		if err != nil {
			return b, err
		}
		if n > len(b) {
			return b, fmt.Errorf("%d names in %d bytes", n, len(b))
		}
		names = make([]string, n)
		for i := range names {
			if names[i], b, err = readStr(b); err != nil {
				return b, err
			}
		}
		return b, nil
	})
	return names, err
}

// EncodeExecute returns the content of an Execute request: a Starlark code
// cell, and the file name that errors and backtraces give it ("" lets the
// engine name it).
func EncodeExecute(file, code string) []byte {
	n := 1
	if file != "" {
		n = 2
	}
	b := appendMapHeader(make([]byte, 0, 16+len(file)+len(code)), n)
	b = appendStr(b, "c")
	b = appendStr(b, code)
	if file != "" {
		b = appendStr(b, "n")
		b = appendStr(b, file)
	}
	return b
}

// DecodeExecute reads an Execute request.
func DecodeExecute(m *Message) (file, code string, err error) {
	seen := false
	err = readFields("execute", m.Content, func(key string, b []byte) ([]byte, error) {
		var rest []byte
		var err error
		switch key {
		case "c":
			code, rest, err = readStr(b)
			seen = true
		case "n":
			file, rest, err = readStr(b)
		default:
			return b, unknownField(key)
		}
		return rest, err
	})
	if err == nil && !seen {
		err = fmt.Errorf("%w: execute has no code", ErrMalformed)
	}
	return file, code, err
}

// EncodeResult returns the content and buffers of a successful task reply
// carrying one value.
func EncodeResult(v any) ([]byte, [][]byte, error) {
	var bufs [][]byte
	b := appendMapHeader(make([]byte, 0, 16), 1)
	b = appendStr(b, "r")
	b, err := AppendValue(b, &bufs, v)
	return b, bufs, err
}

// EncodeResults returns the content and buffers of a successful task reply
// carrying a list of values, one per map item or pulled name.
func EncodeResults(vs []any) ([]byte, [][]byte, error) {
	var bufs [][]byte
	b := appendMapHeader(make([]byte, 0, 16+9*len(vs)), 1)
	b = appendStr(b, "rs")
	b, err := appendValues(b, &bufs, vs)
	return b, bufs, err
}

// Result is the payload of a successful task reply: one value (Apply) or a
// list (Map, Pull); Push and Clear carry neither.
type Result struct {
	Value *Value
	List  []Value
}

// DecodeResult reads the content of a successful task reply.
func DecodeResult(m *Message) (Result, error) {
	var r Result
	if m.Content == nil {
		return r, nil
	}
	err := readFields("result", m.Content, func(key string, b []byte) ([]byte, error) {
		switch key {
		case "r":
			raw, rest, err := readRaw(b)
			r.Value = &Value{Raw: raw, Buffers: m.Buffers}
			return rest, err
		case "rs":
			var rest []byte
			var err error
			r.List, rest, err = readValues(b, m.Buffers)
			return rest, err
		}
		return b, unknownField(key)
	})
	return r, err
}

// ErrorInfo describes an error raised on an engine or by the controller.
type ErrorInfo struct {
	Type      string `msgpack:"et"`           // a short class name, e.g. "KeyError", "EngineError"
	Message   string `msgpack:"em"`           // the error text
	Traceback string `msgpack:"tb,omitempty"` // the remote stack, if any
}

// OutputChunk is the content of an Output message.
type OutputChunk struct {
	Stream string `msgpack:"n"` // "stdout" or "stderr"
	Data   []byte `msgpack:"d"`
}

// EncodeContent encodes a control content by reflection.
func EncodeContent(v any) ([]byte, error) {
	b, err := msgpackAppend(nil, v)
	if err != nil {
		return nil, err
	}
	return b, nil
}

// DecodeContent decodes the content of m into the struct v points to,
// refusing unknown fields.
func DecodeContent(m *Message, v any) error {
	if m.Content == nil {
		return fmt.Errorf("%w: %s has no content", ErrMalformed, m.Type)
	}
	if rest, err := skip(m.Content); err != nil || len(rest) != 0 {
		return fmt.Errorf("%w: %s content is not one MessagePack value", ErrMalformed, m.Type)
	}
	r := bytes.NewReader(m.Content)
	d := msgpack.NewDecoder(r)
	d.DisallowUnknownFields(true)
	if err := d.Decode(v); err != nil {
		return fmt.Errorf("%w: %s content: %v", ErrMalformed, m.Type, err)
	}
	if r.Len() != 0 {
		return fmt.Errorf("%w: bytes after the %s content", ErrMalformed, m.Type)
	}
	return nil
}
