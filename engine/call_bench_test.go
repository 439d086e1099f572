package engine

import (
	"context"
	"testing"

	"github.com/ipcluster/ipcluster/wire"
)

func benchCall(b *testing.B, fn any, arg any) {
	f, err := newFunction("f", fn)
	if err != nil {
		b.Fatal(err)
	}
	raw, _ := wire.AppendValue(nil, nil, arg)
	args := []wire.Value{{Raw: raw}}
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := f.call(ctx, args); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkCallSquare(b *testing.B) { benchCall(b, func(x int) int { return x * x }, 12) }
func BenchmarkCallEcho(b *testing.B)   { benchCall(b, builtins()["echo"], 12) }
func BenchmarkCallCtxErr(b *testing.B) {
	benchCall(b, func(ctx context.Context, x float64) (float64, error) { return x, nil }, 1.5)
}
