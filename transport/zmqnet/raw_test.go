package zmqnet

import (
	"testing"

	zmq "github.com/pebbe/zmq4"
)

// TestRawSocket checks the assumption behind rawSocket: that libzmq's
// socket pointer is the first field of pebbe's zmq4.Socket.
func TestRawSocket(t *testing.T) {
	ctx, err := zmq.NewContext()
	if err != nil {
		t.Fatal(err)
	}
	defer ctx.Term()
	for _, typ := range []zmq.Type{zmq.ROUTER, zmq.DEALER, zmq.PAIR} {
		s, err := ctx.NewSocket(typ)
		if err != nil {
			t.Fatal(err)
		}
		if got := socketType(rawSocket(s)); got != int(typ) {
			t.Errorf("libzmq says the raw socket of a %v is of type %d: pebbe's Socket layout changed", typ, got)
		}
		s.Close()
	}
}
