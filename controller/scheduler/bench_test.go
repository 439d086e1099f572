package scheduler

import (
	"fmt"
	"strconv"
	"testing"
	"time"
)

// BenchmarkSubmitFinished measures one Submit and one Finished, with their
// actions drained, per op. "idle": every task is placed at once on the best
// of E engines. "saturated": all engines are full and a backlog waits, so
// each Finished hands the freed slot to the next pending task.
func BenchmarkSubmitFinished(b *testing.B) {
	for _, engines := range []int{2, 100, 10_000} {
		for _, saturated := range []bool{false, true} {
			name := fmt.Sprintf("engines=%d/idle", engines)
			if saturated {
				name = fmt.Sprintf("engines=%d/saturated", engines)
			}
			b.Run(name, func(b *testing.B) { benchCycle(b, engines, saturated) })
		}
	}
}

func benchCycle(b *testing.B, engines int, saturated bool) {
	const run = time.Millisecond // depth ceil(5ms/1ms)+1 = 6
	s, err := New(Config{})
	if err != nil {
		b.Fatal(err)
	}
	for e := range engines {
		s.AddEngine(e)
	}
	backlog := 0
	if saturated {
		backlog = engines*7 + 10 // more than every engine can hold
	}
	// Task ids are reused round-robin; a ring of twice the tasks ever in
	// flight guarantees an id is finished before it comes round again.
	ids := make([]string, 2*backlog+2)
	for i := range ids {
		ids[i] = strconv.Itoa(i)
	}
	var assigned []string // FIFO of outstanding tasks, oldest first
	next := 0
	submit := func() {
		s.Submit(Task{ID: ids[next%len(ids)]})
		next++
		for _, a := range s.Actions() {
			assigned = append(assigned, a.(Assign).Task)
		}
	}
	finish := func() {
		id := assigned[0]
		assigned = assigned[1:]
		s.Finished(id, false, run)
		for _, a := range s.Actions() {
			assigned = append(assigned, a.(Assign).Task)
		}
	}
	for range backlog {
		submit()
	}
	for range engines * 7 { // warm the run-time averages
		submit()
		finish()
	}
	b.ReportAllocs()
	for b.Loop() {
		submit()
		finish()
	}
}
