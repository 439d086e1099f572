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
	transporttest.Run(t, transporttest.Setup{
		New: func(t *testing.T) transport.Network {
			n, err := zmqnet.New(zmqnet.Options{})
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
