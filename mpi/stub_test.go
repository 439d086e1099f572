//go:build !mpi

package mpi

import (
	"errors"
	"slices"
	"testing"
)

func TestStub(t *testing.T) {
	if err := Allreduce(World(), []int{1}, []int{0}, Sum); !errors.Is(err, ErrNotInitialized) {
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
	if err := Allreduce(w, []float64{1, 2}, got, Max); err != nil || !slices.Equal(got, []float64{1, 2}) {
		t.Errorf("Allreduce = %v, %v", got, err)
	}
	if err := Gather(w, []float64{7}, got[:0], 0); err == nil {
		t.Error("Gather into a short buffer succeeded")
	}
	parts := make([]int32, 1)
	if err := Scatter(w, []int32{5}, parts, 0); err != nil || parts[0] != 5 {
		t.Errorf("Scatter = %v, %v", parts, err)
	}
	if err := Send(w, []int{1}, 0, 0); !errors.Is(err, ErrStub) {
		t.Errorf("Send in the stub: %v", err)
	}
	if err := Bcast(w, []int{1}, 1); err == nil {
		t.Error("Bcast from root 1 of 1 rank succeeded")
	}
	if err := Finalize(); err != nil {
		t.Fatal(err)
	}
	if _, err := InitThread(Serialized); !errors.Is(err, ErrFinalized) {
		t.Errorf("Init after Finalize: %v", err)
	}
}
