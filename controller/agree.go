package controller

import (
	"slices"

	"github.com/ipcluster/ipcluster/wire"
)

// agreements decides the step at which the engines named by a steering
// request apply it, the same step on each (docs/architecture.md,
// "Steering"). It is pure logic: the core feeds it requests, engines'
// acknowledgements and departures, and carries out the commits it
// returns.
//
// Each engine acknowledges a request with its horizon, the step before
// which its program can still apply it; the request is applied at the
// largest horizon, which none has passed. Commits go out in the order the
// requests came, among requests that share an engine, and never at a step
// before an earlier commit to one of its engines: an engine applies its
// requests in arrival order, so a later request cannot land earlier on
// one engine than on another.
type agreements struct {
	open []*agreement  // not yet committed, in order of arrival
	last map[int]int64 // the step last committed to each engine
	byID map[string]*agreement
}

// agreement is one request waiting for its engines' horizons.
type agreement struct {
	id       string
	engines  []int
	horizons map[int]int64
}

// commit is a decision to carry out: the engines apply request id at the
// first steering point at or after step at.
type commit struct {
	id      string
	engines []int
	at      int64
}

func newAgreements() *agreements {
	return &agreements{last: make(map[int]int64), byID: make(map[string]*agreement)}
}

// add opens an agreement on request id among engines.
func (a *agreements) add(id string, engines []int) {
	ag := &agreement{id: id, engines: slices.Clone(engines), horizons: make(map[int]int64, len(engines))}
	a.open = append(a.open, ag)
	a.byID[id] = ag
}

// pending reports whether request id still waits for horizons.
func (a *agreements) pending(id string) bool { return a.byID[id] != nil }

// ack records an engine's horizon for request id, and returns the commits
// that are now due, in order. An ack for an unknown request or engine, or
// a repeated one, changes nothing.
func (a *agreements) ack(id string, engine int, horizon int64) []commit {
	ag := a.byID[id]
	if ag == nil || !slices.Contains(ag.engines, engine) {
		return nil
	}
	if _, dup := ag.horizons[engine]; dup {
		return nil
	}
	ag.horizons[engine] = horizon
	return a.due()
}

// cancel drops the open request id: one of its engines refused it or
// left. It returns the request's engines, to be told, and the commits
// that its going lets through.
func (a *agreements) cancel(id string) (engines []int, commits []commit) {
	ag := a.byID[id]
	if ag == nil {
		return nil, nil
	}
	a.drop(ag)
	return ag.engines, a.due()
}

// removeEngine forgets an engine: the open requests that name it are
// dropped and returned (to be cancelled on their other engines), with the
// commits that their going lets through.
func (a *agreements) removeEngine(engine int) (dropped []*agreement, commits []commit) {
	delete(a.last, engine)
	for _, ag := range slices.Clone(a.open) {
		if slices.Contains(ag.engines, engine) {
			a.drop(ag)
			dropped = append(dropped, ag)
		}
	}
	return dropped, a.due()
}

func (a *agreements) drop(ag *agreement) {
	delete(a.byID, ag.id)
	a.open = slices.DeleteFunc(a.open, func(x *agreement) bool { return x == ag })
}

// due commits, in order, every open request that has all its horizons
// and no earlier open request on one of its engines.
func (a *agreements) due() []commit {
	var out []commit
	blocked := map[int]bool{}
	keep := a.open[:0]
	for _, ag := range a.open {
		ready := len(ag.horizons) == len(ag.engines)
		for _, e := range ag.engines {
			ready = ready && !blocked[e]
		}
		if !ready {
			for _, e := range ag.engines {
				blocked[e] = true
			}
			keep = append(keep, ag)
			continue
		}
		at := int64(wire.NoStep)
		for _, e := range ag.engines {
			at = max(at, ag.horizons[e])
			if last, ok := a.last[e]; ok {
				at = max(at, last)
			}
		}
		for _, e := range ag.engines {
			a.last[e] = at
		}
		delete(a.byID, ag.id)
		out = append(out, commit{id: ag.id, engines: ag.engines, at: at})
	}
	clear(a.open[len(keep):])
	a.open = keep
	return out
}
