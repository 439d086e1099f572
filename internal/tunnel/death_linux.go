package tunnel

import (
	"os/exec"
	"syscall"
)

// setDeathSignal ends ssh if this process dies without closing the tunnel.
func setDeathSignal(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGTERM}
}
