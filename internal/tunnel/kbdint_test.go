package tunnel

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/ipcluster/ipcluster/internal/testenv"
)

// otpUser is the account TestKeyboardInteractive logs in as.
const otpUser = "ipcluster-otp"

// TestKeyboardInteractive logs in to a real sshd whose only method is
// keyboard-interactive (PAM asks for the password, as it would for a
// one-time code) with the built-in ssh: the answers come from Prompt. It
// needs root, to make the user (removed again afterwards).
func TestKeyboardInteractive(t *testing.T) {
	if os.Getuid() != 0 {
		t.Skip("needs root, to make a user with a password (make test runs as root in CI)")
	}
	if err := exec.Command("id", otpUser).Run(); err != nil {
		if out, err := exec.Command("useradd", "--create-home", "--shell", "/bin/sh", otpUser).CombinedOutput(); err != nil {
			t.Fatalf("useradd: %v\n%s", err, out)
		}
		t.Cleanup(func() { exec.Command("userdel", "--remove", otpUser).Run() })
	}
	secret := make([]byte, 12)
	rand.Read(secret)
	password := hex.EncodeToString(secret)
	chpasswd := exec.Command("chpasswd")
	chpasswd.Stdin = strings.NewReader(otpUser + ":" + password + "\n")
	if out, err := chpasswd.CombinedOutput(); err != nil {
		t.Fatalf("chpasswd: %v\n%s", err, out)
	}
	s := testenv.NeedSSHDWith(t, "UsePAM yes", "KbdInteractiveAuthentication yes", "PubkeyAuthentication no",
		"AuthenticationMethods keyboard-interactive")
	remote := echoServer(t)
	server := otpUser + "@" + s.Addr
	for _, tc := range []struct {
		answer string
		ok     bool
	}{{password, true}, {"wrong-" + password, false}} {
		var asked []string
		o := Options{Server: server, Mode: Builtin, KnownHosts: []string{s.KnownHosts},
			Prompt: func(q string, echo bool) (string, error) {
				asked = append(asked, q)
				if echo {
					t.Errorf("the password question %q would echo", q)
				}
				return tc.answer, nil
			}}
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		tun, err := Open(ctx, o, remote)
		cancel()
		if len(asked) == 0 || !strings.Contains(asked[0], "assword") {
			t.Errorf("questions asked: %q, want the password's", asked)
		}
		if !tc.ok {
			if err == nil {
				tun.Close()
				t.Fatal("a wrong answer opened the tunnel")
			}
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		if err := roundTrip(tun.Local(remote)); err != nil {
			t.Error(err)
		}
		tun.Close()
	}
}
