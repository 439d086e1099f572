package zmqnet

import (
	"errors"
	"fmt"
	"sync"

	zmq "github.com/pebbe/zmq4"

	"github.com/ipcluster/ipcluster/transport"
)

// zapEndpoint is where libzmq asks a context's ZAP handler (RFC 27/ZAP).
const zapEndpoint = "inproc://zeromq.zap.01"

// zapHandler authenticates CURVE peers of every secured socket of one
// context. Its goroutine owns the REP socket; domains are added under mu.
type zapHandler struct {
	sock *zmq.Socket
	done chan struct{}

	mu      sync.RWMutex
	domains map[string]*transport.ServerSecurity
}

// startZAP binds the context's ZAP handler, once. Called with n.mu held.
func (n *Network) startZAP() error {
	if n.zap != nil {
		return nil
	}
	s, err := n.ctx.NewSocket(zmq.REP)
	if err != nil {
		return err
	}
	s.SetLinger(0)
	if err := s.Bind(zapEndpoint); err != nil {
		s.Close()
		return err
	}
	n.zap = &zapHandler{sock: s, done: make(chan struct{}), domains: make(map[string]*transport.ServerSecurity)}
	go n.zap.run()
	return nil
}

func (z *zapHandler) add(domain string, sec *transport.ServerSecurity) error {
	z.mu.Lock()
	defer z.mu.Unlock()
	if _, ok := z.domains[domain]; ok {
		return fmt.Errorf("ZAP domain %q is already served", domain)
	}
	z.domains[domain] = sec
	return nil
}

// run answers requests until the context is terminated.
func (z *zapHandler) run() {
	defer close(z.done)
	defer z.sock.Close()
	for {
		req, err := z.sock.RecvMessageBytes(0)
		if err != nil {
			if errors.Is(err, zmq.ETERM) || zmq.AsErrno(err) == zmq.ETERM {
				return
			}
			continue
		}
		if _, err := z.sock.SendMessage(z.reply(req)); err != nil && zmq.AsErrno(err) == zmq.ETERM {
			return
		}
	}
}

// reply decides one request: [version, request id, domain, address,
// routing id, mechanism, credentials...].
func (z *zapHandler) reply(req [][]byte) [][]byte {
	if len(req) < 6 {
		return [][]byte{[]byte("1.0"), {}, []byte("500"), []byte("malformed ZAP request"), {}, {}}
	}
	version, id, domain, address, mechanism := req[0], req[1], string(req[2]), string(req[3]), string(req[5])
	answer := func(code, text string) [][]byte {
		return [][]byte{version, id, []byte(code), []byte(text), {}, {}}
	}
	if string(version) != "1.0" {
		return answer("500", "unsupported ZAP version")
	}
	z.mu.RLock()
	sec := z.domains[domain]
	z.mu.RUnlock()
	refuse := func(reason string) [][]byte {
		if sec != nil && sec.OnRefuse != nil {
			sec.OnRefuse(domain, address, reason)
		}
		return answer("400", reason)
	}
	switch {
	case sec == nil:
		return refuse("no such security domain")
	case mechanism != "CURVE":
		return refuse("mechanism " + mechanism + " is not allowed; CURVE is required")
	case len(req) < 7 || len(req[6]) != 32:
		return refuse("malformed CURVE credentials")
	}
	key := zmq.Z85encode(string(req[6]))
	if !sec.Allow(key) {
		return refuse("public key " + key + " is not allowed")
	}
	return [][]byte{version, id, []byte("200"), []byte("OK"), []byte(key), {}}
}
