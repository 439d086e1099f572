package client

import (
	"fmt"
	"testing"

	"github.com/ipcluster/ipcluster/wire"
)

// find answers the same whether a result's tasks are few (looked through)
// or many (looked up in an index): a direct request fanned out to engines
// shares its id, a balanced task's engine is known only from its reply.
func TestFind(t *testing.T) {
	for _, n := range []int{3, indexFrom, 100} {
		t.Run(fmt.Sprint(n), func(t *testing.T) {
			r := newResult(nil, wire.Apply)
			for e := range n {
				r.add("fan", e)
			}
			r.add("lb1", wire.NoEngine)
			r.add("lb2", wire.NoEngine)
			for _, tc := range []struct {
				id     string
				engine int
				want   string // "fan/<engine>", a balanced id, or "" for none
			}{
				{"fan", 0, "fan/0"},
				{"fan", n - 1, fmt.Sprintf("fan/%d", n-1)},
				{"fan", n, ""},
				{"fan", wire.NoEngine, ""},
				{"other", 0, ""},
				{"lb1", 5, "lb1"},
				{"lb2", wire.NoEngine, "lb2"},
			} {
				got := ""
				if ts := r.find(tc.id, tc.engine); ts != nil {
					got = ts.id
					if !ts.balanced {
						got = fmt.Sprintf("%s/%d", ts.id, ts.engine)
					}
				}
				if got != tc.want {
					t.Errorf("find(%q, %d) = %q, want %q", tc.id, tc.engine, got, tc.want)
				}
			}
			// Once its reply names an engine, a balanced task is that
			// engine's only.
			lb := r.find("lb1", 7)
			lb.engine, lb.reply = 7, &wire.Message{}
			if got := r.find("lb1", 7); got != lb {
				t.Errorf("find of an answered balanced task from its engine = %v", got)
			}
			if got := r.find("lb1", 8); got != nil {
				t.Errorf("find of an answered balanced task from another engine = %+v", got)
			}
			// Tasks added after the first look are found too.
			r.add("late", 3)
			if got := r.find("late", 3); got == nil || got.id != "late" {
				t.Errorf("find of a task added late = %+v", got)
			}
		})
	}
}
