package engine

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"reflect"
	"strings"
	"testing"
	"unsafe"

	"github.com/ipcluster/ipcluster/wire"
)

// values encodes args as an apply request would carry them and decodes
// them back: the wire.Values a function call receives.
func values(t testing.TB, args ...any) []wire.Value {
	t.Helper()
	content, bufs, err := wire.EncodeApply("f", args)
	if err != nil {
		t.Fatal(err)
	}
	_, vs, err := wire.DecodeApply(&wire.Message{Content: content, Buffers: bufs})
	if err != nil {
		t.Fatal(err)
	}
	return vs
}

func mustFunction(t testing.TB, name string, fn any) *function {
	t.Helper()
	f, err := newFunction(name, fn)
	if err != nil {
		t.Fatal(err)
	}
	return f
}

func TestNewFunctionAccepts(t *testing.T) {
	intT, stringT := reflect.TypeFor[int](), reflect.TypeFor[string]()
	tests := []struct {
		name     string
		fn       any
		ctx      bool
		params   []reflect.Type
		variadic bool
		result   bool
		err      bool
		sig      string
	}{
		{"nothing", func() {}, false, nil, false, false, false, "nothing()"},
		{"error", func(int) error { return nil }, false, []reflect.Type{intT}, false, false, true, "error(int)"},
		{"value", func(string) int { return 0 }, false, []reflect.Type{stringT}, false, true, false, "value(string)"},
		{"value_error", func(int, string) (int, error) { return 0, nil }, false, []reflect.Type{intT, stringT}, false, true, true, "value_error(int, string)"},
		{"ctx", func(context.Context) {}, true, nil, false, false, false, "ctx()"},
		{"ctx_value", func(context.Context, int) (string, error) { return "", nil }, true, []reflect.Type{intT}, false, true, true, "ctx_value(int)"},
		{"variadic", func(...int) int { return 0 }, false, []reflect.Type{reflect.TypeFor[[]int]()}, true, true, false, "variadic(...int)"},
		{"ctx_variadic", func(context.Context, string, ...float64) error { return nil }, true,
			[]reflect.Type{stringT, reflect.TypeFor[[]float64]()}, true, false, true, "ctx_variadic(string, ...float64)"},
		{"raw", func(wire.Value) wire.Value { return wire.Value{} }, false, []reflect.Type{valueType}, false, true, false, "raw(wire.Value)"},
		{"error_value", func() (error, error) { return nil, nil }, false, nil, false, true, true, "error_value()"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f, err := newFunction(tt.name, tt.fn)
			if err != nil {
				t.Fatal(err)
			}
			if f.name != tt.name || f.ctx != tt.ctx || f.variadic != tt.variadic || f.result != tt.result || f.err != tt.err {
				t.Errorf("function = {ctx %v variadic %v result %v err %v}, want {%v %v %v %v}",
					f.ctx, f.variadic, f.result, f.err, tt.ctx, tt.variadic, tt.result, tt.err)
			}
			if !reflect.DeepEqual(f.params, tt.params) {
				t.Errorf("params = %v, want %v", f.params, tt.params)
			}
			if got := f.signature(); got != tt.sig {
				t.Errorf("signature() = %q, want %q", got, tt.sig)
			}
		})
	}
}

func TestNewFunctionRejects(t *testing.T) {
	tests := []struct {
		name string
		fn   any
		want string
	}{
		{"not a func", 42, "int is not a function"},
		{"a string", "echo", "string is not a function"},
		{"untyped nil", nil, "is not a function"},
		{"nil func", (func(int) int)(nil), "is nil"},
		{"ctx not first", func(int, context.Context) {}, "context.Context must be the first parameter"},
		{"second ctx", func(context.Context, context.Context) {}, "context.Context must be the first parameter"},
		{"three results", func() (int, int, error) { return 0, 0, nil }, "results must be (), (error), (T) or (T, error)"},
		{"error first", func() (error, int) { return nil, 0 }, "results must be (), (error), (T) or (T, error)"},
		{"two values", func() (int, string) { return 0, "" }, "results must be (), (error), (T) or (T, error)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f, err := newFunction("myfunc", tt.fn)
			if err == nil {
				t.Fatalf("newFunction accepted %T: %+v", tt.fn, f)
			}
			if !strings.Contains(err.Error(), "myfunc") || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("error %q does not name the function and say %q", err, tt.want)
			}
		})
	}
	if _, err := newFunction("", func() {}); err == nil || !strings.Contains(err.Error(), "name") {
		t.Fatalf("a function without a name: %v", err)
	}
}

