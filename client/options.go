package client

import (
	"fmt"
	"maps"
	"slices"
	"time"

	"github.com/ipcluster/ipcluster/wire"
)

// Target selects engines: all of them, by id, or by job and rank.
type Target interface {
	// resolve returns the ids the target names, given the registered engines.
	resolve(reg registry) ([]int, error)
	String() string
}

// registry is the client's table of registered engines, by id.
type registry map[int]wire.EngineInfo

// ids returns the registered ids, sorted.
func (r registry) ids() []int { return slices.Sorted(maps.Keys(r)) }

type allTarget int

// All targets every registered engine.
const All allTarget = 0

func (allTarget) resolve(reg registry) ([]int, error) {
	if len(reg) == 0 {
		return nil, fmt.Errorf("client: no engines are registered")
	}
	return reg.ids(), nil
}

func (allTarget) String() string { return "all" }

type listTarget []int

// Engines targets the engines with the given ids, in that order.
func Engines(ids ...int) Target { return listTarget(slices.Clone(ids)) }

func (l listTarget) resolve(reg registry) ([]int, error) {
	if len(l) == 0 {
		return nil, fmt.Errorf("client: the target names no engines")
	}
	for _, id := range l {
		if _, ok := reg[id]; !ok {
			return nil, fmt.Errorf("client: engine %d is not registered (registered: %v)", id, reg.ids())
		}
	}
	return slices.Clone(l), nil
}

func (l listTarget) String() string { return fmt.Sprint([]int(l)) }

type rangeTarget struct{ lo, hi int }

// Range targets the registered engines with ids in [lo, hi).
func Range(lo, hi int) Target { return rangeTarget{lo, hi} }

func (r rangeTarget) resolve(reg registry) ([]int, error) {
	registered := reg.ids()
	var out []int
	for _, id := range registered {
		if id >= r.lo && id < r.hi {
			out = append(out, id)
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("client: no registered engine in %s (registered: %v)", r, registered)
	}
	return out, nil
}

func (r rangeTarget) String() string { return fmt.Sprintf("[%d, %d)", r.lo, r.hi) }

// Option modifies a call of Client.Apply.
type Option interface{ apply(*callOptions) }

type callOptions struct {
	targets  Target
	balanced bool
	timeout  time.Duration
	retries  int
}

type targetsOption struct{ t Target }

func (o targetsOption) apply(c *callOptions) { c.targets = o.t }

// Targets chooses the engines a call runs on (default All).
func Targets(t Target) Option { return targetsOption{t} }

type flag int

const (
	blockFlag flag = iota
	balancedFlag
)

func (f flag) apply(c *callOptions) {
	if f == balancedFlag {
		c.balanced = true
	}
}

// Block says that the call waits for its results. Client.Apply always
// does (views return an AsyncResult instead); Block is accepted so that a
// call reads as what it does, as in IPython parallel.
const Block = blockFlag

// Balanced lets the scheduler choose one engine among the targets instead
// of running the call on each of them.
const Balanced = balancedFlag

type timeoutOption time.Duration

func (o timeoutOption) apply(c *callOptions) { c.timeout = time.Duration(o) }

// Timeout limits each task's run time on its engine; a task that runs
// longer is interrupted and fails with a *TimeoutError.
func Timeout(d time.Duration) Option { return timeoutOption(d) }

type retriesOption int

func (o retriesOption) apply(c *callOptions) { c.retries = int(o) }

// Retries lets a balanced task that fails, or whose engine dies, be run
// again on another engine up to n times.
func Retries(n int) Option { return retriesOption(n) }

// MapOption modifies a Map.
type MapOption interface{ applyMap(*mapOptions) }

type mapOptions struct {
	chunk     int
	unordered bool
}

type chunkOption int

func (o chunkOption) applyMap(m *mapOptions) { m.chunk = int(o) }

// ChunkSize sets how many items go to an engine in one task. By default
// the client picks a size that gives each engine several chunks.
func ChunkSize(n int) MapOption { return chunkOption(n) }

type orderOption bool

func (o orderOption) applyMap(m *mapOptions) { m.unordered = !bool(o) }

// Ordered chooses whether MapResult.Items yields results in input order
// (the default) or as they complete.
func Ordered(ordered bool) MapOption { return orderOption(ordered) }
