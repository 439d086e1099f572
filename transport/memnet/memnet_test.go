package memnet_test

import (
	"testing"

	"go.uber.org/goleak"

	"github.com/ipcluster/ipcluster/transport"
	"github.com/ipcluster/ipcluster/transport/memnet"
	"github.com/ipcluster/ipcluster/transport/transporttest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestConformance(t *testing.T) {
	transporttest.Run(t, transporttest.Setup{
		New:      func(t *testing.T) transport.Network { return memnet.New() },
		Endpoint: func() string { return "mem://test:0" },
		Fixed:    func(t *testing.T) string { return "mem://fixed:1" },
	})
}
