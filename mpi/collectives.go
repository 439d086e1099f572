package mpi

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"sync"
	"time"
	"unsafe"
)

// The generic calls check their arguments, then hand raw buffers to the
// build's implementation (cgo, or the one-rank stub). Every call that may
// wait for other ranks takes a context: see Comm.collective.

// ptr returns the address of s's first element, or nil for an empty s.
func ptr[T any](s []T) unsafe.Pointer {
	if len(s) == 0 {
		return nil
	}
	return unsafe.Pointer(&s[0])
}

// Bcast sends root's buf to every rank's buf, which must have the same
// length on every rank.
func Bcast[T Number](ctx context.Context, c *Comm, buf []T, root int) error {
	if err := c.ready(); err != nil {
		return err
	}
	if err := checkRoot(root, c.Size()); err != nil {
		return err
	}
	b, d := ptr(buf), typeOf[T]()
	return c.collective(ctx, "MPI_Bcast",
		func(r *request) error { return c.ibcast(r, b, len(buf), d, root) }, b)
}

// Reduce combines every rank's send with op, element by element, into
// root's recv (ignored elsewhere; it may be nil there). At the root, send
// and recv may be the same slice.
func Reduce[T Number](ctx context.Context, c *Comm, send, recv []T, op Op, root int) error {
	if err := c.ready(); err != nil {
		return err
	}
	d := typeOf[T]()
	if err := op.check(d); err != nil {
		return err
	}
	if err := checkRoot(root, c.Size()); err != nil {
		return err
	}
	if c.Rank() == root {
		if err := checkLen("recv", len(recv), len(send)); err != nil {
			return err
		}
	}
	sp, rp := ptr(send), ptr(recv)
	return c.collective(ctx, "MPI_Reduce",
		func(r *request) error { return c.ireduce(r, sp, rp, len(send), d, op, root) }, sp, rp)
}

// Allreduce combines every rank's send with op into every rank's recv.
// send and recv may be the same slice.
func Allreduce[T Number](ctx context.Context, c *Comm, send, recv []T, op Op) error {
	if err := c.ready(); err != nil {
		return err
	}
	d := typeOf[T]()
	if err := op.check(d); err != nil {
		return err
	}
	if err := checkLen("recv", len(recv), len(send)); err != nil {
		return err
	}
	sp, rp := ptr(send), ptr(recv)
	return c.collective(ctx, "MPI_Allreduce",
		func(r *request) error { return c.iallreduce(r, sp, rp, len(send), d, op) }, sp, rp)
}

// Gather collects every rank's send, in rank order, into root's recv,
// which holds Size()*len(send) elements (elsewhere recv may be nil).
func Gather[T Number](ctx context.Context, c *Comm, send, recv []T, root int) error {
	if err := c.ready(); err != nil {
		return err
	}
	if err := checkRoot(root, c.Size()); err != nil {
		return err
	}
	if c.Rank() == root {
		if err := checkLen("recv", len(recv), c.Size()*len(send)); err != nil {
			return err
		}
	}
	sp, rp, d := ptr(send), ptr(recv), typeOf[T]()
	return c.collective(ctx, "MPI_Gather",
		func(r *request) error { return c.igather(r, sp, len(send), rp, d, root) }, sp, rp)
}

// Allgather collects every rank's send, in rank order, into every rank's
// recv of Size()*len(send) elements.
func Allgather[T Number](ctx context.Context, c *Comm, send, recv []T) error {
	if err := c.ready(); err != nil {
		return err
	}
	if err := checkLen("recv", len(recv), c.Size()*len(send)); err != nil {
		return err
	}
	sp, rp, d := ptr(send), ptr(recv), typeOf[T]()
	return c.collective(ctx, "MPI_Allgather",
		func(r *request) error { return c.iallgather(r, sp, len(send), rp, d) }, sp, rp)
}

// Scatter sends root's send, Size() equal parts in rank order, to every
// rank's recv; root's send holds Size()*len(recv) elements (elsewhere it
// may be nil).
func Scatter[T Number](ctx context.Context, c *Comm, send, recv []T, root int) error {
	if err := c.ready(); err != nil {
		return err
	}
	if err := checkRoot(root, c.Size()); err != nil {
		return err
	}
	if c.Rank() == root {
		if err := checkLen("send", len(send), c.Size()*len(recv)); err != nil {
			return err
		}
	}
	sp, rp, d := ptr(send), ptr(recv), typeOf[T]()
	return c.collective(ctx, "MPI_Scatter",
		func(r *request) error { return c.iscatter(r, sp, rp, len(recv), d, root) }, sp, rp)
}

