//go:build mpi

package mpi

/*
#cgo pkg-config: mpi
#include <mpi.h>
#include <stdlib.h>

static MPI_Comm comm_world(void) { return MPI_COMM_WORLD; }
static int comm_is_null(MPI_Comm c) { return c == MPI_COMM_NULL; }

static MPI_Datatype dtype(int k) {
	switch (k) {
	case 0: return MPI_INT8_T;
	case 1: return MPI_INT16_T;
	case 2: return MPI_INT32_T;
	case 3: return MPI_INT64_T;
	case 4: return MPI_UINT8_T;
	case 5: return MPI_UINT16_T;
	case 6: return MPI_UINT32_T;
	case 7: return MPI_UINT64_T;
	case 8: return MPI_FLOAT;
	case 9: return MPI_DOUBLE;
	}
	return MPI_DATATYPE_NULL;
}

static MPI_Op op(int k) {
	switch (k) {
	case 0: return MPI_SUM;
	case 1: return MPI_MIN;
	case 2: return MPI_MAX;
	case 3: return MPI_PROD;
	case 4: return MPI_LAND;
	case 5: return MPI_LOR;
	case 6: return MPI_BAND;
	case 7: return MPI_BOR;
	}
	return MPI_OP_NULL;
}

static int thread_level(int k) {
	switch (k) {
	case 0: return MPI_THREAD_SINGLE;
	case 1: return MPI_THREAD_FUNNELED;
	case 2: return MPI_THREAD_SERIALIZED;
	}
	return MPI_THREAD_MULTIPLE;
}

static int our_level(int l) {
	if (l == MPI_THREAD_SINGLE) return 0;
	if (l == MPI_THREAD_FUNNELED) return 1;
	if (l == MPI_THREAD_SERIALIZED) return 2;
	return 3;
}

static int init_thread(int required, int *provided) {
	int rc = MPI_Init_thread(NULL, NULL, thread_level(required), provided);
	if (rc != MPI_SUCCESS) return rc;
	rc = MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
	if (rc != MPI_SUCCESS) return rc;
	int queried;
	rc = MPI_Query_thread(&queried);
	*provided = our_level(queried);
	return rc;
}

static int source_of(int s) { return s == -1 ? MPI_ANY_SOURCE : s; }
static int tag_of(int t) { return t == -1 ? MPI_ANY_TAG : t; }
static int color_of(int c) { return c == -32766 ? MPI_UNDEFINED : c; }

// In place when send and recv are one buffer (at the root, for reduce).
static int ireduce(void *s, void *r, int n, int d, int o, int root, MPI_Comm c, int at_root, MPI_Request *q) {
	if (at_root && s == r && s != NULL) s = MPI_IN_PLACE;
	return MPI_Ireduce(s, r, n, dtype(d), op(o), root, c, q);
}

static int iallreduce(void *s, void *r, int n, int d, int o, MPI_Comm c, MPI_Request *q) {
	if (s == r && s != NULL) s = MPI_IN_PLACE;
	return MPI_Iallreduce(s, r, n, dtype(d), op(o), c, q);
}

static int status_of(MPI_Status *st, int d, int *source, int *tag, int *count) {
	*source = st->MPI_SOURCE;
	*tag = st->MPI_TAG;
	return MPI_Get_count(st, dtype(d), count);
}

static int recv(void *b, int n, int d, int source, int tag, MPI_Comm c, int *src, int *tg, int *count) {
	MPI_Status st;
	int rc = MPI_Recv(b, n, dtype(d), source_of(source), tag_of(tag), c, &st);
	if (rc != MPI_SUCCESS) return rc;
	return status_of(&st, d, src, tg, count);
}

static int wait(MPI_Request *r, int d, int *src, int *tg, int *count) {
	MPI_Status st;
	int rc = MPI_Wait(r, &st);
	if (rc != MPI_SUCCESS) return rc;
	return status_of(&st, d, src, tg, count);
}

static int test(MPI_Request *r, int d, int *done, int *src, int *tg, int *count) {
	MPI_Status st;
	int rc = MPI_Test(r, done, &st);
	if (rc != MPI_SUCCESS || !*done) return rc;
	return status_of(&st, d, src, tg, count);
}

static int cancel(MPI_Request *r) {
	int rc = MPI_Cancel(r);
	if (rc != MPI_SUCCESS) return rc;
	return MPI_Request_free(r);
}

static int error_string(int code, char *buf, int *class) {
	int len = 0;
	MPI_Error_class(code, class);
	return MPI_Error_string(code, buf, &len);
}
*/
import "C"

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"unsafe"
)

