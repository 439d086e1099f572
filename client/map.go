package client

import (
	"context"
	"iter"
	"reflect"

	"github.com/ipcluster/ipcluster/wire"
)

// MapResult is the future result of a Map: the items' results, produced
// in chunks.
type MapResult struct {
	chunks    []mapChunk
	unordered bool
	completed chan int // chunk indexes, as chunks finish
}

type mapChunk struct {
	start, count int
	r            *AsyncResult
}

// Item is one result of a Map.
type Item struct {
	Index int // the item's position in the input
	Value any
}

func newMapResult(n int, unordered bool) *MapResult {
	return &MapResult{chunks: make([]mapChunk, n), unordered: unordered, completed: make(chan int, n)}
}

// chunk prepares the AsyncResult of chunk i.
func (m *MapResult) chunk(i, start, count int, c *Client) *AsyncResult {
	r := newResult(c, wire.Map)
	r.onDone = func() { m.completed <- i }
	m.chunks[i] = mapChunk{start: start, count: count, r: r}
	return r
}

// Len returns the number of items.
func (m *MapResult) Len() int {
	n := 0
	for _, c := range m.chunks {
		n += c.count
	}
	return n
}

// Wait waits until every chunk has finished.
func (m *MapResult) Wait(ctx context.Context) error {
	for _, c := range m.chunks {
		if err := c.r.Wait(ctx); err != nil {
			return err
		}
	}
	return nil
}

// Ready reports whether every chunk has finished.
func (m *MapResult) Ready() bool {
	for _, c := range m.chunks {
		if !c.r.Ready() {
			return false
		}
	}
	return true
}

// Get waits for all results and returns them in input order. It fails with
// the first failed chunk's error.
func (m *MapResult) Get(ctx context.Context) ([]any, error) {
	out := make([]any, m.Len())
	for _, c := range m.chunks {
		vals, err := c.values(ctx)
		if err != nil {
			return nil, err
		}
		copy(out[c.start:], vals)
	}
	return out, nil
}

// values waits for a chunk and decodes its results.
func (c mapChunk) values(ctx context.Context) ([]any, error) {
	var vals []any
	if err := c.r.decodeSingle(ctx, reflect.ValueOf(&vals).Elem()); err != nil {
		return nil, err
	}
	return vals, nil
}

// Items yields each result with its index: in input order, or as chunks
// complete if the Map was made with Ordered(false). On a failure it yields
// the error (with the failed chunk's first index) and stops.
func (m *MapResult) Items(ctx context.Context) iter.Seq2[Item, error] {
	return func(yield func(Item, error) bool) {
		emit := func(c mapChunk) bool {
			vals, err := c.values(ctx)
			if err != nil {
				yield(Item{Index: c.start}, err)
				return false
			}
			for j, v := range vals {
				if !yield(Item{Index: c.start + j, Value: v}, nil) {
					return false
				}
			}
			return true
		}
		if !m.unordered {
			for _, c := range m.chunks {
				if !emit(c) {
					return
				}
			}
			return
		}
		for range m.chunks {
			select {
			case i := <-m.completed:
				if !emit(m.chunks[i]) {
					return
				}
			case <-ctx.Done():
				yield(Item{}, ctx.Err())
				return
			}
		}
	}
}

// Engines returns, for each item, the engine that ran it (-1 if its
// chunk has not finished).
func (m *MapResult) Engines() []int {
	out := make([]int, m.Len())
	for _, c := range m.chunks {
		e := -1
		if md := c.r.Metadata(); len(md) == 1 && c.r.Ready() {
			e = md[0].Engine
		}
		for j := range c.count {
			out[c.start+j] = e
		}
	}
	return out
}

// Abort drops the chunks that have not started.
func (m *MapResult) Abort(ctx context.Context) error {
	if len(m.chunks) == 0 {
		return nil
	}
	var ids []string
	for _, c := range m.chunks {
		if !c.r.Ready() {
			ids = append(ids, c.r.ids...)
		}
	}
	if len(ids) == 0 {
		return nil
	}
	return m.chunks[0].r.c.Abort(ctx, ids...)
}

// Collect waits for a Map and decodes every result into a T, in input order.
func Collect[T any](ctx context.Context, m *MapResult) ([]T, error) {
	out := make([]T, m.Len())
	for _, c := range m.chunks {
		part := out[c.start : c.start+c.count]
		if err := c.r.decodeSingle(ctx, reflect.ValueOf(&part).Elem()); err != nil {
			return nil, err
		}
		// decodeList made a fresh slice; keep its values in place.
		copy(out[c.start:], part)
	}
	return out, nil
}
