package cell

import (
	"context"
	"errors"
	"reflect"
	"slices"
	"strings"
	"testing"

	"go.starlark.net/starlark"
)

func exec(t *testing.T, n *Namespace, code string) (any, []string) {
	t.Helper()
	var printed []string
	v, err := n.Exec(context.Background(), "cell.star", code, func(s string) { printed = append(printed, s) })
	if err != nil {
		t.Fatalf("%q: %v", code, err)
	}
	return v, printed
}

// Cells share a namespace, end with a value, and print as they go; the
// dialect is Python-like.
func TestExec(t *testing.T) {
	n := NewNamespace(starlark.StringDict{"answer": starlark.MakeInt(42)})
	for _, tc := range []struct {
		code    string
		want    any
		printed []string
	}{
		{"x = 10", nil, nil},
		{"x * answer", int64(420), nil},
		{"print('x is', x)\nx + 1", int64(11), []string{"x is 10"}},
		{"i = 0\nwhile i < 3:\n    i += 1\ni", int64(3), nil},
		{"def fib(k):\n    return k if k < 2 else fib(k-1) + fib(k-2)\nfib(15)", int64(610), nil},
		{"s = set([1, 2, 2])\nlen(s)", int64(2), nil},
		{"x = 'again'\nx", "again", nil},
		{"for k in range(2):\n    print(k)", nil, []string{"0", "1"}},
		{"{'a': [1, 2.5, None], 'b': b'\\x00'}", map[string]any{"a": []any{int64(1), 2.5, nil}, "b": []byte{0}}, nil},
		{"(1, True)", []any{int64(1), true}, nil},
		{"print('no value')", nil, []string{"no value"}},
	} {
		got, printed := exec(t, n, tc.code)
		if !reflect.DeepEqual(got, tc.want) || !slices.Equal(printed, tc.printed) {
			t.Errorf("%q = %#v printing %q; want %#v printing %q", tc.code, got, printed, tc.want, tc.printed)
		}
	}
	if names := n.Names(); !slices.Equal(names, []string{"_", "fib", "i", "k", "s", "x"}) {
		t.Errorf("Names() = %v", names)
	}
	n.Clear()
	if names := n.Names(); len(names) != 0 {
		t.Errorf("after Clear: %v", names)
	}
	if v, _ := exec(t, n, "answer"); v != int64(42) {
		t.Errorf("the builtins are gone after Clear: %v", v)
	}
}

// Errors name what failed, where, with the offending line.
func TestErrors(t *testing.T) {
	n := NewNamespace(nil)
	if _, err := n.Exec(context.Background(), "defs.star", "def f(d):\n    return 1 // d", func(string) {}); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		code      string
		kind      string
		message   []string
		backtrace string
	}{
		{"x = (1,", "SyntaxError", []string{"cell.star:1:", "x = (1,"}, ""},
		{"y = undefined + 1", "NameError", []string{"cell.star:1:5: undefined: undefined", "y = undefined + 1", "    ^"}, ""},
		{"a = 1\nb = f(0)", "StarlarkError", []string{"defs.star:2:14: floored division by zero", "return 1 // d"}, "cell.star:2:6: in <toplevel>"},
		{"[1][5]", "StarlarkError", []string{"index 5 out of range"}, "cell.star:1"},
	} {
		_, err := n.Exec(context.Background(), "cell.star", tc.code, func(string) {})
		var ce *Error
		if !errors.As(err, &ce) || ce.Kind != tc.kind {
			t.Errorf("%q: error %v, want a %s", tc.code, err, tc.kind)
			continue
		}
		for _, want := range tc.message {
			if !strings.Contains(ce.Message, want) {
				t.Errorf("%q: message %q lacks %q", tc.code, ce.Message, want)
			}
		}
		if !strings.Contains(ce.Backtrace, tc.backtrace) {
			t.Errorf("%q: backtrace %q lacks %q", tc.code, ce.Backtrace, tc.backtrace)
		}
	}
	// What a failing cell assigned before failing stays.
	if v, _, _ := n.Get("a"); v != int64(1) {
		t.Errorf("a = %v after the failed cell", v)
	}
}

