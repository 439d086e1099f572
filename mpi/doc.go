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
// A blocking call (a collective, Recv) holds the mutex in the serialised
// mode: other goroutines' MPI calls wait for it.
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
