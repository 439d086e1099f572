package engine_test

import (
	"strings"
	"testing"

	"github.com/ipcluster/ipcluster/engine"
)

func TestExposeRefuses(t *testing.T) {
	e, err := engine.New(engine.Options{})
	if err != nil {
		t.Fatal(err)
	}
	var (
		dt    float64
		field = make([]float64, 6)
		names []string
		m     map[string]int
		ptr   *float64
	)
	if err := e.Expose("dt", &dt); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		ptr  any
		opts []engine.ExposeOption
		want string
	}{
		{"", &dt, nil, "empty name"},
		{"dt", &dt, nil, "already exposed"},
		{"v", dt, nil, "want a non-nil pointer"},
		{"v", ptr, nil, "want a non-nil pointer"},
		{"v", &names, nil, "cannot expose a []string"},
		{"v", &m, nil, "cannot expose a map[string]int"},
		{"v", &field, []engine.ExposeOption{engine.Shape(4, 2)}, "shape [4 2] holds 8 elements, the slice has 6"},
		{"v", &dt, []engine.ExposeOption{engine.Shape(1)}, "a shape is for slices"},
	} {
		err := e.Expose(tc.name, tc.ptr, tc.opts...)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Expose(%q, %T) = %v, want an error containing %q", tc.name, tc.ptr, err, tc.want)
		}
	}
	if err := e.Expose("field", &field, engine.Shape(3, 2)); err != nil {
		t.Errorf("Expose of a 3x2 field: %v", err)
	}
}

// BenchmarkSteerIdle is a steering point with nothing to do.
func BenchmarkSteerIdle(b *testing.B) {
	e, err := engine.New(engine.Options{})
	if err != nil {
		b.Fatal(err)
	}
	var x float64
	e.Expose("x", &x)
	for i := 0; b.Loop(); i++ {
		e.Steer(i)
	}
}
