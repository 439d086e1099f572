package controller

import (
	"reflect"
	"testing"

	"github.com/ipcluster/ipcluster/wire"
)

// agreeEvent is one input to an agreements state machine, and what it
// must decide.
type agreeEvent struct {
	id     string
	add    []int // open request id on these engines
	ack    int   // else, unless cancel or leave: the engine acknowledges id with horizon h
	h      int64
	cancel bool // cancel request id
	leave  bool // engine ack leaves

	commits []commit
	dropped []string // requests the event drops
}

func TestAgreements(t *testing.T) {
	for _, tc := range []struct {
		name   string
		events []agreeEvent
	}{
		{"the largest horizon", []agreeEvent{
			{id: "a", add: []int{1, 2, 3}},
			{id: "a", ack: 2, h: 40},
			{id: "a", ack: 1, h: 45},
			{id: "a", ack: 3, h: 41, commits: []commit{{"a", []int{1, 2, 3}, 45}}},
		}},
		{"repeated and stray acks change nothing", []agreeEvent{
			{id: "a", add: []int{1, 2}},
			{id: "a", ack: 1, h: 5},
			{id: "a", ack: 1, h: 9},
			{id: "a", ack: 7, h: 9},
			{id: "b", ack: 2, h: 9},
			{id: "a", ack: 2, h: 6, commits: []commit{{"a", []int{1, 2}, 6}}},
			{id: "a", ack: 2, h: 99},
		}},
		{"engines at no step yet", []agreeEvent{
			{id: "a", add: []int{1, 2}},
			{id: "a", ack: 1, h: wire.NoStep},
			{id: "a", ack: 2, h: wire.NoStep, commits: []commit{{"a", []int{1, 2}, wire.NoStep}}},
			{id: "b", add: []int{1, 2}},
			{id: "b", ack: 1, h: wire.NoStep},
			{id: "b", ack: 2, h: 12, commits: []commit{{"b", []int{1, 2}, 12}}},
		}},
		{"a later request on a shared engine waits for the earlier", []agreeEvent{
			{id: "a", add: []int{1, 2}},
			{id: "b", add: []int{2, 3}},
			{id: "b", ack: 2, h: 10},
			{id: "b", ack: 3, h: 11},
			{id: "a", ack: 1, h: 50},
			{id: "a", ack: 2, h: 9, commits: []commit{{"a", []int{1, 2}, 50}, {"b", []int{2, 3}, 50}}},
		}},
		{"requests on other engines do not wait", []agreeEvent{
			{id: "a", add: []int{1}},
			{id: "b", add: []int{2}},
			{id: "b", ack: 2, h: 3, commits: []commit{{"b", []int{2}, 3}}},
			{id: "a", ack: 1, h: 8, commits: []commit{{"a", []int{1}, 8}}},
		}},
		{"never before an earlier commit on the same engine", []agreeEvent{
			{id: "a", add: []int{1, 2}},
			{id: "a", ack: 1, h: 100},
			{id: "a", ack: 2, h: 90, commits: []commit{{"a", []int{1, 2}, 100}}},
			{id: "b", add: []int{2, 3}},
			{id: "b", ack: 2, h: 95},
			{id: "b", ack: 3, h: 60, commits: []commit{{"b", []int{2, 3}, 100}}},
		}},
		{"a cancelled request lets the next through", []agreeEvent{
			{id: "a", add: []int{1, 2}},
			{id: "b", add: []int{2}},
			{id: "b", ack: 2, h: 4},
			{id: "a", cancel: true, dropped: []string{"a"}, commits: []commit{{"b", []int{2}, 4}}},
			{id: "a", ack: 1, h: 9},
		}},
		{"an engine that leaves drops its open requests", []agreeEvent{
			{id: "a", add: []int{1, 2}},
			{id: "b", add: []int{3}},
			{id: "c", add: []int{2, 3}},
			{id: "a", ack: 1, h: 1},
			{id: "b", ack: 3, h: 7, commits: []commit{{"b", []int{3}, 7}}},
			{id: "c", ack: 3, h: 8},
			{leave: true, ack: 2, dropped: []string{"a", "c"}},
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a := newAgreements()
			for i, ev := range tc.events {
				var commits []commit
				var dropped []string
				switch {
				case ev.add != nil:
					a.add(ev.id, ev.add)
				case ev.cancel:
					engines, c := a.cancel(ev.id)
					commits = c
					if engines != nil {
						dropped = append(dropped, ev.id)
					}
				case ev.leave:
					ags, c := a.removeEngine(ev.ack)
					commits = c
					for _, ag := range ags {
						dropped = append(dropped, ag.id)
					}
				default:
					commits = a.ack(ev.id, ev.ack, ev.h)
				}
				if !reflect.DeepEqual(commits, ev.commits) {
					t.Fatalf("event %d: commits %v, want %v", i, commits, ev.commits)
				}
				if !reflect.DeepEqual(dropped, ev.dropped) {
					t.Fatalf("event %d: dropped %v, want %v", i, dropped, ev.dropped)
				}
			}
		})
	}
}
