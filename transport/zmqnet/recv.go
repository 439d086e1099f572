package zmqnet

/*
#cgo !windows pkg-config: libzmq
#include <zmq.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

// A multipart message being received: its parts, still in libzmq.
typedef struct {
	zmq_msg_t *parts;
	int n, cap;
	size_t total; // bytes needed to hold every part at an 8-byte aligned offset
} mp_t;

// mp_recv takes one whole multipart message from s without blocking (the
// parts after the first are there: libzmq delivers messages whole).
// It returns 0, or -1 with errno set.
static int mp_recv(void *s, mp_t *p) {
	p->n = 0;
	p->total = 0;
	for (int more = 1; more;) {
		if (p->n == p->cap) {
			int cap = p->cap ? 2 * p->cap : 8;
			zmq_msg_t *parts = realloc(p->parts, cap * sizeof(zmq_msg_t));
			if (parts == NULL) {
				errno = ENOMEM;
				goto fail;
			}
			p->parts = parts;
			p->cap = cap;
		}
		zmq_msg_t *m = &p->parts[p->n];
		zmq_msg_init(m);
		if (zmq_msg_recv(m, s, p->n == 0 ? ZMQ_DONTWAIT : 0) < 0) {
			int e = errno;
			zmq_msg_close(m);
			errno = e;
			goto fail;
		}
		p->n++;
		p->total += (zmq_msg_size(m) + 7) & ~(size_t)7;
		more = zmq_msg_more(m);
	}
	return 0;
fail:
	for (int i = 0; i < p->n; i++)
		zmq_msg_close(&p->parts[i]);
	p->n = 0;
	return -1;
}

// mp_copy copies the received parts to dst, each at an 8-byte aligned
// offset, stores their sizes, and releases them.
static void mp_copy(mp_t *p, char *dst, size_t *sizes) {
	size_t off = 0;
	for (int i = 0; i < p->n; i++) {
		size_t n = zmq_msg_size(&p->parts[i]);
		if (n > 0)
			memcpy(dst + off, zmq_msg_data(&p->parts[i]), n);
		sizes[i] = n;
		off += (n + 7) & ~(size_t)7;
		zmq_msg_close(&p->parts[i]);
	}
	p->n = 0;
}

static void mp_free(mp_t *p) {
	free(p->parts);
	free(p);
}

// sock_events returns the socket's ZMQ_EVENTS, or -1 with errno set.
static int sock_events(void *s) {
	int ev = 0;
	size_t n = sizeof ev;
	if (zmq_getsockopt(s, ZMQ_EVENTS, &ev, &n) != 0)
		return -1;
	return ev;
}

static int sock_type(void *s) {
	int t = -1;
	size_t n = sizeof t;
	zmq_getsockopt(s, ZMQ_TYPE, &t, &n);
	return t;
}
*/
import "C"

import (
	"fmt"
	"syscall"
	"unsafe"

	zmq "github.com/pebbe/zmq4"

	"github.com/ipcluster/ipcluster/transport"
)

// rawSocket returns libzmq's socket pointer inside a pebbe socket: the
// first field of zmq4.Socket (v1.4.0). TestRawSocket checks the layout.
func rawSocket(s *zmq.Socket) unsafe.Pointer {
	return *(*unsafe.Pointer)(unsafe.Pointer(s))
}

// receiver takes whole messages off one socket with two cgo calls, into
// one Go allocation: the frames are 8-byte aligned slices of it, and
// frames of one buffer lie end to end, so joining them needs no copy.
// Frames share capacity: appending to one would overwrite the next.
type receiver struct {
	raw   unsafe.Pointer
	mp    *C.mp_t
	sizes []C.size_t
}

func newReceiver(s *zmq.Socket) *receiver {
	return &receiver{raw: rawSocket(s), mp: (*C.mp_t)(C.calloc(1, C.sizeof_mp_t))}
}

func (r *receiver) recv() ([][]byte, error) {
	for {
		rc, err := C.mp_recv(r.raw, r.mp)
		if rc == 0 {
			break
		}
		switch err {
		case syscall.EINTR:
			continue
		case syscall.EAGAIN:
			return nil, transport.ErrAgain
		}
		return nil, fmt.Errorf("zmqnet: recv: %w", err)
	}
	n, total := int(r.mp.n), int(r.mp.total)
	if cap(r.sizes) < n {
		r.sizes = make([]C.size_t, n)
	}
	sizes := r.sizes[:n]
	buf := make([]uint64, total/8+1) // 8-byte aligned; never empty
	C.mp_copy(r.mp, (*C.char)(unsafe.Pointer(&buf[0])), &sizes[0])
	data := unsafe.Slice((*byte)(unsafe.Pointer(&buf[0])), total)
	frames := make([][]byte, n)
	off := 0
	for i, sz := range sizes {
		size := int(sz)
		// The capacity runs to the end of the buffer: wire joins a
		// buffer's adjacent frames by reslicing the first one.
		frames[i] = data[off : off+size]
		off += (size + 7) &^ 7
	}
	return frames, nil
}

func (r *receiver) close() {
	if r.mp != nil {
		C.mp_free(r.mp)
		r.mp = nil
	}
}

// events asks libzmq for the socket's ZMQ_EVENTS, which processes its
// pending commands: one cgo call, no allocation.
func (r *receiver) events() (int, error) {
	for {
		ev, err := C.sock_events(r.raw)
		if ev >= 0 {
			return int(ev), nil
		}
		if err != syscall.EINTR {
			return 0, fmt.Errorf("zmqnet: events: %w", err)
		}
	}
}

// socketType asks libzmq for a raw socket's type, for the layout test.
func socketType(raw unsafe.Pointer) int { return int(C.sock_type(raw)) }
