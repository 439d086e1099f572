package main

import (
	"fmt"
	"os"
	"runtime/pprof"
)

// cpuProfileEnv, when set to a path prefix, makes every ipcluster process
// (the supervisor with its controller, and each engine) write a CPU
// profile to <prefix>.<command>.<pid>.prof until it exits, and then its
// allocations to <prefix>.<command>.<pid>.allocs. The benchmarks use it to
// show where the time goes.
const cpuProfileEnv = "IPCLUSTER_CPUPROFILE"

// startProfile starts the CPU profile if asked, and returns its stop.
func startProfile(command string) func() {
	prefix := os.Getenv(cpuProfileEnv)
	if prefix == "" {
		return func() {}
	}
	f, err := os.Create(fmt.Sprintf("%s.%s.%d.prof", prefix, command, os.Getpid()))
	if err != nil {
		fmt.Fprintln(os.Stderr, "ipcluster: cpu profile:", err)
		return func() {}
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		fmt.Fprintln(os.Stderr, "ipcluster: cpu profile:", err)
		f.Close()
		return func() {}
	}
	return func() {
		pprof.StopCPUProfile()
		f.Close()
		writeAllocs(fmt.Sprintf("%s.%s.%d.allocs", prefix, command, os.Getpid()))
	}
}

// writeAllocs writes the allocation profile to path.
func writeAllocs(path string) {
	f, err := os.Create(path)
	if err != nil {
		fmt.Fprintln(os.Stderr, "ipcluster: allocation profile:", err)
		return
	}
	defer f.Close()
	if err := pprof.Lookup("allocs").WriteTo(f, 0); err != nil {
		fmt.Fprintln(os.Stderr, "ipcluster: allocation profile:", err)
	}
}