// checkPeer reports a rank outside c (AnySource is allowed where any is).
func (c *Comm) checkPeer(what string, rank int, any bool) error {
	if (any && rank == AnySource) || (rank >= 0 && rank < c.Size()) {
		return nil
	}
	return fmt.Errorf("mpi: %s %d is not a rank of a communicator of size %d", what, rank, c.Size())
}

func checkTag(tag int, any bool) error {
	if tag >= 0 || (any && tag == AnyTag) {
		return nil
	}
	return fmt.Errorf("mpi: tag %d must not be negative", tag)
}

// Send sends buf to rank dest, blocking until buf may be reused. If ctx
// ends first, Send returns its cause; the message may still be delivered,
// and buf must not be changed again (its memory stays pinned).
func Send[T Number](ctx context.Context, c *Comm, buf []T, dest, tag int) error {
	if err := c.ready(); err != nil {
		return err
	}
	if err := errors.Join(c.checkPeer("destination", dest, false), checkTag(tag, false)); err != nil {
		return err
	}
	if ctx.Done() == nil {
		return c.send(ptr(buf), len(buf), typeOf[T](), dest, tag)
	}
	req, err := Isend(c, buf, dest, tag)
	if err != nil {
		return err
	}
	_, err = req.Wait(ctx)
	if !req.done {
		abandon(req)
		return fmt.Errorf("mpi: MPI_Send to rank %d interrupted: %w", dest, err)
	}
	return err
}

// Recv receives into buf a message of at most len(buf) elements from
// source (or AnySource) with tag (or AnyTag). If ctx ends first, the
// receive is cancelled and Recv returns ctx's cause.
func Recv[T Number](ctx context.Context, c *Comm, buf []T, source, tag int) (Status, error) {
	if err := c.ready(); err != nil {
		return Status{}, err
	}
	if err := errors.Join(c.checkPeer("source", source, true), checkTag(tag, true)); err != nil {
		return Status{}, err
	}
	if ctx.Done() == nil {
		return c.recv(ptr(buf), len(buf), typeOf[T](), source, tag)
	}
	req, err := Irecv(c, buf, source, tag)
	if err != nil {
		return Status{}, err
	}
	st, err := req.Wait(ctx)
	if !req.done {
		if cerr := req.Cancel(); cerr != nil {
			abandon(req)
		}
		return Status{}, fmt.Errorf("mpi: MPI_Recv interrupted: %w", err)
	}
	return st, err
}

// collective runs a collective call in its nonblocking form (MPI_Iallreduce
// for MPI_Allreduce...), on every rank alike: MPI never matches a blocking
// collective with a nonblocking one. A ctx that cannot end (Done is nil,
// as for context.Background) waits in MPI_Wait. Any other is waited for by
// polling, so that an interrupted task is not stuck in MPI; as MPI cannot
// cancel a collective, the communicator is then broken: this call and
// every later one on it fail with an *InterruptedError.
func (c *Comm) collective(ctx context.Context, name string, start func(*request) error, bufs ...unsafe.Pointer) error {
	if err := context.Cause(ctx); err != nil {
		return fmt.Errorf("mpi: %s not started: %w", name, err)
	}
	req := &Request{}
	for _, b := range bufs {
		if b != nil {
			req.pin.Pin(b)
		}
	}
	if err := start(&req.r); err != nil {
		req.pin.Unpin()
		return err
	}
	if ctx.Done() == nil {
		_, err := req.r.wait()
		req.pin.Unpin()
		return err
	}
	_, err := req.Wait(ctx)
	if req.done {
		return err
	}
	abandon(req)
	ie := &InterruptedError{Call: name, Cause: context.Cause(ctx)}
	c.broken.Store(ie)
	return ie
}

// abandoned holds requests left running when their wait was interrupted,
// with their buffers pinned, for as long as the process lives: MPI may
// still write to those buffers.
var abandoned struct {
	mu   sync.Mutex
	reqs []*Request
}

func abandon(r *Request) {
	abandoned.mu.Lock()
	abandoned.reqs = append(abandoned.reqs, r)
	abandoned.mu.Unlock()
}