// asTaskError checks that err is a *taskError of the kind, whose message
// contains every one of want.
func asTaskError(t *testing.T, err error, kind string, want ...string) *taskError {
	t.Helper()
	var te *taskError
	if !errors.As(err, &te) {
		t.Fatalf("err = %#v, want a *taskError", err)
	}
	if te.kind != kind {
		t.Fatalf("kind = %q (%v), want %q", te.kind, te, kind)
	}
	for _, w := range want {
		if !strings.Contains(te.msg, w) {
			t.Fatalf("message %q does not contain %q", te.msg, w)
		}
	}
	return te
}

func TestCallArity(t *testing.T) {
	add := mustFunction(t, "add", func(a, b float64) float64 { return a + b })
	one := mustFunction(t, "neg", func(a float64) float64 { return -a })
	join := mustFunction(t, "join", func(ctx context.Context, sep string, xs ...string) string { return strings.Join(xs, sep) })
	atLeastTwo := mustFunction(t, "pair", func(a string, b int, rest ...int) {})
	tests := []struct {
		f    *function
		args []any
		want string
	}{
		{add, nil, "add(float64, float64) takes 2 arguments, got 0"},
		{add, []any{1.0}, "add(float64, float64) takes 2 arguments, got 1"},
		{add, []any{1.0, 2.0, 3.0}, "add(float64, float64) takes 2 arguments, got 3"},
		{one, []any{1.0, 2.0}, "neg(float64) takes 1 argument, got 2"},
		{join, nil, "join(string, ...string) takes at least 1 argument, got 0"},
		{atLeastTwo, []any{"x"}, "pair(string, int, ...int) takes at least 2 arguments, got 1"},
	}
	for _, tt := range tests {
		_, err := tt.f.call(context.Background(), values(t, tt.args...))
		asTaskError(t, err, "TypeError", tt.want)
	}
}

func TestCallDecodeErrors(t *testing.T) {
	f := mustFunction(t, "f", func(n int, s string, xs []float64) {})
	tests := []struct {
		args []any
		want []string
	}{
		{[]any{"x", "s", []float64{1}}, []string{"argument 1 of f(int, string, []float64)", "int"}},
		{[]any{1, 2, []float64{1}}, []string{"argument 2 of f(int, string, []float64)", "string"}},
		{[]any{1, "s", []int32{1}}, []string{"argument 3 of f(int, string, []float64)", "int32", "[]float64"}},
		{[]any{1, "s", "not an array"}, []string{"argument 3 of f(int, string, []float64)", "[]float64"}},
	}
	for _, tt := range tests {
		_, err := f.call(context.Background(), values(t, tt.args...))
		asTaskError(t, err, "TypeError", tt.want...)
	}
	v := mustFunction(t, "v", func(s string, xs ...int) {})
	_, err := v.call(context.Background(), values(t, "a", 1, 2, "three"))
	asTaskError(t, err, "TypeError", "argument 4 of v(string, ...int)", "int")
	// A namespace reference must have been resolved before the call.
	_, err = mustFunction(t, "r", func(int) {}).call(context.Background(), values(t, wire.Ref("x")))
	asTaskError(t, err, "TypeError", "argument 1 of r(int)", "namespace reference")
}

func TestCallVariadic(t *testing.T) {
	f := mustFunction(t, "cat", func(ctx context.Context, prefix string, xs ...int) string {
		return fmt.Sprintf("%s%v%d", prefix, xs, len(xs))
	})
	for _, tt := range []struct {
		args []any
		want string
	}{
		{[]any{"p"}, "p[]0"},
		{[]any{"p", 1}, "p[1]1"},
		{[]any{"p", 1, 2, 3}, "p[1 2 3]3"},
	} {
		got, err := f.call(context.Background(), values(t, tt.args...))
		if err != nil || got != tt.want {
			t.Errorf("cat%v = %v, %v; want %q", tt.args, got, err, tt.want)
		}
	}
}

type ctxKey struct{}

func TestCallContext(t *testing.T) {
	f := mustFunction(t, "ctx", func(ctx context.Context) any { return ctx.Value(ctxKey{}) })
	ctx := context.WithValue(context.Background(), ctxKey{}, "the task's context")
	if got, err := f.call(ctx, nil); err != nil || got != "the task's context" {
		t.Fatalf("the function did not get the call's context: %v, %v", got, err)
	}
}

func TestCallRawValues(t *testing.T) {
	args := values(t, "s", map[string]any{"k": []any{1, "two"}}, []float64{1, 2})
	var got []wire.Value
	f := mustFunction(t, "raw", func(a, b wire.Value, rest ...wire.Value) {
		got = append([]wire.Value{a, b}, rest...)
	})
	if _, err := f.call(context.Background(), args); err != nil {
		t.Fatal(err)
	}
	if len(got) != len(args) {
		t.Fatalf("got %d values, want %d", len(got), len(args))
	}
	for i := range args {
		if unsafe.SliceData(got[i].Raw) != unsafe.SliceData(args[i].Raw) || len(got[i].Raw) != len(args[i].Raw) ||
			len(got[i].Buffers) != len(args[i].Buffers) {
			t.Errorf("value %d is not the argument as received", i)
		}
	}
	// The array is still an undecoded reference to its buffer.
	a, ok, err := got[2].Array()
	if err != nil || !ok || a.DType != wire.Float64 || a.Len() != 2 {
		t.Fatalf("raw array argument = %+v, %v, %v", a, ok, err)
	}
}

