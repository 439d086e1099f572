// Package transport is the small socket interface that the controller,
// engines and clients are written against, so that the same code runs over
// ZeroMQ (package zmqnet) and over an in-memory network in tests (package
// memnet).
//
// The model is ZeroMQ's: a controller binds Router sockets, each peer
// connects one Dealer. Messages are multipart (a list of frames) and
// delivered whole and in order per peer. Any goroutine may send on a
// socket, at once, with no hand-over; receiving is for the goroutine that
// leads the socket's Poller, which waits for input on all its sockets at
// once (other goroutines wake it with Poller.Wake).
package transport

import (
	"errors"
	"time"
)

// Socket is one end of a message connection. Send may be called from any
// goroutine, also while another receives or waits; Recv is for the leader
// of the socket's Poller (or the socket's only user), and Close for when
// nobody else uses the socket any more.
//
// On a Router socket, Recv returns the sending peer's routing id as the
// first frame, and Send takes the destination peer's routing id as the
// first frame. A Dealer socket's frames are the message alone.
type Socket interface {
	// Send queues a message and returns without waiting for the peer.
	// It copies the frames: the caller may reuse them, or send them
	// again, once it returns. On a Router, an unknown or disconnected
	// peer gives ErrUnreachable.
	Send(frames [][]byte) error
	// Recv returns the next message without blocking, or ErrAgain. The
	// frames may be slices of one buffer whose capacity runs past their
	// length: never append to a received frame.
	Recv() ([][]byte, error)
	// Close closes the socket; queued outgoing messages are dropped.
	Close() error
}

// Poller waits for input on a fixed set of sockets.
//
// Goroutines may take turns at a poller, as leader and followers. The
// leader alone receives and calls Wait (any goroutine may send). A
// goroutine that is the sockets' only user leads for good: it calls
// TryLead once, then Wait as often as it likes. A follower is parked in
// Follow, and takes the lead only when input arrives, or Wake is called,
// while nobody leads. So the goroutine that will act on a message can wait
// for it itself, with no hand-over between goroutines (each costs a thread
// wake-up, tens of microseconds of CPU on a VM), and still leave nothing
// unattended while it acts: it lets go of the lead first, and a follower
// takes over only if something comes meanwhile.
type Poller interface {
	// Wait blocks until a socket has input, Wake is called, or timeout
	// passes (a negative timeout waits without limit). ready[i] reports
	// whether the i-th socket has input.
	Wait(timeout time.Duration) (ready []bool, err error)
	// Wake makes a current or the next Wait return, or, while nobody
	// leads, a Follow. Any goroutine may call it, at any time until Close.
	Wake()
	// TryLead makes the caller the leader if nobody leads, and reports
	// whether it did.
	TryLead() bool
	// Unlead ends the caller's lead. Input already waiting, or arriving
	// later, makes a Follow return.
	Unlead()
	// Follow waits until nobody leads and a socket has input or Wake is
	// called, and returns with the caller leading. It returns ErrClosed
	// once the poller is closed.
	Follow() error
	// Close releases the poller, not its sockets.
	Close() error
}

// ServerSecurity configures the authentication of a bound socket. With
// CURVE (the zmqnet default), peers must prove they hold the secret half
// of a public key that Allow accepts; others are refused during the
// handshake and never reach the socket.
type ServerSecurity struct {
	Public string // the server's CURVE key pair, Z85
	Secret string
	// Domain names the socket in authentication logs ("client", "engine").
	Domain string
	// Allow reports whether a peer's public key (Z85) may connect. It is
	// called from the network's authentication goroutine.
	Allow func(publicKey string) bool
	// OnRefuse, if set, is told of each refused peer: its address and why.
	OnRefuse func(domain, address, reason string)
}

// ClientSecurity configures the authentication of a connecting socket.
type ClientSecurity struct {
	ServerKey string // the server's public key, Z85
	Public    string // this peer's key pair, Z85
	Secret    string
}

// Network makes sockets of one transport.
type Network interface {
	// Bind returns a Router socket listening on endpoint, and the endpoint
	// actually bound (a port of 0 or "*" is replaced by the chosen one).
	// A nil sec disables authentication.
	Bind(endpoint string, sec *ServerSecurity) (Socket, string, error)
	// Dial returns a Dealer socket connecting to endpoint, with routing id
	// id. Connection happens in the background, and is retried until the
	// socket is closed; messages sent meanwhile are queued.
	Dial(endpoint string, id []byte, sec *ClientSecurity) (Socket, error)
	// NewPoller returns a poller over socks. A socket is watched by one
	// open poller at most.
	NewPoller(socks ...Socket) (Poller, error)
	// Close releases the network once all its sockets and pollers are closed.
	Close() error
}

// Errors of Socket operations.
var (
	ErrAgain       = errors.New("transport: no message waiting")
	ErrUnreachable = errors.New("transport: peer is not connected")
	ErrClosed      = errors.New("transport: socket is closed")
)
