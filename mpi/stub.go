//go:build !mpi

package mpi

import (
	"context"
	"errors"
	"os"
	"sync"
	"sync/atomic"
	"unsafe"
)

// The stub: one rank, no MPI library.

var stub struct {
	mu                     sync.Mutex
	initialized, finalized bool
}

var world = &Comm{}

// Comm is a communicator: a group of ranks that talk among themselves.
type Comm struct {
	freed  bool
	broken atomic.Pointer[InterruptedError] // never set: the stub's calls do not wait
}

// Init initialises MPI for goroutines calling it one at a time.
func Init() error {
	_, err := InitThread(Serialized)
	return err
}

// InitThread initialises MPI with at least the thread level required if
// the library provides it, and returns the level it provides.
func InitThread(required ThreadLevel) (ThreadLevel, error) {
	stub.mu.Lock()
	defer stub.mu.Unlock()
	switch {
	case stub.finalized:
		return 0, ErrFinalized
	case stub.initialized:
		return 0, errors.New("mpi: already initialised")
	}
	stub.initialized = true
	return Multiple, nil
}

// Finalize ends MPI; no MPI call may follow.
func Finalize() error {
	stub.mu.Lock()
	defer stub.mu.Unlock()
	switch {
	case stub.finalized:
		return ErrFinalized
	case !stub.initialized:
		return ErrNotInitialized
	}
	stub.finalized = true
	return nil
}

// Initialized reports whether Init has been called and Finalize has not.
func Initialized() bool {
	stub.mu.Lock()
	defer stub.mu.Unlock()
	return stub.initialized && !stub.finalized
}

// Enabled reports whether this build calls an MPI library (built with the
// tag mpi); the stub's is false.
const Enabled = false

// World returns MPI_COMM_WORLD, every rank of the job.
func World() *Comm { return world }

// ProcessorName returns the name MPI gives this process's node.
func ProcessorName() (string, error) { return os.Hostname() }

func (c *Comm) ready() error {
	switch {
	case !Initialized():
		return ErrNotInitialized
	case c == nil || c.freed:
		return errors.New("mpi: the communicator has been freed")
	}
	return nil
}

// Rank returns the calling process's rank in c.
func (c *Comm) Rank() int { return 0 }

// Size returns the number of ranks in c.
func (c *Comm) Size() int { return 1 }

// Barrier waits until every rank of c has called it.
func (c *Comm) Barrier(context.Context) error { return c.ready() }

// Split partitions c: ranks of one color form a new communicator, ordered
// by key; a color of Undefined returns nil.
func (c *Comm) Split(color, key int) (*Comm, error) {
	if err := c.ready(); err != nil {
		return nil, err
	}
	if color == Undefined {
		return nil, nil
	}
	return &Comm{}, nil
}

// Dup returns a new communicator of the same ranks.
func (c *Comm) Dup() (*Comm, error) {
	if err := c.ready(); err != nil {
		return nil, err
	}
	return &Comm{}, nil
}

// Free releases a communicator made by Split or Dup.
func (c *Comm) Free() error {
	if err := c.ready(); err != nil {
		return err
	}
	if c == world {
		return errors.New("mpi: the world communicator cannot be freed")
	}
	c.freed = true
	return nil
}

// Abort ends every process of c's job with the exit code.
func (c *Comm) Abort(code int) { os.Exit(code) }

var sizes = [...]int{1, 2, 4, 8, 1, 2, 4, 8, 4, 8}

// move copies n elements of type d.
func move(dst, src unsafe.Pointer, n int, d dtype) {
	if n == 0 || dst == src {
		return
	}
	b := n * sizes[d]
	copy(unsafe.Slice((*byte)(dst), b), unsafe.Slice((*byte)(src), b))
}

func (c *Comm) bcast(unsafe.Pointer, int, dtype, int) error { return nil }

func (c *Comm) reduce(send, recv unsafe.Pointer, n int, d dtype, _ Op, _ int) error {
	move(recv, send, n, d)
	return nil
}

func (c *Comm) allreduce(send, recv unsafe.Pointer, n int, d dtype, _ Op) error {
	move(recv, send, n, d)
	return nil
}

func (c *Comm) gather(send unsafe.Pointer, n int, recv unsafe.Pointer, d dtype, _ int) error {
	move(recv, send, n, d)
	return nil
}

func (c *Comm) allgather(send unsafe.Pointer, n int, recv unsafe.Pointer, d dtype) error {
	move(recv, send, n, d)
	return nil
}

func (c *Comm) scatter(send, recv unsafe.Pointer, n int, d dtype, _ int) error {
	move(recv, send, n, d)
	return nil
}

func (c *Comm) send(unsafe.Pointer, int, dtype, int, int) error { return ErrStub }

func (c *Comm) recv(unsafe.Pointer, int, dtype, int, int) (Status, error) { return Status{}, ErrStub }

type request struct{}

// The nonblocking collectives complete at once.

func (c *Comm) ibcast(*request, unsafe.Pointer, int, dtype, int) error { return nil }

func (c *Comm) ireduce(_ *request, send, recv unsafe.Pointer, n int, d dtype, o Op, root int) error {
	return c.reduce(send, recv, n, d, o, root)
}

func (c *Comm) iallreduce(_ *request, send, recv unsafe.Pointer, n int, d dtype, o Op) error {
	return c.allreduce(send, recv, n, d, o)
}

func (c *Comm) igather(_ *request, send unsafe.Pointer, n int, recv unsafe.Pointer, d dtype, root int) error {
	return c.gather(send, n, recv, d, root)
}

func (c *Comm) iallgather(_ *request, send unsafe.Pointer, n int, recv unsafe.Pointer, d dtype) error {
	return c.allgather(send, n, recv, d)
}

func (c *Comm) iscatter(_ *request, send, recv unsafe.Pointer, n int, d dtype, root int) error {
	return c.scatter(send, recv, n, d, root)
}

func (c *Comm) isend(*request, unsafe.Pointer, int, dtype, int, int) error { return ErrStub }

func (c *Comm) irecv(*request, unsafe.Pointer, int, dtype, int, int) error { return ErrStub }

func (request) test() (bool, Status, error) { return true, Status{}, nil }

func (request) wait() (Status, error) { return Status{}, nil }

func (request) cancel() error { return nil }