// Enabled reports whether this build calls an MPI library (built with the
// tag mpi).
const Enabled = true

// state mirrors MPI's own, which is per process.
var state struct {
	mu                     sync.Mutex // held around each MPI call unless the level is Multiple
	level                  ThreadLevel
	initialized, finalized bool
	world                  *Comm
}

// lock serialises MPI calls unless MPI is thread-safe; it returns the
// unlock.
func lock() func() {
	if state.level == Multiple {
		return func() {}
	}
	state.mu.Lock()
	return state.mu.Unlock
}

// call runs an MPI function and turns its return code into an error.
func call(name string, f func() C.int) error {
	unlock := lock()
	defer unlock()
	return mpiErr(name, f())
}

func mpiErr(name string, rc C.int) error {
	if rc == C.MPI_SUCCESS {
		return nil
	}
	var class C.int
	buf := (*C.char)(C.malloc(C.MPI_MAX_ERROR_STRING))
	defer C.free(unsafe.Pointer(buf))
	msg := "unknown error"
	if C.error_string(rc, buf, &class) == C.MPI_SUCCESS {
		msg = C.GoString(buf)
	}
	return &Error{Call: name, Code: int(rc), Class: int(class), Msg: msg}
}

// Comm is a communicator: a group of ranks that talk among themselves.
type Comm struct {
	h          C.MPI_Comm
	rank, size int
	freed      bool
	broken     atomic.Pointer[InterruptedError] // set when a collective on it was interrupted
}

// Init initialises MPI for goroutines calling it one at a time
// (MPI_THREAD_SERIALIZED; the package serialises the calls).
func Init() error {
	_, err := InitThread(Serialized)
	return err
}

// InitThread initialises MPI asking for the thread level required, and
// returns the level the library provides (checked with MPI_Query_thread).
// Below Multiple the package serialises every call.
func InitThread(required ThreadLevel) (ThreadLevel, error) {
	state.mu.Lock()
	defer state.mu.Unlock()
	switch {
	case state.finalized:
		return 0, ErrFinalized
	case state.initialized:
		return 0, errors.New("mpi: already initialised")
	}
	var provided C.int
	if err := mpiErr("MPI_Init_thread", C.init_thread(C.int(required), &provided)); err != nil {
		return 0, err
	}
	state.initialized = true
	state.level = ThreadLevel(provided)
	w := &Comm{h: C.comm_world()}
	var rank, size C.int
	if err := errors.Join(mpiErr("MPI_Comm_rank", C.MPI_Comm_rank(w.h, &rank)),
		mpiErr("MPI_Comm_size", C.MPI_Comm_size(w.h, &size))); err != nil {
		return 0, err
	}
	w.rank, w.size = int(rank), int(size)
	state.world = w
	if required == Multiple && state.level != Multiple {
		return state.level, fmt.Errorf("mpi: asked for thread level %v, the library provides %v", required, state.level)
	}
	return state.level, nil
}

// Finalize ends MPI; no MPI call may follow.
func Finalize() error {
	pending := 0
	if Initialized() {
		pending = Abandoned() // tests requests: MPI calls, which take state.mu
	}
	state.mu.Lock()
	defer state.mu.Unlock()
	switch {
	case state.finalized:
		return ErrFinalized
	case !state.initialized:
		return ErrNotInitialized
	}
	if pending > 0 {
		return fmt.Errorf("mpi: not finalising: %d interrupted calls are still running in MPI, and MPI_Finalize would wait for them", pending)
	}
	state.finalized = true
	return mpiErr("MPI_Finalize", C.MPI_Finalize())
}

// Initialized reports whether Init has been called and Finalize has not.
func Initialized() bool {
	state.mu.Lock()
	defer state.mu.Unlock()
	return state.initialized && !state.finalized
}

// World returns MPI_COMM_WORLD, every rank of the job. Before Init it is
// a communicator of no ranks whose calls fail with ErrNotInitialized.
func World() *Comm {
	state.mu.Lock()
	defer state.mu.Unlock()
	if state.world == nil {
		return &Comm{}
	}
	return state.world
}

