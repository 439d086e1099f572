package tunnel

import (
	"os"

	"golang.org/x/crypto/ssh"

	"github.com/ipcluster/ipcluster/internal/testenv"
)

func sshAuthorizedKey(s *testenv.SSHD) string { return string(ssh.MarshalAuthorizedKey(s.HostKey)) }

func writeFile(path, text string) error { return os.WriteFile(path, []byte(text), 0o600) }
