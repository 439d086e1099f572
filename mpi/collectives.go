package mpi

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"time"
	"unsafe"
)

// The generic calls check their arguments, then hand raw buffers to the
// build's implementation (cgo, or the one-rank stub).

// ptr returns the address of s's first element, or nil for an empty s.
func ptr[T any](s []T) unsafe.Pointer {
	if len(s) == 0 {
		return nil
	}
	return unsafe.Pointer(&s[0])
}

// Bcast sends root's buf to every rank's buf, which must have the same
// length on every rank.
func Bcast[T Number](c *Comm, buf []T, root int) error {
	if err := c.ready(); err != nil {
		return err
	}
	if err := checkRoot(root, c.Size()); err != nil {
		return err
	}
	return c.bcast(ptr(buf), len(buf), typeOf[T](), root)
}

// Reduce combines every rank's send with op, element by element, into
// root's recv (ignored elsewhere; it may be nil there). At the root, send
// and recv may be the same slice.
func Reduce[T Number](c *Comm, send, recv []T, op Op, root int) error {
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
	return c.reduce(ptr(send), ptr(recv), len(send), d, op, root)
}

// Allreduce combines every rank's send with op into every rank's recv.
// send and recv may be the same slice.
func Allreduce[T Number](c *Comm, send, recv []T, op Op) error {
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
	return c.allreduce(ptr(send), ptr(recv), len(send), d, op)
}

// Gather collects every rank's send, in rank order, into root's recv,
// which holds Size()*len(send) elements (elsewhere recv may be nil).
func Gather[T Number](c *Comm, send, recv []T, root int) error {
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
	return c.gather(ptr(send), len(send), ptr(recv), typeOf[T](), root)
}

// Allgather collects every rank's send, in rank order, into every rank's
// recv of Size()*len(send) elements.
func Allgather[T Number](c *Comm, send, recv []T) error {
	if err := c.ready(); err != nil {
		return err
	}
	if err := checkLen("recv", len(recv), c.Size()*len(send)); err != nil {
		return err
	}
	return c.allgather(ptr(send), len(send), ptr(recv), typeOf[T]())
}

// Scatter sends root's send, Size() equal parts in rank order, to every
// rank's recv; root's send holds Size()*len(recv) elements (elsewhere it
// may be nil).
func Scatter[T Number](c *Comm, send, recv []T, root int) error {
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
	return c.scatter(ptr(send), ptr(recv), len(recv), typeOf[T](), root)
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

// Send sends buf to rank dest, blocking until buf may be reused.
func Send[T Number](c *Comm, buf []T, dest, tag int) error {
	if err := c.ready(); err != nil {
		return err
	}
	if err := errors.Join(c.checkPeer("destination", dest, false), checkTag(tag, false)); err != nil {
		return err
	}
	return c.send(ptr(buf), len(buf), typeOf[T](), dest, tag)
}

// Recv receives into buf a message of at most len(buf) elements from
// source (or AnySource) with tag (or AnyTag).
func Recv[T Number](c *Comm, buf []T, source, tag int) (Status, error) {
	if err := c.ready(); err != nil {
		return Status{}, err
	}
	if err := errors.Join(c.checkPeer("source", source, true), checkTag(tag, true)); err != nil {
		return Status{}, err
	}
	return c.recv(ptr(buf), len(buf), typeOf[T](), source, tag)
}

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
// other goroutines' MPI calls go on meanwhile; a request left unfinished
// by ctx may be waited for again, or cancelled.
func (r *Request) Wait(ctx context.Context) (Status, error) {
	pause := time.Microsecond
	for {
		done, st, err := r.Test()
		if done {
			return st, err
		}
		select {
		case <-ctx.Done():
			return Status{}, fmt.Errorf("mpi: waiting for a request: %w", context.Cause(ctx))
		case <-time.After(pause):
		}
		pause = min(2*pause, time.Millisecond)
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