// ProcessorName returns the name MPI gives this process's node.
func ProcessorName() (string, error) {
	if !Initialized() {
		return "", ErrNotInitialized
	}
	buf := (*C.char)(C.malloc(C.MPI_MAX_PROCESSOR_NAME))
	defer C.free(unsafe.Pointer(buf))
	var n C.int
	if err := call("MPI_Get_processor_name", func() C.int { return C.MPI_Get_processor_name(buf, &n) }); err != nil {
		return "", err
	}
	return C.GoStringN(buf, n), nil
}

func (c *Comm) ready() error {
	switch {
	case !Initialized():
		return ErrNotInitialized
	case c == nil || c.size == 0:
		return ErrNotInitialized
	case c.freed:
		return errors.New("mpi: the communicator has been freed")
	}
	if ie := c.broken.Load(); ie != nil {
		return ie
	}
	return nil
}

// Rank returns the calling process's rank in c.
func (c *Comm) Rank() int { return c.rank }

// Size returns the number of ranks in c.
func (c *Comm) Size() int { return c.size }

// Barrier waits until every rank of c has called it, or ctx ends (see
// Allreduce for what an interrupted collective means).
func (c *Comm) Barrier(ctx context.Context) error {
	if err := c.ready(); err != nil {
		return err
	}
	return c.collective(ctx, "MPI_Barrier",
		func(r *request) error {
			return r.start("MPI_Ibarrier", 0, func(q *C.MPI_Request) C.int { return C.MPI_Ibarrier(c.h, q) })
		})
}

// newComm wraps a communicator MPI made, or returns nil for MPI_COMM_NULL.
func newComm(h C.MPI_Comm) (*Comm, error) {
	if C.comm_is_null(h) != 0 {
		return nil, nil
	}
	n := &Comm{h: h}
	var rank, size C.int
	err := call("MPI_Comm_rank", func() C.int {
		if rc := C.MPI_Comm_rank(h, &rank); rc != C.MPI_SUCCESS {
			return rc
		}
		return C.MPI_Comm_size(h, &size)
	})
	n.rank, n.size = int(rank), int(size)
	return n, err
}

// Split partitions c: the ranks that give one color form a new
// communicator, ordered by key (ties by rank in c); a color of Undefined
// returns nil. Every rank of c must call it.
func (c *Comm) Split(color, key int) (*Comm, error) {
	if err := c.ready(); err != nil {
		return nil, err
	}
	if color < 0 && color != Undefined {
		return nil, fmt.Errorf("mpi: color %d must not be negative (or Undefined)", color)
	}
	var h C.MPI_Comm
	if err := call("MPI_Comm_split", func() C.int { return C.MPI_Comm_split(c.h, C.color_of(C.int(color)), C.int(key), &h) }); err != nil {
		return nil, err
	}
	return newComm(h)
}

// Dup returns a new communicator of the same ranks, whose messages never
// mix with c's. Every rank of c must call it.
func (c *Comm) Dup() (*Comm, error) {
	if err := c.ready(); err != nil {
		return nil, err
	}
	var h C.MPI_Comm
	if err := call("MPI_Comm_dup", func() C.int { return C.MPI_Comm_dup(c.h, &h) }); err != nil {
		return nil, err
	}
	return newComm(h)
}

// Free releases a communicator made by Split or Dup.
func (c *Comm) Free() error {
	if err := c.ready(); err != nil {
		return err
	}
	if c == World() {
		return errors.New("mpi: the world communicator cannot be freed")
	}
	c.freed = true
	return call("MPI_Comm_free", func() C.int { return C.MPI_Comm_free(&c.h) })
}

// Abort ends every process of c's job with the exit code. It does not
// return.
func (c *Comm) Abort(code int) {
	C.MPI_Abort(c.h, C.int(code))
}

func (c *Comm) send(buf unsafe.Pointer, n int, d dtype, dest, tag int) error {
	return call("MPI_Send", func() C.int { return C.MPI_Send(buf, C.int(n), C.dtype(C.int(d)), C.int(dest), C.int(tag), c.h) })
}

func (c *Comm) recv(buf unsafe.Pointer, n int, d dtype, source, tag int) (Status, error) {
	var src, tg, count C.int
	err := call("MPI_Recv", func() C.int {
		return C.recv(buf, C.int(n), C.int(d), C.int(source), C.int(tag), c.h, &src, &tg, &count)
	})
	return Status{Source: int(src), Tag: int(tg), Count: int(count)}, err
}

// request is an MPI_Request, in C memory: MPI may keep its address.
type request struct {
	h *C.MPI_Request
	d dtype
}

