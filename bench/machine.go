package main

import (
	"bufio"
	"fmt"
	"os"
	"runtime"
	"strings"
	"syscall"

	zmq "github.com/pebbe/zmq4"
)

// machine describes where the run happened.
func machine() map[string]string {
	m := map[string]string{"go": runtime.Version(), "cores": fmt.Sprint(runtime.NumCPU())}
	major, minor, patch := zmq.Version()
	m["libzmq"] = fmt.Sprintf("%d.%d.%d", major, minor, patch)
	m["cpu"] = firstField("/proc/cpuinfo", "model name")
	if kb := firstField("/proc/meminfo", "MemTotal"); kb != "" {
		var n int
		fmt.Sscan(kb, &n)
		m["memory"] = fmt.Sprintf("%.0f GiB", float64(n)/(1<<20))
	}
	os := strings.Trim(firstField("/etc/os-release", "PRETTY_NAME="), `"`)
	var u syscall.Utsname
	if syscall.Uname(&u) == nil {
		os += ", Linux " + utsString(u.Release[:])
	}
	m["os"] = os
	return m
}

func utsString(b []int8) string {
	var s []byte
	for _, c := range b {
		if c == 0 {
			break
		}
		s = append(s, byte(c))
	}
	return string(s)
}

// firstField returns the value after key on the first line of path that
// starts with it ("key: value" or "key=value").
func firstField(path, key string) string {
	f, err := os.Open(path)
	if err != nil {
		return ""
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, key) {
			v := strings.TrimPrefix(line, key)
			v = strings.TrimLeft(v, " \t:")
			return strings.TrimSpace(v)
		}
	}
	return ""
}
