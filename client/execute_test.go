package client_test

import (
	"context"
	"errors"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ipcluster/ipcluster/client"
)

// Cells run on each engine in a namespace they share with push and pull,
// print to the client as they run, end with a value, and can call
// registered functions; Apply calls functions that cells define.
func TestExecute(t *testing.T) {
	ctx := ctx(t)
	_, c := start(t, 2)
	dv := c.DirectView(client.All)
	ids := c.IDs()

	r, err := dv.Execute(ctx, "x = engine.id * 10\nprint('engine', engine.id, 'has', x)\nx + 1")
	if err != nil {
		t.Fatal(err)
	}
	vals, err := client.Results[int](ctx, r)
	if err != nil {
		t.Fatal(err)
	}
	for i, md := range r.Metadata() {
		id := ids[i]
		if vals[id] != 10*id+1 || md.Stdout != "engine "+itoa(id)+" has "+itoa(10*id)+"\n" {
			t.Errorf("engine %d: value %d, printed %q", id, vals[id], md.Stdout)
		}
	}

	// Push and pull share the namespace with cells; arrays stay arrays.
	if _, err := mustWait(dv.Push(ctx, map[string]any{"xs": []float64{1, 2, 3}})); err != nil {
		t.Fatal(err)
	}
	r, _ = dv.Execute(ctx, "ys = xs.tolist() + [xs.sum()]\nxs[0] = 100.0")
	if err := r.Wait(ctx); err != nil {
		t.Fatal(err)
	}
	r, _ = dv.Pull(ctx, "xs")
	xs, err := client.Results[[]float64](ctx, r)
	if err != nil || !slices.Equal(xs[ids[0]], []float64{100, 2, 3}) {
		t.Errorf("pulled xs = %v, %v", xs, err)
	}
	r, _ = dv.Pull(ctx, "ys")
	ys, err := client.Results[[]float64](ctx, r)
	if err != nil || !slices.Equal(ys[ids[1]], []float64{1, 2, 3, 6}) {
		t.Errorf("pulled ys = %v, %v", ys, err)
	}

	// Registered functions, by attribute and by name; Starlark functions
	// by Apply and Map.
	r, _ = dv.Execute(ctx, "def cube(n):\n    return n * n * n\n[fn.square(4), call('add', 1.5, 2.0), cube(2)]")
	both, err := client.Results[[]float64](ctx, r)
	if err != nil || !reflect.DeepEqual(both[ids[0]], []float64{16, 3.5, 8}) {
		t.Errorf("calls from a cell = %v, %v", both, err)
	}
	r, _ = dv.Apply(ctx, "cube", 3)
	if cubes, err := client.Results[int](ctx, r); err != nil || cubes[ids[1]] != 27 {
		t.Errorf("Apply of a Starlark function = %v, %v", cubes, err)
	}
	m, err := c.LoadBalancedView().Map(ctx, "cube", []int{1, 2, 3})
	if err != nil {
		t.Fatal(err)
	}
	if got, err := client.Collect[int](ctx, m); err != nil || !slices.Equal(got, []int{1, 8, 27}) {
		t.Errorf("Map of a Starlark function = %v, %v", got, err)
	}

	// Errors come back with the cell's line and the backtrace.
	r, _ = c.DirectView(client.Engines(ids[0])).ExecuteNamed(ctx, "setup.star", "a = 1\nb = [1][3]")
	_, err = r.Value(ctx)
	var re *client.RemoteError
	if !errors.As(err, &re) || re.Type != "StarlarkError" || !strings.Contains(re.Message, "setup.star:2:") ||
		!strings.Contains(re.Message, "b = [1][3]") || !strings.Contains(re.Traceback, "setup.star:2") {
		t.Errorf("a failing cell: %#v", err)
	}
	r, _ = c.DirectView(client.Engines(ids[0])).Execute(ctx, "b = (")
	if _, err := r.Value(ctx); !errors.As(err, &re) || re.Type != "SyntaxError" || !strings.Contains(re.Message, "<cell ") {
		t.Errorf("a cell that does not parse: %v", err)
	}
}

// An interrupt ends a cell that would run forever, on every engine.
func TestExecuteInterrupt(t *testing.T) {
	ctx := ctx(t)
	_, c := start(t, 2)
	dv := c.DirectView(client.All)
	r, err := dv.Execute(ctx, "print('looping')\nwhile True:\n    pass")
	if err != nil {
		t.Fatal(err)
	}
	// Each engine has started the loop once it printed.
	for _, id := range c.IDs() {
		waitPrinted(t, r, id, "looping")
	}
	if err := dv.Interrupt(ctx); err != nil {
		t.Fatal(err)
	}
	_, err = r.Get(ctx)
	var ce *client.CompositeError
	if !errors.As(err, &ce) || len(ce.Errors) != 2 || !strings.Contains(err.Error(), "Interrupted") {
		t.Fatalf("interrupted cells: %v", err)
	}
	// The engines serve again.
	r, _ = dv.Execute(ctx, "1 + 1")
	if vals, err := client.Results[int](ctx, r); err != nil || len(vals) != 2 {
		t.Errorf("after the interrupt: %v, %v", vals, err)
	}
}

func itoa(n int) string { return strconv.Itoa(n) }

// mustWait waits for a call made with err.
func mustWait(r *client.AsyncResult, err error) (*client.AsyncResult, error) {
	if err != nil {
		return nil, err
	}
	return r, r.Wait(context.Background())
}

// waitPrinted waits until engine id's task of r has printed text.
func waitPrinted(t *testing.T, r *client.AsyncResult, id int, text string) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		for _, md := range r.Metadata() {
			if md.Engine == id && strings.Contains(md.Stdout, text) {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("engine %d never printed %q", id, text)
		}
		time.Sleep(time.Millisecond) // polling a condition
	}
}

// A pushed value without a Starlark form stays as it came: cells see it as
// opaque, and Pull returns it unchanged.
func TestExecuteOpaque(t *testing.T) {
	ctx := ctx(t)
	_, c := start(t, 1)
	dv := c.DirectView(client.All)
	if _, err := mustWait(dv.Push(ctx, map[string]any{"m": map[int]string{1: "a", 2: "b"}})); err != nil {
		t.Fatal(err)
	}
	r, _ := dv.Execute(ctx, "type(m)")
	if v, err := r.Value(ctx); err != nil || v != "opaque" {
		t.Errorf("type(m) = %v, %v", v, err)
	}
	r, _ = dv.Pull(ctx, "m")
	got, err := client.Result[map[int]string](ctx, r)
	if err != nil || !reflect.DeepEqual(got, map[int]string{1: "a", 2: "b"}) {
		t.Errorf("pulled m = %v, %v", got, err)
	}
	r, _ = dv.Execute(ctx, "m")
	if got, err := r.Value(ctx); err != nil || !reflect.DeepEqual(got, map[any]any{int64(1): "a", int64(2): "b"}) {
		t.Errorf("a cell ending with an opaque value: %#v, %v", got, err)
	}
}
