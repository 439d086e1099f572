package main

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/ipcluster/ipcluster/client"
)

// clientFlags say how a command reaches the controller: the profile's
// connection file or another one, directly or through ssh.
type clientFlags struct {
	file       string
	ssh        string
	sshBuiltin bool
	sshKey     string
	knownHosts string
}

// add registers the flags on cmd; the connection file's is named file,
// with the shorthand short ("" for none).
func (f *clientFlags) add(cmd *cobra.Command, file, short string) {
	fl := cmd.Flags()
	fl.StringVarP(&f.file, file, short, "", "client connection file (default: the profile's)")
	fl.StringVar(&f.ssh, "ssh", "", "reach the controller through an ssh tunnel to [user@]host[:port] (default: the connection file's \"ssh\", if any)")
	fl.BoolVar(&f.sshBuiltin, "ssh-builtin", false, "speak ssh in Go (agent, ~/.ssh keys, one-time codes) instead of running the ssh command")
	fl.StringVar(&f.sshKey, "ssh-key", "", "private key file for the ssh tunnel")
	fl.StringVar(&f.knownHosts, "ssh-known-hosts", "", "known_hosts file to check the ssh server's key against (default ~/.ssh/known_hosts)")
}

// options returns the client options for the command.
func (f *clientFlags) options(g *globals) client.Options {
	o := client.Options{Profile: g.profile, ConnectionFile: f.file, SSHServer: f.ssh,
		SSH: client.SSHOptions{Builtin: f.sshBuiltin, IdentityFile: f.sshKey, Prompt: terminalPrompt,
			OnDrop: func(err error) {
				fmt.Fprintf(os.Stderr, "ipcluster: the ssh tunnel dropped (%v); rebuilding it\n", err)
			}}}
	if f.knownHosts != "" {
		o.SSH.KnownHosts = []string{f.knownHosts}
	}
	return o
}

// terminalPrompt asks the built-in ssh's questions on the terminal.
func terminalPrompt(question string, echo bool) (string, error) {
	tty, err := os.OpenFile("/dev/tty", os.O_RDWR, 0)
	if err != nil {
		return "", errors.New("the ssh server asks a question, and there is no terminal to ask it on")
	}
	defer tty.Close()
	fmt.Fprint(tty, question)
	if !echo {
		b, err := term.ReadPassword(int(tty.Fd()))
		fmt.Fprintln(tty)
		return string(b), err
	}
	line, err := bufio.NewReader(tty).ReadString('\n')
	return strings.TrimRight(line, "\r\n"), err
}