// A cell that never ends ends with its context, with the context's cause.
func TestCancel(t *testing.T) {
	n := NewNamespace(nil)
	cause := errors.New("interrupted by a client")
	ctx, cancel := context.WithCancelCause(context.Background())
	started := make(chan struct{})
	n.globals["started"] = starlark.NewBuiltin("started", func(*starlark.Thread, *starlark.Builtin, starlark.Tuple, []starlark.Tuple) (starlark.Value, error) {
		close(started)
		return starlark.None, nil
	})
	done := make(chan error)
	go func() {
		_, err := n.Exec(ctx, "cell.star", "started()\nwhile True:\n    pass", func(string) {})
		done <- err
	}()
	<-started
	cancel(cause)
	if err := <-done; err != cause {
		t.Fatalf("Exec = %v, want the context's cause", err)
	}
}

// Arrays are Go slices seen from Starlark, not copies.
func TestArrays(t *testing.T) {
	n := NewNamespace(nil)
	xs := []float64{1, 2, 3, 4}
	n.Set("x", xs)
	for _, tc := range []struct {
		code string
		want any
	}{
		{"len(x)", int64(4)},
		{"x.sum()", 10.0},
		{"x[1:3].sum()", 5.0},
		{"x[::2].tolist()", []any{1.0, 3.0}},
		{"x.mean()", 2.5},
		{"[x.min(), x.max()]", []any{1.0, 4.0}},
		{"x[-1]", 4.0},
		{"x.dtype", "float64"},
		{"[v * 2 for v in x]", []any{2.0, 4.0, 6.0, 8.0}},
		{"x[0] = 10\nx[0]", 10.0},
	} {
		if got, _ := exec(t, n, tc.code); !reflect.DeepEqual(got, tc.want) {
			t.Errorf("%q = %#v, want %#v", tc.code, got, tc.want)
		}
	}
	if xs[0] != 10 {
		t.Errorf("assigning x[0] in a cell did not change the Go slice: %v", xs)
	}
	got, _, err := n.Get("x")
	if g, ok := got.([]float64); err != nil || !ok || &g[0] != &xs[0] {
		t.Errorf("Get(x) = %T, %v: want the same slice", got, err)
	}
	ints := []int32{5, -2}
	n.Set("k", ints)
	if v, _ := exec(t, n, "k.sum() + k.min()"); v != int64(1) {
		t.Errorf("int32 array: %v", v)
	}
	for code, want := range map[string]string{
		"k[0] = 1.5":  "does not fit",
		"k[0] = 'a'":  "must be a number",
		"{x: 1}":      "unhashable",
		"x.median()":  "has no .median",
		"k[:0].min()": "min of an empty array",
		"x + x":       "unknown binary op",
	} {
		_, err := n.Exec(context.Background(), "cell.star", code, func(string) {})
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: %v, want an error with %q", code, err, want)
		}
	}
}

// Every Go type the wire delivers has a Starlark form and comes back as it
// went.
func TestConversions(t *testing.T) {
	for _, v := range []any{
		nil, true, false, int64(-7), uint64(1 << 63), 2.5, "text", []byte("raw"),
		[]any{int64(1), "a", []any{nil}}, map[string]any{"k": []any{1.5}},
		[]float64{1, 2}, []float32{1}, []int64{3}, []int32{4}, []int16{5}, []int8{6},
		[]uint64{7}, []uint32{8}, []uint16{9}, []int{10}, []uint{11},
	} {
		sv, err := ToStarlark(v)
		if err != nil {
			t.Errorf("ToStarlark(%#v): %v", v, err)
			continue
		}
		back, err := FromStarlark(sv)
		if err != nil || !reflect.DeepEqual(back, v) {
			t.Errorf("%#v came back as %#v, %v", v, back, err)
		}
	}
	if _, err := ToStarlark(struct{}{}); err == nil {
		t.Error("a struct converted")
	}
	for _, sv := range []starlark.Value{
		starlark.NewDict(0), // empty: fine
	} {
		if _, err := FromStarlark(sv); err != nil {
			t.Error(err)
		}
	}
	bad := starlark.NewDict(1)
	bad.SetKey(starlark.MakeInt(1), starlark.None)
	if _, err := FromStarlark(bad); err == nil || !strings.Contains(err.Error(), "must be a string") {
		t.Errorf("a dict with an int key: %v", err)
	}
	huge := starlark.MakeInt(1).Lsh(70)
	if _, err := FromStarlark(huge); err == nil || !strings.Contains(err.Error(), "does not fit 64 bits") {
		t.Errorf("2**70: %v", err)
	}
	if _, err := FromStarlark(starlark.NewBuiltin("f", nil)); err == nil || !strings.Contains(err.Error(), "builtin_function_or_method cannot leave") {
		t.Errorf("a builtin: %v", err)
	}
}
