package zmqnet_test

import (
	"net"
	"testing"

	"go.uber.org/goleak"

	"github.com/ipcluster/ipcluster/transport"
	"github.com/ipcluster/ipcluster/transport/transporttest"
	"github.com/ipcluster/ipcluster/transport/zmqnet"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestConformance(t *testing.T) {
	t.Run("blocking", func(t *testing.T) { conformance(t, zmqnet.Options{}) })
	// Pollers that park in Go's network poller, as in a process of many
	// engines.
	t.Run("parking", func(t *testing.T) { conformance(t, zmqnet.Options{BlockingPollers: -1}) })
}

func conformance(t *testing.T, opts zmqnet.Options) {
	transporttest.Run(t, transporttest.Setup{
		New: func(t *testing.T) transport.Network {
			n, err := zmqnet.New(opts)
			if err != nil {
				t.Fatal(err)
			}
			return n
		},
		Endpoint: func() string { return "tcp://127.0.0.1:0" },
		Fixed: func(t *testing.T) string {
			l, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			defer l.Close()
			return "tcp://" + l.Addr().String()
		},
	})
}