func TestCallSlicesWithoutCopy(t *testing.T) {
	type check struct {
		arg  any
		fn   any
		data func() unsafe.Pointer // the argument's memory
	}
	f64 := []float64{1.5, 2.5, 3.5}
	i64 := []int64{-1, 2, 3}
	i32 := []int32{4, 5}
	u8 := []byte("bytes")
	var seen unsafe.Pointer
	checks := []check{
		{f64, func(xs []float64) float64 { seen = unsafe.Pointer(unsafe.SliceData(xs)); xs[0] = 42; return xs[1] }, func() unsafe.Pointer { return unsafe.Pointer(&f64[0]) }},
		{i64, func(xs []int64) int64 { seen = unsafe.Pointer(unsafe.SliceData(xs)); return xs[0] }, func() unsafe.Pointer { return unsafe.Pointer(&i64[0]) }},
		{i32, func(xs []int32) int32 { seen = unsafe.Pointer(unsafe.SliceData(xs)); return xs[1] }, func() unsafe.Pointer { return unsafe.Pointer(&i32[0]) }},
		{u8, func(xs []byte) string { seen = unsafe.Pointer(unsafe.SliceData(xs)); return string(xs) }, func() unsafe.Pointer { return unsafe.Pointer(&u8[0]) }},
	}
	for _, c := range checks {
		seen = nil
		args := values(t, c.arg)
		if len(args[0].Buffers) != 1 {
			t.Fatalf("%T travelled in %d buffers", c.arg, len(args[0].Buffers))
		}
		buf := unsafe.Pointer(unsafe.SliceData(args[0].Buffers[0]))
		if _, err := mustFunction(t, "f", c.fn).call(context.Background(), args); err != nil {
			t.Fatal(err)
		}
		if seen != buf {
			t.Errorf("%T parameter was copied: %p, buffer at %p", c.arg, seen, buf)
		}
		if buf != c.data() {
			t.Errorf("the test's premise failed: the %T buffer does not view the slice", c.arg)
		}
	}
	if f64[0] != 42 {
		t.Errorf("a write through the parameter did not reach the buffer: %v", f64)
	}
}

// panicky panics, to be found in the stack of the task error.
func panicky(n int) int {
	var m map[int]int
	m[n] = n
	return n
}

func TestCallPanic(t *testing.T) {
	f := mustFunction(t, "boom", panicky)
	res, err := f.call(context.Background(), values(t, 1))
	if res != nil {
		t.Errorf("result of a panic = %v", res)
	}
	te := asTaskError(t, err, "Panic", "assignment to entry in nil map")
	if !strings.Contains(te.stack, "engine.panicky") || !strings.Contains(te.stack, "functions_test.go") {
		t.Errorf("the stack does not name the panicking function:\n%s", te.stack)
	}
	info := errorInfo(err)
	if info.Type != "Panic" || info.Traceback != te.stack {
		t.Errorf("errorInfo of a panic = %+v", info)
	}
	_, err = mustFunction(t, "panic_error", func() { panic(fs.ErrNotExist) }).call(context.Background(), nil)
	asTaskError(t, err, "Panic", "file does not exist")
}

var errSentinel = errors.New("sentinel")

func TestCallResults(t *testing.T) {
	ctx := context.Background()
	tests := []struct {
		name    string
		fn      any
		want    any
		wantErr error
	}{
		{"nothing", func() {}, nil, nil},
		{"nil error", func() error { return nil }, nil, nil},
		{"error", func() error { return errSentinel }, nil, errSentinel},
		{"value", func() string { return "v" }, "v", nil},
		{"value and nil error", func() (int, error) { return 7, nil }, 7, nil},
		{"value and error", func() (int, error) { return 7, errSentinel }, nil, errSentinel},
		{"wrapped", func() error { return fmt.Errorf("doing x: %w", errSentinel) }, nil, errSentinel},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := mustFunction(t, "f", tt.fn).call(ctx, nil)
			if !reflect.DeepEqual(got, tt.want) || !errors.Is(err, tt.wantErr) || (tt.wantErr == nil) != (err == nil) {
				t.Fatalf("call = %#v, %v; want %#v, %v", got, err, tt.want, tt.wantErr)
			}
		})
	}
	// The error is passed through as it is, not rewrapped.
	_, err := mustFunction(t, "f", func() error { return errSentinel }).call(ctx, nil)
	if err != errSentinel {
		t.Fatalf("err = %#v, want the function's error itself", err)
	}
}