func (c *Comm) isend(r *request, buf unsafe.Pointer, n int, d dtype, dest, tag int) error {
	return r.start("MPI_Isend", d, func(q *C.MPI_Request) C.int {
		return C.MPI_Isend(buf, C.int(n), C.dtype(C.int(d)), C.int(dest), C.int(tag), c.h, q)
	})
}

func (c *Comm) irecv(r *request, buf unsafe.Pointer, n int, d dtype, source, tag int) error {
	return r.start("MPI_Irecv", d, func(q *C.MPI_Request) C.int {
		return C.MPI_Irecv(buf, C.int(n), C.dtype(C.int(d)), C.source_of(C.int(source)), C.tag_of(C.int(tag)), c.h, q)
	})
}

// start starts a nonblocking call on a request in C memory.
func (r *request) start(name string, d dtype, f func(*C.MPI_Request) C.int) error {
	r.h, r.d = (*C.MPI_Request)(C.malloc(C.sizeof_MPI_Request)), d
	err := call(name, func() C.int { return f(r.h) })
	if err != nil {
		r.free()
	}
	return err
}

func (c *Comm) ibcast(r *request, buf unsafe.Pointer, n int, d dtype, root int) error {
	return r.start("MPI_Ibcast", d, func(q *C.MPI_Request) C.int {
		return C.MPI_Ibcast(buf, C.int(n), C.dtype(C.int(d)), C.int(root), c.h, q)
	})
}

func (c *Comm) ireduce(r *request, send, recv unsafe.Pointer, n int, d dtype, o Op, root int) error {
	atRoot := C.int(0)
	if c.rank == root {
		atRoot = 1
	}
	return r.start("MPI_Ireduce", d, func(q *C.MPI_Request) C.int {
		return C.ireduce(send, recv, C.int(n), C.int(d), C.int(o), C.int(root), c.h, atRoot, q)
	})
}

func (c *Comm) iallreduce(r *request, send, recv unsafe.Pointer, n int, d dtype, o Op) error {
	return r.start("MPI_Iallreduce", d, func(q *C.MPI_Request) C.int {
		return C.iallreduce(send, recv, C.int(n), C.int(d), C.int(o), c.h, q)
	})
}

func (c *Comm) igather(r *request, send unsafe.Pointer, n int, recv unsafe.Pointer, d dtype, root int) error {
	t := C.dtype(C.int(d))
	return r.start("MPI_Igather", d, func(q *C.MPI_Request) C.int {
		return C.MPI_Igather(send, C.int(n), t, recv, C.int(n), t, C.int(root), c.h, q)
	})
}

func (c *Comm) iallgather(r *request, send unsafe.Pointer, n int, recv unsafe.Pointer, d dtype) error {
	t := C.dtype(C.int(d))
	return r.start("MPI_Iallgather", d, func(q *C.MPI_Request) C.int {
		return C.MPI_Iallgather(send, C.int(n), t, recv, C.int(n), t, c.h, q)
	})
}

func (c *Comm) iscatter(r *request, send, recv unsafe.Pointer, n int, d dtype, root int) error {
	t := C.dtype(C.int(d))
	return r.start("MPI_Iscatter", d, func(q *C.MPI_Request) C.int {
		return C.MPI_Iscatter(send, C.int(n), t, recv, C.int(n), t, C.int(root), c.h, q)
	})
}

func (r *request) free() {
	if r.h != nil {
		C.free(unsafe.Pointer(r.h))
		r.h = nil
	}
}

func (r *request) test() (bool, Status, error) {
	var done, src, tg, count C.int
	err := call("MPI_Test", func() C.int { return C.test(r.h, C.int(r.d), &done, &src, &tg, &count) })
	if err != nil || done != 0 {
		r.free()
		return true, Status{Source: int(src), Tag: int(tg), Count: int(count)}, err
	}
	return false, Status{}, nil
}

// wait blocks in MPI_Wait until the request completes.
func (r *request) wait() (Status, error) {
	var src, tg, count C.int
	err := call("MPI_Wait", func() C.int { return C.wait(r.h, C.int(r.d), &src, &tg, &count) })
	r.free()
	return Status{Source: int(src), Tag: int(tg), Count: int(count)}, err
}

func (r *request) cancel() error {
	err := call("MPI_Cancel", func() C.int { return C.cancel(r.h) })
	r.free()
	return err
}
