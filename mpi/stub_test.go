//go:build !mpi

package mpi

import (
	"context"
	"errors"
	"slices"
	"testing"
)

func TestStub(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background()) // a ctx that can end: the nonblocking path
	defer cancel()
	if err := Allreduce(ctx, World(), []int{1}, []int{0}, Sum); !errors.Is(err, ErrNotInitialized) {
		t.Fatalf("a call before Init: %v", err)
	}
	if err := Init(); err != nil {
		t.Fatal(err)
	}
	w := World()
	if w.Rank() != 0 || w.Size() != 1 {
		t.Fatalf("the stub's world is rank %d of %d", w.Rank(), w.Size())
	}
	got := make([]float64, 2)
	if err := Allreduce(ctx, w, []float64{1, 2}, got, Max); err != nil || !slices.Equal(got, []float64{1, 2}) {
		t.Errorf("Allreduce = %v, %v", got, err)
	}
	if err := Gather(ctx, w, []float64{7}, got[:0], 0); err == nil {
		t.Error("Gather into a short buffer succeeded")
	}
	parts := make([]int32, 1)
	if err := Scatter(ctx, w, []int32{5}, parts, 0); err != nil || parts[0] != 5 {
		t.Errorf("Scatter = %v, %v", parts, err)
	}
	if err := Send(ctx, w, []int{1}, 0, 0); !errors.Is(err, ErrStub) {
		t.Errorf("Send in the stub: %v", err)
	}
	if err := Bcast(ctx, w, []int{1}, 1); err == nil {
		t.Error("Bcast from root 1 of 1 rank succeeded")
	}
	for _, ctx := range []context.Context{context.Background(), ctx} {
		if err := Allreduce(ctx, w, got, got, Sum); err != nil || w.Barrier(ctx) != nil {
			t.Errorf("Allreduce in place: %v", err)
		}
	}
	if err := Finalize(); err != nil {
		t.Fatal(err)
	}
	if _, err := InitThread(Serialized); !errors.Is(err, ErrFinalized) {
		t.Errorf("Init after Finalize: %v", err)
	}
}