// Abandoned reports how many calls were interrupted and are still running
// in MPI (those that have since completed, because the other ranks joined
// them after all, are released). While any are, Finalize refuses, as
// MPI_Finalize would wait for them: the process should exit, and the
// launcher then ends the job.
func Abandoned() int {
	abandoned.mu.Lock()
	defer abandoned.mu.Unlock()
	left := abandoned.reqs[:0]
	for _, r := range abandoned.reqs {
		if done, _, _ := r.Test(); !done {
			left = append(left, r)
		}
	}
	clear(abandoned.reqs[len(left):])
	abandoned.reqs = left
	return len(left)
}

// InterruptedError is returned by a collective call whose context ended
// before the call completed, and by every later call on its communicator.
type InterruptedError struct {
	Call  string // such as "MPI_Allreduce"
	Cause error  // the context's cause
}

func (e *InterruptedError) Error() string {
	return fmt.Sprintf("mpi: %s was interrupted (%v): the ranks of its communicator no longer agree on "+
		"the order of collective calls, so it cannot be used again; end the job (ipcluster stop --job N)", e.Call, e.Cause)
}

func (e *InterruptedError) Unwrap() error { return e.Cause }

// Request is a send or receive in progress. Its buffer must not be used
// until Wait or Test reports it complete.
type Request struct {
	r    request // the build's
	pin  runtime.Pinner
	done bool
	st   Status
	err  error
}

// Isend starts sending buf to rank dest and returns at once.
func Isend[T Number](c *Comm, buf []T, dest, tag int) (*Request, error) {
	if err := c.ready(); err != nil {
		return nil, err
	}
	if err := errors.Join(c.checkPeer("destination", dest, false), checkTag(tag, false)); err != nil {
		return nil, err
	}
	req := &Request{}
	pin(req, buf)
	if err := c.isend(&req.r, ptr(buf), len(buf), typeOf[T](), dest, tag); err != nil {
		req.pin.Unpin()
		return nil, err
	}
	return req, nil
}

// Irecv starts receiving into buf and returns at once.
func Irecv[T Number](c *Comm, buf []T, source, tag int) (*Request, error) {
	if err := c.ready(); err != nil {
		return nil, err
	}
	if err := errors.Join(c.checkPeer("source", source, true), checkTag(tag, true)); err != nil {
		return nil, err
	}
	req := &Request{}
	pin(req, buf)
	if err := c.irecv(&req.r, ptr(buf), len(buf), typeOf[T](), source, tag); err != nil {
		req.pin.Unpin()
		return nil, err
	}
	return req, nil
}

// pin keeps buf where it is while MPI holds its address past the call.
func pin[T any](req *Request, buf []T) {
	if len(buf) > 0 {
		req.pin.Pin(&buf[0])
	}
}

// Test reports whether the request has completed, without waiting.
func (r *Request) Test() (done bool, st Status, err error) {
	if r.done {
		return true, r.st, r.err
	}
	done, st, err = r.r.test()
	if done || err != nil {
		r.done, r.st, r.err = true, st, err
		r.pin.Unpin()
	}
	return r.done, r.st, r.err
}

// Wait waits until the request completes or ctx ends. It polls, so that
// other goroutines' MPI calls go on meanwhile: at first yielding the
// processor between tests, as MPI itself spins, then sleeping a little
// longer each time, up to a millisecond. A request left unfinished by ctx
// may be waited for again, or cancelled.
func (r *Request) Wait(ctx context.Context) (Status, error) {
	const spins = 200
	var pause time.Duration
	for i := 0; ; i++ {
		done, st, err := r.Test()
		if done {
			return st, err
		}
		if i < spins {
			if ctx.Err() != nil {
				return Status{}, fmt.Errorf("mpi: waiting for a request: %w", context.Cause(ctx))
			}
			runtime.Gosched()
			continue
		}
		pause = min(max(2*pause, 10*time.Microsecond), time.Millisecond)
		t := time.NewTimer(pause)
		select {
		case <-ctx.Done():
			t.Stop()
			return Status{}, fmt.Errorf("mpi: waiting for a request: %w", context.Cause(ctx))
		case <-t.C:
		}
	}
}

// Cancel cancels a request that has not completed (a receive whose message
// never comes) and releases it.
func (r *Request) Cancel() error {
	if r.done {
		return nil
	}
	err := r.r.cancel()
	r.done, r.err = true, errors.Join(errors.New("mpi: request cancelled"), err)
	r.pin.Unpin()
	return err
}
