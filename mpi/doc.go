// Package mpi is ipcluster's binding to the Message Passing Interface: the
// calls an engine running as an MPI rank, and the functions it runs for
// clients, need (point to point, collectives, communicators), generic over
// Go's numeric types.
//
// # Builds
//
// Built with the tag mpi, the package calls the MPI library through cgo:
//
//	go build -tags mpi ./...
//
// It finds the library with pkg-config (the module "mpi", which Debian's
// Open MPI and MPICH packages both provide through their alternatives).
// Elsewhere, name the headers and library directly (only Open MPI and
// MPICH are tested here):
//
//	MPICH:      CGO_CFLAGS=-I/usr/include/x86_64-linux-gnu/mpich CGO_LDFLAGS=-lmpich
//	Intel MPI:  CGO_CFLAGS=-I$I_MPI_ROOT/include CGO_LDFLAGS="-L$I_MPI_ROOT/lib -lmpi"
//	Cray:       CC=cc (the compiler wrapper adds MPI itself); CGO_CFLAGS and
//	            CGO_LDFLAGS empty, PKG_CONFIG=true to skip pkg-config
//
// Without the tag the package is a stub of one rank: World has rank 0 and
// size 1, collectives copy their input, and point-to-point calls fail with
// ErrStub. FromLauncher works in both builds: it reads the rank and size
// that mpiexec, srun or a PMI launcher give each process, so an engine
// knows its rank even in a build without MPI.
//
// # Threads
//
// Init asks for MPI_THREAD_SERIALIZED and the package serialises every call
// with a mutex, so any goroutine may call it. InitThread(Multiple) asks for
// MPI_THREAD_MULTIPLE and, if MPI_Query_thread confirms it, drops the mutex.
// A call that waits in MPI (with a context that cannot end) holds the
// mutex in the serialised mode: other goroutines' MPI calls wait for it.
//
// # Contexts and interrupts
//
// Every call that waits for other ranks takes a context. Collectives run
// in their nonblocking form on every rank (MPI never matches a blocking
// collective with a nonblocking one, so the choice cannot differ between
// ranks). With context.Background the call then waits in MPI_Wait; with a
// context that can end, such as an engine task's, it polls, so that an
// interrupt from a client ends the call instead of leaving the rank stuck.
// MPI cannot cancel a collective: a collective called on only some ranks
// of a communicator would wait forever, and once interrupted the
// communicator is broken (an *InterruptedError for it and every later
// call on it), while MPI keeps the call's buffers. Finalize then refuses
// until the other ranks have joined the call (see Abandoned); an engine
// exits without finalising, and mpiexec ends the job. Recv is cancelled
// cleanly; an interrupted Send leaves its message in flight.
//
// # Errors
//
// Communicators return errors (MPI_ERRORS_RETURN) instead of aborting the
// job; each failed call returns an *Error with MPI's class and message.
// Arguments MPI would reject are checked first, with errors that name the
// argument: a root out of range, buffers of the wrong length, a bitwise
// reduction of floating-point numbers. Datatypes follow the Go element type
// (int32 is MPI_INT32_T, float64 MPI_DOUBLE, ...), never MPI_BYTE for
// arithmetic; empty slices are valid buffers.
//
// MPI state is per process, so this package keeps it in package variables.
package mpi
