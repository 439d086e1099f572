//go:build !linux

package tunnel

import "os/exec"

// setDeathSignal does nothing where the parent's death cannot be tied to
// the child's: a tunnel's ssh outlives a crashed client there.
func setDeathSignal(*exec.Cmd) {}