type valueError struct{ reason string }

func (e valueError) Error() string     { return "bad value: " + e.reason }
func (e valueError) ErrorType() string { return "ValueError" }

type QuotaError struct{ Used, Limit int }

func (e QuotaError) Error() string { return fmt.Sprintf("quota: %d of %d", e.Used, e.Limit) }

type ptrError struct{ msg string }

func (e *ptrError) Error() string { return e.msg }

func TestErrorInfo(t *testing.T) {
	_, openErr := os.Open("/nonexistent/ipcluster")
	var nilPtr *ptrError
	tests := []struct {
		name     string
		err      error
		wantType string
		wantMsg  string
	}{
		{"type error", typeError("argument %d", 1), "TypeError", "argument 1"},
		{"name error", nameError("name %q", "x"), "NameError", `name "x"`},
		{"interrupted", errInterrupted, "Interrupted", "interrupted by a client"},
		{"stopping", errStopping, "EngineError", "the engine shut down"},
		{"wrapped task error", fmt.Errorf("ctx: %w", typeError("inner")), "TypeError", "inner"},
		{"typed", valueError{"negative"}, "ValueError", "bad value: negative"},
		{"wrapped typed", fmt.Errorf("step 2: %w", valueError{"nan"}), "ValueError", "step 2: bad value: nan"},
		{"errors.New", errors.New("plain"), "Error", "plain"},
		{"fmt.Errorf", fmt.Errorf("formatted %d", 1), "Error", "formatted 1"},
		{"fmt.Errorf %w", fmt.Errorf("wrapping: %w", errSentinel), "Error", "wrapping: sentinel"},
		{"fmt.Errorf two %w", fmt.Errorf("%w and %w", errSentinel, errSentinel), "Error", "sentinel and sentinel"},
		{"errors.Join", errors.Join(errSentinel, errors.New("other")), "Error", "sentinel\nother"},
		{"path error", &fs.PathError{Op: "open", Path: "/x", Err: fs.ErrNotExist}, "fs.PathError", "open /x: file does not exist"},
		{"os.Open", openErr, "fs.PathError", "/nonexistent/ipcluster"},
		{"struct value", QuotaError{3, 2}, "engine.QuotaError", "quota: 3 of 2"},
		{"struct pointer", &ptrError{"p"}, "engine.ptrError", "p"},
		{"context.Canceled", context.Canceled, "Error", "context canceled"},
		{"context.DeadlineExceeded", context.DeadlineExceeded, "Error", "context deadline exceeded"},
		{"wrapped context.Canceled", fmt.Errorf("waiting: %w", context.Canceled), "Error", "waiting: context canceled"},
		// A nil *T returned as an error: its Error method panics, and
		// describing the error must not take the engine down.
		{"nil pointer error", nilPtr, "engine.ptrError", "panicked"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			info := errorInfo(tt.err)
			if info.Type != tt.wantType || !strings.Contains(info.Message, tt.wantMsg) {
				t.Fatalf("errorInfo = %+v, want type %q and message with %q", info, tt.wantType, tt.wantMsg)
			}
		})
	}
	if info := errorInfo(&taskError{kind: "Panic", msg: "m", stack: "the stack"}); info.Traceback != "the stack" {
		t.Errorf("the traceback of a task error is lost: %+v", info)
	}
}

// A task ended by its engine's stop says why the engine stopped, and, in a
// batch job, what a signal there usually means.
func TestStoppingError(t *testing.T) {
	sig, stop := context.WithCancelCause(context.Background())
	stop(errors.New("terminated signal received"))
	plain, cancel := context.WithCancel(context.Background())
	cancel()
	for _, tc := range []struct {
		name string
		ctx  context.Context
		env  map[string]string
		want string
	}{
		{"asked", context.Background(), nil, "the engine shut down while the task ran"},
		{"cancelled", plain, nil, "the engine shut down while the task ran"},
		{"signal", sig, nil, "the engine shut down while the task ran (terminated signal received)"},
		{"slurm", sig, map[string]string{"SLURM_JOB_ID": "31"}, "(terminated signal received); it runs in SLURM job 31, which may have been cancelled or reached its time limit"},
		{"pbs", sig, map[string]string{"PBS_JOBID": "7.srv"}, "it runs in PBS job 7.srv, which may have been deleted or reached its walltime"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Setenv("SLURM_JOB_ID", "")
			t.Setenv("PBS_JOBID", "")
			for k, v := range tc.env {
				t.Setenv(k, v)
			}
			info := errorInfo(stoppingError(tc.ctx))
			if info.Type != "EngineError" || !strings.Contains(info.Message, tc.want) {
				t.Errorf("%+v, want an EngineError with %q", info, tc.want)
			}
		})
	}
}
