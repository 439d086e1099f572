package main

import (
	"fmt"
	"runtime"
	"runtime/debug"

	zmq "github.com/pebbe/zmq4"
	"github.com/spf13/cobra"

	"github.com/ipcluster/ipcluster/wire"
)

func newVersion() *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print the version of ipcluster and of what it runs on",
		Args:  cobra.NoArgs,
		Run: func(cmd *cobra.Command, args []string) {
			v := "(devel)"
			if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" {
				v = bi.Main.Version
			}
			major, minor, patch := zmq.Version()
			fmt.Fprintf(cmd.OutOrStdout(), "ipcluster %s (protocol %d), %s, libzmq %d.%d.%d\n",
				v, wire.Version, runtime.Version(), major, minor, patch)
		},
	}
}
